"""Pruning at initialization: per-weight scores, masks at a level, and the sanity-check ablations.

Frankle, Dziugaite, Roy & Carbin, "Pruning Neural Networks at Initialization: Why are we missing the mark?"
(ICLR 2021) compare these scores, each computed once on the network at initialization (or at the rewind point
W_k), against magnitude pruning after training and IMP. Every score below is a dict ``{layer: array shaped
like its kernel}`` over the prunable layers (`pruning.prunable_layers`); a *higher* score means *keep*, except
GraSP's, as its paper defines it (see `keep_scores`, which turns every method into "higher is kept").

  random          s = u, u ~ Uniform(0, 1) per weight (the trivial baseline).
  magnitude_init  s = |w|  (magnitude at initialization; Frankle et al. 2021's ablation of magnitude pruning).
  snip            s = |w * dL/dw|, L the cross-entropy of a batch of training data (Lee, Ajanthan & Torr,
                  "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019).
  grasp           S = -w * (H g), g = dL/dw and H the Hessian of L with respect to the kernels, L the
                  cross-entropy of the logits divided by a temperature of 200, on a batch of training data. H g is
                  one Hessian-vector product: the gradient of g_stopped . g. Which end is pruned, precisely: the
                  weights with the *highest* S = -w * (H g) are pruned (equivalently the *lowest* w * (H g)), as in
                  Wang, Zhang & Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow" (ICLR
                  2020), Algorithm 1 (the mask keeps S below a threshold) and the authors' code (pruner/GraSP.py
                  keeps -theta * Hg <= the threshold of the top scores to remove).
                  `grasp` returns S itself; `keep_scores` ranks by -S = w * (H g), lowest pruned.
  synflow         s = |w * dR/dw| with every parameter replaced by its absolute value (BatchNorm scale, shift and
                  moving statistics included, as Tanaka et al.'s code does), R = sum of the outputs for one all-ones
                  input, no data at all; pruned and re-scored over 100 iterations, the kept fraction following the
                  exponential schedule f ** (i / n), i = 1..n, to the target f (`pruning.scheduled_counts`; the last
                  iteration keeps the target's exact count) (Tanaka, Kunin, Yamins & Ganguli,
                  "Pruning neural networks without any data by iteratively conserving synaptic flow", NeurIPS
                  2020). Computed in float64, since R is a product over all layers.

BatchNorm while scoring (each method as its authors' code does; dropout and every other layer stay in inference
mode throughout, and the model is left unchanged, moving statistics included):
  snip     inference mode, BatchNorm normalising with its moving statistics (at initialization mean 0 and variance
           1, so it passes activations through nearly unchanged): Lee et al.'s code (namhoonlee/snip-public,
           snip/prune.py) scores with `is_train` False, which its networks pass to `tf.layers.batch_normalization`.
  grasp    batch statistics (BatchNorm in training mode): Wang et al.'s pruner/GraSP.py scores a deep copy of a
           network left in PyTorch's default training mode (its `.eval()` is commented out). The reference splits
           the batch into two halves, each with its own statistics, and sums their gradients; lth_tf uses the
           whole batch at once (the same scores, up to a factor, for networks without BatchNorm).
  synflow  inference mode with the (absolute) moving statistics and one all-ones input, as Tanaka et al.'s
           prune.py (`model.eval()` unless --prune-train-mode) and Pruners/pruners.py (SynFlow) do.
  (Tanaka et al.'s Synaptic-Flow code scores SNIP and GraSP in eval mode too, unlike GraSP's authors.)
`snip(..., batch_statistics=True)` and `grasp(..., batch_statistics=False)` choose the other mode.

Levels: the methods prune to the exact weight counts IMP reaches after r rounds (`pruning.level_counts`:
per layer, or per pool of layers sharing a rate with global scope, as IMP's global pruning pools them), using
lth_tf.pruning.ranking's keep-count rule, so every method's round r has IMP's weight count to the weight.

Ablations (Frankle et al. 2021, Section 5): ``shuffle`` (`shuffle_masks`: each layer's mask permuted at random,
same count per layer), ``reinit`` (the mask kept, weights drawn afresh from the initializers: the experiment
builds a fresh network) and ``invert`` (`masks_at_level(..., invert=True)`: the highest-ranked weights pruned
instead of the lowest, i.e. the complement ranking at the same count; for SynFlow at every iteration).

    >>> scores = init_scores.snip(model, x, y)                     # {layer: |w * g|}
    >>> counts = pruning.level_counts(sizes, rates, round_, "global")   # IMP's exact count at round_
    >>> masks = init_scores.masks_at_level("synflow", model, counts, scope="global")
"""
from __future__ import annotations

