"""Magnitude pruning masks, and applying them with tfmot.

Masks are plain data: ``{layer_name: bool array shaped like the layer's kernel}``. This module computes them
the lottery-ticket way (layer-wise, prune a fraction of the *surviving* weights, never revive) and hands them to
tfmot for application and export:

    >>> from lth_tf.pruning import masks as pruning
    >>> rates = pruning.layer_rates(model, fc=0.2, conv=0.1, output=0.1)
    >>> masks = pruning.full_masks(model)                       # round 0: nothing pruned
    >>> masks = pruning.prune(pruning.kernels(model), masks, rates)   # after training: next, nested masks
    >>> wrapped = pruning.wrap(model, masks)                    # tfmot PruneLowMagnitude around each pruned layer

How many weights a step keeps (the rounding rule): a layer with n surviving weights pruned at rate p keeps
``max(1, round(n * (1 - p)))`` (Python's round, halves to even), so a pruned layer never loses its last weight
and the network is never cut; one-shot pruning to a fraction f of a layer's N weights keeps
``max(1, round(N * f))``. Global pruning keeps ``round(n * (1 - p))`` of the n survivors pooled over its layers,
each layer's largest surviving weight always among them.

tfmot's own schedules rank the current weights every update, so pruned weights can come back (see
shared notes); `wrap` therefore pins tfmot's mask: ConstantSparsity with begin_step = end_step = 0 never fires,
because tfmot's step counter is already 1 at the first training step.
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

# The pruning steps on plain arrays live in lth_tf.pruning.arrays (numpy only, shared with the Keras 3 engine).
from lth_tf.pruning.arrays import (  # noqa: F401  (re-exported)
    keep_count,
    _keep_top,
    prune,
    prune_oneshot,
    _global_pool,
    _keep_top_global,
    prune_global,
    prune_oneshot_global,
    level_counts,
    masks_from_scores,
    scheduled_counts,
    expected_remaining,
    rearrange,
    random_masks,
    remaining,
)
# The wrapper class is not exported by tfmot's public API; isinstance checks need it.
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

Masks = dict  # layer name -> bool ndarray

_PRUNABLE = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _inner(layer):
    return layer.layer if isinstance(layer, PruneLowMagnitude) else layer


def prunable_layers(model: keras.Model) -> list:
    """The layers whose kernels lottery-ticket pruning touches (dense and convolutional), unwrapped."""
    return [_inner(layer) for layer in model.layers if isinstance(_inner(layer), _PRUNABLE)]


def output_layer_name(model: keras.Model) -> str:
    """The output layer, which the paper prunes at half the fc rate: the prunable layer that produces the model's
    output, followed back through layers without a kernel (an Activation, a Dropout, a Reshape); where the output
    cannot be followed so (a layer of several inputs on the way), the last dense layer."""
    layer = _producer(model)
    if layer is not None:
        return layer.name
    dense = [layer.name for layer in prunable_layers(model) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"model '{model.name}' has no dense output layer")
    return dense[-1]


def _producer(model):
    try:
        layer = _inner(model.outputs[0]._keras_history.layer)
        while not isinstance(layer, _PRUNABLE):
            inbound = layer._inbound_nodes[0].inbound_layers
            if isinstance(inbound, (list, tuple)):
                if len(inbound) != 1:
                    return None
                inbound = inbound[0]
            layer = _inner(inbound)
    except (AttributeError, IndexError, TypeError):  # a model without a traced graph (subclassed)
        return None
    return layer


def layer_rates(model, fc: float, conv: float, output: float, prune_layers: str = "all") -> dict:
    """Per-layer pruning rate for each prunable layer; a rate of 0 leaves a layer dense.

    prune_layers: "all", "conv" (only convolutions) or "fc" (only dense layers, output included).
    """
    out = output_layer_name(model)
    rates = {}
    for layer in prunable_layers(model):
        is_conv = not isinstance(layer, keras.layers.Dense)
        rate = conv if is_conv else (output if layer.name == out else fc)
        if (prune_layers == "conv" and not is_conv) or (prune_layers == "fc" and is_conv):
            rate = 0.0
        rates[layer.name] = float(rate)
    return rates


def kernels(model) -> dict:
    """Current kernel of each prunable layer, as numpy arrays."""
    return {layer.name: layer.kernel.numpy() for layer in prunable_layers(model)}


def full_masks(model) -> Masks:
    """All-True masks: the dense network of round 0."""
    return {layer.name: np.ones(layer.kernel.shape, bool) for layer in prunable_layers(model)}


def fixed_schedule(sparsity: float):
    """A tfmot ConstantSparsity at `sparsity` that never recomputes the mask we assign."""
    return tfmot.sparsity.keras.ConstantSparsity(min(float(sparsity), 0.999999), begin_step=0, end_step=0)


def wrap(model: keras.Model, masks: Masks) -> keras.Model:
    """Wraps each masked layer of `model` in tfmot's PruneLowMagnitude, holding `masks` fixed.

    The wrapped model shares its layers (and so its variables) with `model`: training either one trains both.
    Its kernels are multiplied by the masks here, so pruned weights are exactly zero from the start.
    """
    def clone(layer):
        if layer.name in masks:
            sparsity = 1.0 - float(masks[layer.name].mean())
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=fixed_schedule(sparsity))
        return layer  # shared, not copied

    wrapped = keras.models.clone_model(model, clone_function=clone)
    assign_masks(wrapped, masks)
    return wrapped


def wrappers(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, PruneLowMagnitude)]


def assign_masks(wrapped: keras.Model, masks: Masks) -> None:
    """Sets the masks of a tfmot-wrapped model and zeroes the pruned kernel entries."""
    for wrapper in wrappers(wrapped):
        mask = masks.get(wrapper.layer.name)
        if mask is None:
            continue
        weight, mask_var, _ = wrapper.pruning_vars[0]
        mask_var.assign(mask.astype(mask_var.dtype.as_numpy_dtype))
        weight.assign(weight.numpy() * mask)


def masks_of(wrapped: keras.Model) -> Masks:
    """The masks held by a tfmot-wrapped model, keyed by the inner layer's name."""
    return {w.layer.name: w.pruning_vars[0][1].numpy().astype(bool) for w in wrappers(wrapped)}


def prune_model(model: keras.Model, fc: float = 0.2, conv: float = 0.1, output: float = 0.1) -> keras.Model:
    """The Keras user's step between two fits: from a trained model (plain, or wrapped by an earlier call)
    returns a tfmot-wrapped model whose masks prune `fc`/`conv`/`output` of the surviving weights per layer.

        model = lth_tf.prune_model(model)          # then compile, and fit with RewindCallback
    """
    if wrappers(model):
        old = masks_of(model)
        model = tfmot.sparsity.keras.strip_pruning(model)
    else:
        old = full_masks(model)
    new = prune(kernels(model), old, layer_rates(model, fc, conv, output))
    return wrap(model, new)
