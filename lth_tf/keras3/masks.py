"""Masks for Keras 3 models on any backend (TensorFlow, JAX, PyTorch), without tfmot or tf_keras.

The same method as `lth_tf.pruning.masks` and `lth_tf.pruning.rewind` (Frankle & Carbin, "The Lottery Ticket
Hypothesis", ICLR 2019), written with `keras` and `keras.ops` only (rewinding is in `lth_tf.keras3.rewind`):

- layer-wise iterative magnitude pruning: each round, a layer with rate p keeps the
  max(1, round(n_surviving * (1 - p))) surviving kernel entries of largest |w| (fc 20%, conv 10%, and half the
  fc rate for the output layer, the one whose output the model returns, Dense or convolution, found by tracing
  a call: `output_layer_name`); masks are nested, so a pruned weight never comes back; biases and
  normalisation layers are never pruned;
- rewinding: every later `fit` starts from the weights recorded after k optimizer steps of the first one
  (k = 0: the initialisation; k > 0: late rewinding, Frankle et al., 2020), every saved weight restored
  exactly (BatchNorm moving statistics included), kernels multiplied by their masks.

Masks are plain data, ``{layer name: bool array shaped like the kernel}``, as in the tf_keras path. They are
enforced through Keras' own per-variable constraint hook: right after every optimizer update, inside the
compiled step, each pruned kernel is multiplied by its 0/1 mask. So a pruned weight is exactly 0 after every
step whatever the optimizer state says (momentum, Adam moments, AdamW's decoupled decay), and for element-wise
optimizers (SGD, momentum, Adam, AdamW, RMSprop, ...) the surviving weights follow exactly the trajectory of
masked gradients. The cost is one multiply per kernel entry per step. Nothing of lth_tf is left in the model:
no wrapper layers, no custom objects in its config, so a ticket saved with ``model.save("ticket.keras")``
loads with plain ``keras.saving.load_model``. The masks travel as the kernels' zeros: the next `prune_model`
of a reloaded ticket, and a rewinding fit, take them as pruned (`held_masks`), so its masks stay nested.

The recipe (README.md, "Keras 3"):

    >>> from lth_tf import keras3 as lth
    >>> rewind = lth.RewindCallback()              # the first fit records the initial weights
    >>> model.fit(x, y, callbacks=[rewind])        # round 0: dense
    >>> model = lth.prune_model(model)             # next nested masks, in place; pruned kernels zeroed
    >>> model.compile(...); model.fit(x, y, callbacks=[rewind])   # starts from the recorded weights, masked

Supported: Sequential, Functional and subclassed models (nested models and layers included) whose weight
matrices are all kernels of Dense or Conv1D/2D/3D layers. Any other layer with a weight matrix (Embedding,
EinsumDense, separable or transposed convolutions, recurrent cells, LoRA or quantized Dense) is refused with
a ValueError naming it. Norm clipping (`clipnorm`, `global_clipnorm`) would count the gradients of pruned
weights, so `RewindCallback` refuses optimizers that use it.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lth_tf.pruning import ranking

if not keras.__version__.startswith("3."):
    raise ImportError(f"lth_tf.keras3 needs Keras 3; `import keras` gave Keras {keras.__version__}")

Masks = dict  # layer name -> bool ndarray

_PRUNABLE = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _walk(layer, seen=None):
    """Every sublayer of `layer`, depth first in definition order, each once (shared layers too)."""
    seen = set() if seen is None else seen
    for sub in getattr(layer, "_layers", []):
        if id(sub) not in seen:
            seen.add(id(sub))
            yield sub
            yield from _walk(sub, seen)


def _owned(model):
    """(layer, its own weights) for every layer holding weights; a composite layer keeps only the weights
    none of its sublayers holds, so each weight is listed once, under its innermost layer."""
    out = []
    for layer in [model, *_walk(model)]:
        inner = {id(v) for sub in _walk(layer) for v in sub.weights}
        own = [v for v in layer.weights if id(v) not in inner]
        if own:
            out.append((layer, own))
    return out


def _check_built(model):
    if not model.built or not model.weights:
        raise ValueError(f"model '{model.name}' has no weights yet: build it (call it on data) first")


def prunable_layers(model) -> list:
    """The layers whose kernels are pruned (Dense, Conv1D/2D/3D), depth first. Raises ValueError for any
    other layer holding a weight matrix, since pruning would silently skip it."""
    _check_built(model)
    layers, bad = [], []
    for layer, own in _owned(model):
        if isinstance(layer, _PRUNABLE):
            if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
                bad.append(f"'{layer.name}' (LoRA or quantized {type(layer).__name__})")
            else:
                layers.append(layer)
        elif any(len(v.shape) >= 2 and v.trainable for v in own):
            bad.append(f"'{layer.name}' ({type(layer).__name__})")
    if bad:
        raise ValueError(f"lth_tf.keras3 prunes only Dense and Conv1D/2D/3D kernels; cannot handle layer "
                         f"{', '.join(bad)}")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError(f"prunable layer names must be unique (masks are keyed by name): {names}")
    return layers


def _input_spec(model):
    """Symbolic inputs for one trace of `model`: a Functional model's own Input tensors (the structure its
    call takes), a Sequential model's, or else the shape its build recorded (a subclassed model called once on
    one input). None when neither is known."""
    try:
        return model.inputs[0] if isinstance(model, keras.Sequential) else model.input
    except (AttributeError, IndexError, ValueError, TypeError):
        pass
    shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())
    if len(shapes) == 1 and isinstance(shapes[0], (tuple, list)) and all(
            d is None or isinstance(d, int) for d in shapes[0]):
        return keras.KerasTensor(tuple(shapes[0]), dtype=model.input_dtype)
    return None


def _call_order(model, layers) -> list:
    """Names of `layers` in the order one symbolic call of `model` calls them (repeats included): each
    layer's `call` is wrapped for the time of the trace (on the instance, then restored), and the model is
    traced the way Keras traces it (`Operation.compute_output_spec`: a tf.function graph, jax.eval_shape or
    torch's meta device), so no data is needed, nothing is computed and no weight or statistic changes."""
    spec = _input_spec(model)
    if spec is None:
        raise ValueError("its input shape is unknown (a subclassed model called on several inputs)")
    order, own = [], [layer.__dict__.get("call") for layer in layers]  # a `call` set on the instance stays
    for layer in layers:
        def traced(*args, _layer=layer, _call=layer.call, **kwargs):
            order.append(_layer.name)
            return _call(*args, **kwargs)
        layer.call = traced
    try:
        keras.Operation.compute_output_spec(model, spec)
    finally:
        for layer, call in zip(layers, own):
            if call is None:
                del layer.call
            else:
                layer.call = call
    return order


def output_layer_name(model) -> str:
    """The output layer, pruned at the `output` rate: the prunable layer whose output the model returns.

    The paper prunes "connections to outputs" at half the rate of the rest of the network (Section 2), so the
    output layer is the last prunable layer the model's forward pass calls (a Dense head, or the last
    convolution of a fully convolutional network), found by one symbolic call (`_call_order`), never by the
    order in which layers were created. Limits: a model with several outputs has one output layer, the last one
    called; a call that runs a Dense or Conv layer after the one producing its output (say, an auxiliary head
    whose result it drops) names that later layer; a model that cannot be traced (unknown input shape) is
    refused. In those cases name the layer: `prune_model(..., output_layer="name")`."""
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"model '{model.name}' has no Dense or Conv1D/2D/3D layer to prune")
    try:
        order = _call_order(model, layers)
    except Exception as e:  # noqa: BLE001 - any failure of the trace gets the same advice
        raise ValueError(f"cannot trace model '{model.name}' to find its output layer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); name it: output_layer='...'") from e
    if not order:
        raise ValueError(f"a call of model '{model.name}' calls none of its Dense or Conv layers; "
                         f"name its output layer: output_layer='...'")
    return order[-1]