import contextlib

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import arrays
from lth_tf.pruning import masks as pruning

METHODS = ("random", "magnitude_init", "snip", "grasp", "synflow")
NEEDS_DATA = ("snip", "grasp")
GRASP_TEMPERATURE = 200.0
_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _kernels(model) -> dict:
    return {layer.name: layer.kernel for layer in pruning.prunable_layers(model)}


@contextlib.contextmanager
def _scoring_mode(model, batch_statistics: bool):
    """Call the model with training=False inside: with `batch_statistics`, its BatchNorm layers (only they)
    normalise with the batch's own mean and variance. Keras' BatchNorm updates its moving statistics whenever
    it runs in training mode, so they are saved and restored: the model leaves as it came."""
    norms = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization) and batch_statistics]
    saved = [(n, n.moving_mean.numpy(), n.moving_variance.numpy()) for n in norms]

    def batch_mode(call):
        def forced(inputs, *args, training=None, **kwargs):
            return call(inputs, *args, training=True, **kwargs)
        return forced

    for norm in norms:
        norm.call = batch_mode(norm.call)  # the instance's call, for this scoring only
    try:
        yield
    finally:
        for norm, mean, variance in saved:
            del norm.call  # back to the class's method
            norm.moving_mean.assign(mean)
            norm.moving_variance.assign(variance)


def batch_per_class(x: np.ndarray, y: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple:
    """`per_class` examples of every class present in `y`, drawn without replacement (SNIP's and GraSP's batch)."""
    picks = []
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        picks.append(rng.choice(where, size=min(per_class, where.size), replace=False))
    index = np.sort(np.concatenate(picks))
    return x[index], y[index]


# ---- scores --------------------------------------------------------------------------------------------------

def random(model, rng: np.random.Generator) -> dict:
    """Uniform random scores."""
    return {name: rng.uniform(size=k.shape) for name, k in _kernels(model).items()}


def magnitude_init(model) -> dict:
    """|w| of each kernel as it is now (at initialization, or at W_k)."""
    return {name: np.abs(k.numpy()) for name, k in _kernels(model).items()}


def snip(model, x, y, batch_statistics: bool = False) -> dict:
    """|w * dL/dw|, L the mean cross-entropy of (x, y) (Lee et al., 2019); dropout off, BatchNorm in inference
    mode as the authors' code (or normalising with the batch's statistics with `batch_statistics`)."""
    kernels = _kernels(model)
    with _scoring_mode(model, batch_statistics), tf.GradientTape() as tape:
        loss = _CE(y, tf.cast(model(x, training=False), tf.float32))
    grads = tape.gradient(loss, list(kernels.values()))
    return {name: np.abs(k.numpy() * g.numpy()) for (name, k), g in zip(kernels.items(), grads)}


def hessian_gradient_product(model, x, y, temperature: float = GRASP_TEMPERATURE,
                             batch_statistics: bool = True) -> dict:
    """H g for the kernels: g = dL/dw (held fixed), H = d2L/dw2, L = cross-entropy of logits / temperature;
    dropout off, BatchNorm normalising with the batch's statistics as GraSP's code (or in inference mode).

    Through batch statistics H g is exact where Keras fuses BatchNorm (float32 or float16 images: resnet18,
    vgg19); its unfused path (float64, or BatchNorm after a Dense layer) takes the variance with tf.nn.moments,
    which stops the gradient through the batch mean, and H g comes out slightly off (0.14% on the test network).
    """
    kernels = list(_kernels(model).values())

    def loss():
        logits = tf.cast(model(x, training=False), kernels[0].dtype) / temperature
        return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)

    with _scoring_mode(model, batch_statistics):
        with tf.GradientTape() as tape:
            fixed = tf.reduce_mean(loss())
        g_fixed = [tf.stop_gradient(g) for g in tape.gradient(fixed, kernels)]
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = tf.reduce_mean(loss())
            g = inner.gradient(value, kernels)
            z = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(g_fixed, g)])
        hg = outer.gradient(z, kernels)
    return {name: h.numpy() for name, h in zip(_kernels(model), hg)}


