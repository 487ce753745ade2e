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

from lth_tf.pruning import ranking
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


keep_count = ranking.keep_count  # re-exported: the rounding rule lives in lth_tf.pruning.ranking
_keep_top = ranking.keep_top


def prune(kernels_: dict, masks: Masks, rates: dict) -> Masks:
    """One iterative-pruning step: in each layer, remove `rate` of the surviving weights with the smallest
    magnitudes. The result is nested in `masks`: a pruned weight never comes back."""
    new = {}
    for name, mask in masks.items():
        new[name] = _keep_top(kernels_[name], mask, keep_count(int(mask.sum()), 1.0 - rates.get(name, 0.0)))
    return new


def prune_oneshot(kernels_: dict, fractions: dict) -> Masks:
    """One-shot pruning: keep `fractions[name]` of each layer's weights, ranked by magnitude in one step."""
    return {name: _keep_top(w, np.ones(w.shape, bool), keep_count(w.size, fractions.get(name, 1.0)))
            for name, w in kernels_.items()}


def _global_pool(rates: dict) -> dict:
    """Layers pooled by global pruning, grouped by rate: layers sharing a rate share one magnitude threshold."""
    pools = {}
    for name, rate in rates.items():
        if rate > 0:
            pools.setdefault(float(rate), []).append(name)
    return pools


def _keep_top_global(kernels_: dict, eligible: dict, names: list, keep: int) -> dict:
    """Masks keeping the `keep` largest |weights| among the eligible entries of all `names` layers together;
    each layer's largest eligible weight is always kept (a layer is never cut off), the rest by one threshold."""
    score = np.concatenate([np.where(eligible[n], np.abs(kernels_[n]), -1.0).ravel() for n in names])
    chosen = np.zeros(score.size, bool)
    start = 0
    for n in names:  # reserve each layer's best survivor first
        size = kernels_[n].size
        if eligible[n].any() and keep > 0:
            chosen[start + int(np.argmax(score[start:start + size]))] = True
        start += size
    rest = np.where(chosen, -2.0, score)  # reserved entries sort last, so they are not chosen twice
    chosen[np.argsort(-rest, kind="stable")[:max(0, keep - int(chosen.sum()))]] = True
    out, start = {}, 0
    for n in names:
        size = kernels_[n].size
        out[n] = chosen[start:start + size].reshape(kernels_[n].shape)
        start += size
    return out


def prune_global(kernels_: dict, masks: Masks, rates: dict) -> Masks:
    """Global iterative pruning (the paper's Section 4, VGG-19 and ResNet-18): remove `rate` of the surviving
    weights of all layers with that rate *together*, by one magnitude threshold, so layers are pruned unevenly.
    Layers with rate 0 stay as they are. Nested in `masks`."""
    new = {name: mask.copy() for name, mask in masks.items()}
    for rate, names in _global_pool(rates).items():
        survivors = sum(int(masks[n].sum()) for n in names)
        new.update(_keep_top_global(kernels_, masks, names, int(round(survivors * (1.0 - rate)))))
    return new


def prune_oneshot_global(kernels_: dict, rates: dict, round_: int) -> Masks:
    """One-shot global pruning to the level `round_` iterative global rounds reach: (1 - rate) ** round_ of the
    pooled weights, ranked together."""
    new = {name: np.ones(w.shape, bool) for name, w in kernels_.items()}
    for rate, names in _global_pool(rates).items():
        total = sum(kernels_[n].size for n in names)
        new.update(_keep_top_global(kernels_, {n: np.ones(kernels_[n].shape, bool) for n in names}, names,
                                    int(round(total * (1.0 - rate) ** round_))))
    return new


def level_counts(sizes: dict, rates: dict, round_: int, scope: str = "layerwise") -> dict:
    """The exact number of weights IMP keeps after `round_` iterative rounds, so that a one-shot method pruned to
    that level (`masks_from_scores`) has IMP's weight count, to the weight.

    layerwise: {layer: count}, `keep_count` applied round after round to the survivors (as `prune`).
    global: {tuple of layers: count} for each pool of layers sharing a rate (as `prune_global`: the pool keeps
    round(survivors * (1 - rate)) per round, at least one weight per layer). Layers at rate 0 are left out:
    they keep all their weights.
        counts = level_counts({n: m.size for n, m in full_masks(model).items()}, rates, 3, "global")
    """
    if scope == "layerwise":
        out = {}
        for name, n in sizes.items():
            k = int(n)
            for _ in range(round_):
                k = keep_count(k, 1.0 - rates.get(name, 0.0))
            out[name] = k
        return out
    if scope != "global":
        raise ValueError(f"unknown scope '{scope}'; choose layerwise or global")
    out = {}
    for rate, names in _global_pool({n: rates.get(n, 0.0) for n in sizes}).items():
        k = sum(int(sizes[n]) for n in names)
        for _ in range(round_):
            k = max(int(round(k * (1.0 - rate))), min(k, len(names)))  # each layer's best weight is reserved
        out[tuple(names)] = k
    return out