def layer_rates(model, fc: float = 0.2, conv: float = 0.1, output: float = 0.1,
                output_layer: str | None = None) -> dict:
    """Per-layer pruning rate: `output` for the output layer (`output_layer`, default `output_layer_name`),
    whether Dense or a convolution; `conv` for other convolutions, `fc` for other Dense layers."""
    for rate in (fc, conv, output):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"pruning rates must be in [0, 1), got {rate}")
    layers = prunable_layers(model)
    if output_layer is not None and output_layer not in {layer.name for layer in layers}:
        raise ValueError(f"output_layer='{output_layer}' is not a prunable layer of '{model.name}'")
    out = output_layer_name(model) if output_layer is None else output_layer
    return {layer.name: float(output if layer.name == out else fc if isinstance(layer, keras.layers.Dense)
                              else conv) for layer in layers}


def kernels(model) -> dict:
    """Current kernel of each prunable layer, as numpy arrays."""
    return {layer.name: ops.convert_to_numpy(layer.kernel) for layer in prunable_layers(model)}


def full_masks(model) -> Masks:
    """All-True masks: the dense network of round 0."""
    return {layer.name: np.ones(tuple(layer.kernel.shape), bool) for layer in prunable_layers(model)}


def prune(kernels_: dict, masks: Masks, rates: dict) -> Masks:
    """One iterative-pruning step: in each layer, remove `rate` of the surviving weights with the smallest
    magnitudes (keep max(1, round(survivors * (1 - rate))), lth_tf.pruning.ranking's rule, as the tf_keras path).
    The result is nested in `masks`."""
    return {name: ranking.keep_top(kernels_[name], mask, ranking.keep_count(int(mask.sum()),
                                                                            1.0 - rates.get(name, 0.0)))
            for name, mask in masks.items()}