def grasp(model, x, y, temperature: float = GRASP_TEMPERATURE, batch_statistics: bool = True) -> dict:
    """GraSP's S = -w * (H g) (Wang et al., 2020); the *highest* S are pruned."""
    hg = hessian_gradient_product(model, x, y, temperature, batch_statistics)
    return {name: -k.numpy() * hg[name] for name, k in _kernels(model).items()}


def _float64_abs_clone(model) -> keras.Model:
    """A float64 copy of `model` with every weight replaced by its absolute value (SynFlow's linearisation)."""
    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights([np.abs(w).astype(np.float64) for w in model.get_weights()])
    return copy


def synflow_scores(model, masks: dict | None = None, _clone=None) -> dict:
    """One SynFlow scoring: |w * dR/dw| on |parameters| under `masks`, R = sum(f(1)) (Tanaka et al., 2020)."""
    copy = _clone if _clone is not None else _float64_abs_clone(model)
    kernels = _kernels(copy)
    if masks is not None:
        absolute = {name: np.abs(k.numpy()) for name, k in _kernels(model).items()}
        for name, k in kernels.items():
            k.assign(absolute[name] * masks[name])
    ones = tf.ones((1, *model.input_shape[1:]), tf.float64)
    with tf.GradientTape() as tape:
        r = tf.reduce_sum(copy(ones, training=False))  # BatchNorm uses its (absolute) moving statistics
    grads = tape.gradient(r, list(kernels.values()))
    return {name: np.abs(k.numpy() * g.numpy()) for (name, k), g in zip(kernels.items(), grads)}


def keep_scores(method: str, model, x=None, y=None, rng=None) -> dict:
    """The method's scores with "higher is kept" for every method (GraSP's S negated)."""
    if method == "random":
        return random(model, rng if rng is not None else np.random.default_rng(0))
    if method == "magnitude_init":
        return magnitude_init(model)
    if method == "snip":
        return snip(model, x, y)
    if method == "grasp":
        return {name: -s for name, s in grasp(model, x, y).items()}
    if method == "synflow":
        return synflow_scores(model)
    raise ValueError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")


# ---- masks ---------------------------------------------------------------------------------------------------

def masks_at_level(method: str, model, counts: dict, scope: str = "layerwise", x=None, y=None, rng=None,
                   invert: bool = False, synflow_iterations: int = 100) -> dict:
    """Masks keeping `counts` weights (`pruning.level_counts`: per layer, or per pool with global scope),
    pruning the lowest-ranked weights of `method` (the highest with `invert`). SynFlow prunes iteratively, the
    rest at once.

    The model's current weights are scored (restore the initial or W_k weights first); it is not changed.
    """
    sign = -1.0 if invert else 1.0
    if method != "synflow":
        scores = keep_scores(method, model, x, y, rng)
        return pruning.masks_from_scores({n: sign * s for n, s in scores.items()}, counts, scope)
    masks = pruning.full_masks(model)
    sizes = {name: m.size for name, m in masks.items()}
    copy = _float64_abs_clone(model)
    for i in range(1, synflow_iterations + 1):
        scores = synflow_scores(model, masks, _clone=copy)
        step = pruning.scheduled_counts(counts, sizes, i, synflow_iterations)
        masks = pruning.masks_from_scores({n: sign * s for n, s in scores.items()}, step, scope, eligible=masks)
    return masks


shuffle_masks = arrays.shuffle_masks  # numpy only: lives in lth_tf.pruning.arrays (both engines use it)