def masks_from_scores(scores: dict, counts: dict, scope: str = "layerwise", eligible: Masks | None = None) -> Masks:
    """Masks keeping the `counts` highest `scores` (any sign; NaN counts as lowest) among the `eligible` entries
    (default all; the result is nested in them). Ties are broken by position (stable sort).

    layerwise: `counts` is {layer: weights kept}; global: {tuple of layers: weights kept by the pool together},
    ranked by one threshold, each layer's best eligible weight always among them (a layer is never cut off), as
    `level_counts` gives them. Layers named in no key keep their eligible weights.
        masks = masks_from_scores(scores, level_counts(sizes, rates, 3, "global"), scope="global")
    """
    eligible = eligible or {name: np.ones(np.shape(s), bool) for name, s in scores.items()}
    key = {name: np.where(eligible[name], np.nan_to_num(np.asarray(s, np.float64), nan=-np.inf), -np.inf)
           for name, s in scores.items()}
    out = {name: eligible[name].copy() for name in scores}
    if scope == "layerwise":
        for name, count in counts.items():
            k = key[name].ravel()
            keep = min(int(count), int(eligible[name].sum()))
            mask = np.zeros(k.size, bool)
            mask[np.argsort(-k, kind="stable")[:keep]] = True
            out[name] = mask.reshape(key[name].shape)
        return out
    if scope != "global":
        raise ValueError(f"unknown scope '{scope}'; choose layerwise or global")
    for pool, count in counts.items():
        pooled = list(pool)
        flat = np.concatenate([key[n].ravel() for n in pooled])
        ok = np.concatenate([eligible[n].ravel() for n in pooled])
        keep = min(int(count), int(ok.sum()))
        chosen = np.zeros(flat.size, bool)
        start = 0
        for n in pooled:  # reserve each layer's best eligible weight: a layer is never cut off
            size = key[n].size
            if eligible[n].any() and keep > 0:
                where = np.flatnonzero(ok[start:start + size])
                chosen[start + where[int(np.argmax(flat[start:start + size][where]))]] = True
            start += size
        order = np.argsort(-flat, kind="stable")
        rest = order[ok[order] & ~chosen[order]]
        chosen[rest[:max(0, keep - int(chosen.sum()))]] = True
        start = 0
        for n in pooled:
            size = key[n].size
            out[n] = chosen[start:start + size].reshape(key[n].shape)
            start += size
    return out


def scheduled_counts(counts: dict, sizes: dict, step: int, steps: int) -> dict:
    """Counts on the exponential schedule from all weights to `counts`: step i of n keeps
    keep_count(N, (count / N) ** (i / n)) of N (SynFlow's schedule, Tanaka et al. 2020); step n is `counts`."""
    out = {}
    for key, count in counts.items():
        n = sum(int(sizes[k]) for k in key) if isinstance(key, tuple) else int(sizes[key])
        out[key] = int(count) if step >= steps or n == 0 else max(int(count), keep_count(n, (count / n) ** (step / steps)))
    return out


def expected_remaining(rates: dict, round_: int) -> dict:
    """Fraction of each layer's weights left after `round_` iterative rounds: (1 - rate) ** round."""
    return {name: (1.0 - rate) ** round_ for name, rate in rates.items()}


def rearrange(masks: Masks, kernels_: dict, rng: np.random.Generator) -> tuple:
    """The paper's random-rearrangement control: move each pruned layer's surviving connections to random
    positions (same count per layer), carrying their values along in random order. A layer that is not pruned
    (mask all True) keeps its values in place. Returns (new masks, new kernels)."""
    new_masks, new_kernels = {}, {}
    for name, mask in masks.items():
        if mask.all():
            new_masks[name], new_kernels[name] = mask.copy(), kernels_[name].copy()
            continue
        flat = mask.ravel()
        positions = rng.choice(flat.size, size=int(flat.sum()), replace=False)
        new_mask = np.zeros(flat.size, bool)
        new_mask[positions] = True
        values = np.zeros(flat.size, kernels_[name].dtype)
        values[positions] = rng.permutation(kernels_[name].ravel()[flat])
        new_masks[name] = new_mask.reshape(mask.shape)
        new_kernels[name] = values.reshape(mask.shape)
    return new_masks, new_kernels


def random_masks(masks: Masks, rng: np.random.Generator) -> Masks:
    """Random pruning at the same per-layer fractions: each layer keeps as many weights as `masks` does, at
    uniformly random positions. A layer that is not pruned (mask all True) stays unpruned."""
    out = {}
    for name, mask in masks.items():
        flat = np.zeros(mask.size, bool)
        flat[rng.choice(mask.size, size=int(mask.sum()), replace=False)] = True
        out[name] = mask.copy() if mask.all() else flat.reshape(mask.shape)
    return out


def remaining(masks: Masks) -> float:
    """Fraction of all prunable weights that survive."""
    total = sum(m.size for m in masks.values())
    return float(sum(int(m.sum()) for m in masks.values()) / total) if total else 1.0


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
