"""Lottery-ticket masks on plain arrays, numpy only: the pruning steps of the experiment on any engine.

Masks are ``{layer name: bool array shaped like the kernel}`` and kernels ``{layer name: array}``; nothing here
touches a model, so the tf_keras engine (lth_tf.pruning.masks re-exports these names) and the Keras 3 engine
(lth_tf.keras3, on TensorFlow, JAX or PyTorch) prune with the same code. The rules (Frankle & Carbin, ICLR 2019):
a layer with n surviving weights pruned at rate p keeps ``max(1, round(n * (1 - p)))`` of largest magnitude
(`prune`, nested: a pruned weight never comes back); global pruning ranks the survivors of all layers of one
rate together (Section 4); one-shot pruning goes straight to ``(1 - p) ** round`` of each layer; `rearrange`
and `random_masks` are the paper's random controls.

    from lth_tf.pruning import arrays
    masks = arrays.prune(kernels, masks, rates)      # the next round's nested masks
"""
from __future__ import annotations

import numpy as np

from lth_tf.pruning import ranking

Masks = dict  # layer name -> bool ndarray

keep_count = ranking.keep_count  # the rounding rule lives in lth_tf.pruning.ranking
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


def shuffle_masks(masks: dict, rng: np.random.Generator) -> dict:
    """Each layer's mask permuted at random: the same count per layer, positions drawn afresh (a layer that is
    not pruned stays all True)."""
    return {name: rng.permutation(m.ravel()).reshape(m.shape) for name, m in masks.items()}