class _Mask(keras.constraints.Constraint):
    """Multiplies a kernel by its 0/1 mask after every optimizer update (after the user's own constraint).
    Set on the variable only, never on the layer, so it is not part of the layer's config."""

    def __init__(self, mask: np.ndarray, dtype, inner=None):
        self.mask = np.asarray(mask, bool)
        self.inner = inner
        self._factor = ops.convert_to_tensor(self.mask.astype(np.dtype(dtype)))

    def __call__(self, w):
        return (w if self.inner is None else self.inner(w)) * self._factor


def _kernel_variable(layer):
    return layer._kernel if hasattr(layer, "_kernel") else layer.kernel


def apply_masks(model, masks: Masks) -> None:
    """Holds `model`'s kernels under `masks` from now on: pruned entries are zeroed now and after every
    optimizer step of later fits. Layers not in `masks` are left dense (and freed of earlier masks).
    Call it between fits, not from a callback: it drops the traced train step, which fit rebuilds."""
    _set_masks(model, masks)
    # A train step traced before now would not apply the new constraints; the next fit traces a new one.
    model.train_function = None


def _set_masks(model, masks: Masks) -> None:
    layers = {layer.name: layer for layer in prunable_layers(model)}
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise ValueError(f"masks name layers that are not prunable layers of '{model.name}': {unknown}")
    for name, layer in layers.items():
        var = _kernel_variable(layer)
        inner = var.constraint.inner if isinstance(var.constraint, _Mask) else var.constraint
        if name not in masks:
            var.constraint = inner
            continue
        mask = np.asarray(masks[name], bool)
        if mask.shape != tuple(var.shape):
            raise ValueError(f"mask for '{name}' has shape {mask.shape}, its kernel {tuple(var.shape)}")
        var.constraint = _Mask(mask, var.dtype, inner)
        var.assign(var * var.constraint._factor)


def masks_of(model) -> Masks:
    """The masks `apply_masks` (or `prune_model`) set on `model`, keyed by layer name; {} for a dense model."""
    return {layer.name: _kernel_variable(layer).constraint.mask.copy() for layer in prunable_layers(model)
            if isinstance(_kernel_variable(layer).constraint, _Mask)}


def held_masks(model) -> Masks:
    """The masks `model` holds (`masks_of`) and, for each prunable layer holding none whose kernel has exact
    zeros, the kernel's non-zero pattern.

    The second rule is what keeps a ticket's masks across `model.save` and `keras.saving.load_model`. The
    masks are held in variable constraints, which are not saved (so that plain Keras loads the file without
    lth_tf), but the zeros they leave are: a reloaded kernel's zeros are its pruned weights. This survives any
    way of loading (plain Keras, another process, a checkpoint) with nothing added to the file, which is why
    it was chosen over saving the masks in it (a custom object plain Keras could not load). It is exact
    unless a surviving weight is exactly 0.0, which training practically never leaves, and it would take an
    untrained kernel with deliberate zeros (say an identity initializer) as pruned; hold all-True masks
    (`apply_masks(model, full_masks(model))`) to rule that out, or keep `masks_of(model)` (plain numpy
    arrays, e.g. in an .npz) beside the file and `apply_masks` them after loading."""
    held = masks_of(model)
    for layer in prunable_layers(model):
        if layer.name not in held:
            kernel = ops.convert_to_numpy(layer.kernel)
            if not kernel.all():
                held[layer.name] = kernel != 0
    return held


def prune_model(model, fc: float = 0.2, conv: float = 0.1, output: float = 0.1, output_layer: str | None = None):
    """The Keras user's step between two fits: prunes `fc`/`conv`/`output` of the surviving weights of each
    layer of the trained `model` by magnitude, nested in its current masks (`held_masks`: those it holds, or a
    reloaded kernel's zeros; none: round 0), and holds the new masks (see `apply_masks`). Works in place and
    returns `model`; compile again before the next fit. `output_layer`: see `output_layer_name`.

        model = lth_tf.keras3.prune_model(model)       # then compile, and fit with RewindCallback
    """
    old = {**full_masks(model), **held_masks(model)}  # a layer never masked so far is dense
    apply_masks(model, prune(kernels(model), old, layer_rates(model, fc, conv, output, output_layer)))
    return model

