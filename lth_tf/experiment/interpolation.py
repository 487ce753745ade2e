"""Linear interpolation between two trained networks, and the error barrier on the path (instability).

Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020.
For two networks W1, W2 of one architecture (optionally under one pruning mask m) and a in [0, 1]:

    W(a)        = m * ((1 - a) W1 + a W2)          pruned weights stay exactly 0 at every a
    error(a)    = 1 - accuracy of W(a)             on the test set, and on a fixed subset of the training set
    instability = max_a error(a) - (error(0) + error(1)) / 2      (the error barrier height)

Two networks are linearly mode connected (the network they were trained from is *stable*) when the barrier is
about 0; the paper calls a barrier below 2% stable. The end points a = 0 and a = 1 are always on the grid.

BatchNorm: W(a) is always evaluated in inference mode, so each BatchNorm layer normalises with the moving mean
and variance W(a) holds. ``bn="interpolate"`` (the default) interpolates them like every other saved weight:
(1 - a) m1 + a m2 for the moving mean, and the same for the moving variance (the variance, not the standard
deviation), with gamma and beta interpolated too; nothing is re-estimated. ``bn="recompute"`` instead resets
them and re-estimates them for each W(a) from `bn_batches` training batches (forward passes in training mode;
the result is the mean of the batch statistics), the interpolated trainable weights unchanged. Which of the two
the ICML paper's experiments used could not be checked, so neither is claimed to be its choice.
``PathResult.bn`` says which one a result used.

    from lth_tf.experiment import interpolation
    from lth_tf.pruning import rewind
    w1, w2 = rewind.snapshot(model_a), rewind.snapshot(model_b)    # two tf_keras models of one architecture
    path = interpolation.linear_path(model, w1, w2, {"test": (x_test, y_test)}, alphas=30)
    path.errors["test"], path.instability["test"]

``model`` only provides the architecture: its weights are put back when the function returns.
"""
from __future__ import annotations

import dataclasses

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import rewind

BN_MODES = ("interpolate", "recompute")


@dataclasses.dataclass
class PathResult:
    """Errors along the path from W1 (alpha 0) to W2 (alpha 1)."""

    alphas: list
    errors: dict  # split -> [error at each alpha]
    bn: str  # "interpolate" or "recompute"

    @property
    def instability(self) -> dict:
        """split -> max over alpha of the error minus the mean of the two end points' errors."""
        return {split: barrier(errors) for split, errors in self.errors.items()}

    @property
    def end_point_errors(self) -> dict:
        return {split: (errors[0], errors[-1]) for split, errors in self.errors.items()}


def barrier(errors) -> float:
    """max(errors) - (errors[0] + errors[-1]) / 2, for errors on a grid from alpha 0 to alpha 1."""
    errors = [float(e) for e in errors]
    if len(errors) < 2:
        raise ValueError("a path needs at least its two end points")
    return max(errors) - (errors[0] + errors[-1]) / 2.0


def alpha_grid(alphas) -> list:
    """An int n gives n evenly spaced points in [0, 1] (the paper: 30); a sequence is used as given, sorted,
    and must contain 0 and 1."""
    if isinstance(alphas, (int, np.integer)):
        if alphas < 2:
            raise ValueError(f"alphas must be at least 2 (the end points), got {alphas}")
        return [float(a) for a in np.linspace(0.0, 1.0, int(alphas))]
    grid = sorted(float(a) for a in alphas)
    if not grid or grid[0] != 0.0 or grid[-1] != 1.0:
        raise ValueError("an alpha grid must start at 0 and end at 1")
    return grid


def interpolate(w1: dict, w2: dict, alpha: float, masks: dict | None = None) -> dict:
    """(1 - alpha) w1 + alpha w2 for every weight (keys as `rewind.snapshot`), kernels under `masks` exactly 0
    where pruned. Non-float arrays (none in the models here) are taken from w1."""
    if set(w1) != set(w2):
        diff = sorted(set(w1) ^ set(w2))
        raise ValueError(f"the two networks have different weights ({', '.join(diff[:3])})")
    out = {}
    for key, a in w1.items():
        b = w2[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes {a.shape} and {b.shape} differ")
        if np.issubdtype(a.dtype, np.floating):
            value = ((1.0 - alpha) * a.astype(np.float64) + alpha * b.astype(np.float64)).astype(a.dtype)
        else:
            value = a.copy()
        layer, _, name = key.rpartition("/")
        if masks and name == "kernel" and layer in masks:
            value = np.where(masks[layer], value, np.zeros_like(value))
        out[key] = value
    return out


def _batches(data, batch_size):
    """(x, y) arrays or a tf.data.Dataset of (x, y) batches -> iterable of (x, y) batches."""
    if isinstance(data, tf.data.Dataset):
        return data
    x, y = data
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def error(model: keras.Model, data, batch_size: int = 1000, predict=None) -> float:
    """1 - accuracy of `model` (inference mode) on (x, y) arrays or a dataset of (x, y) batches."""
    predict = predict or tf.function(lambda x: model(x, training=False))
    correct = total = 0
    for x, y in _batches(data, batch_size):
        labels = np.asarray(y).reshape(-1)
        predicted = np.argmax(np.asarray(predict(tf.convert_to_tensor(x))), axis=-1)
        correct += int((predicted == labels).sum())
        total += len(labels)
    if total == 0:
        raise ValueError("no examples to evaluate on")
    return 1.0 - correct / total


def _bn_layers(model):
    return [layer for _, layer in rewind._layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_bn_statistics(model: keras.Model, data, batches: int = 20, batch_size: int = 128) -> int:
    """Sets every BatchNorm layer's moving mean and variance to the mean of its batch statistics over the first
    `batches` training batches of `data` (forward passes in training mode; trainable weights unchanged).
    Returns the number of batches used (0: the model has no BatchNorm)."""
    layers = _bn_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    used = 0
    try:
        for i, (x, _) in enumerate(_batches(data, batch_size)):
            if i >= batches:
                break
            # moving <- m * moving + (1 - m) * batch with m = i / (i + 1): a running mean of the batch statistics.
            for layer in layers:
                layer.momentum = i / (i + 1.0)
            model(tf.convert_to_tensor(x), training=True)
            used += 1
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return used


def linear_path(model: keras.Model, w1: dict, w2: dict, data: dict, masks: dict | None = None, alphas=30,
                bn: str = "interpolate", bn_data=None, bn_batches: int = 20, bn_batch_size: int = 128,
                batch_size: int = 1000) -> PathResult:
    """Evaluates W(a) = m * ((1 - a) w1 + a w2) at each alpha on every split of `data`.

    model: any tf_keras model with the architecture of w1 and w2 (its weights are restored afterwards).
    data: split name -> (x, y) arrays or a dataset of (x, y) batches, e.g. {"test": ..., "train": ...}.
    masks: {layer: bool array}; pruned kernel entries are 0 at every alpha.
    alphas: the number of evenly spaced points in [0, 1], or the points themselves (with 0 and 1).
    bn: "interpolate" (every weight, BatchNorm moving statistics included) or "recompute" (moving statistics
        re-estimated on `bn_batches` batches of `bn_batch_size` examples of `bn_data` at each alpha).
    """
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    if bn == "recompute" and bn_data is None:
        raise ValueError("bn='recompute' needs bn_data (training batches)")
    grid = alpha_grid(alphas)
    original = rewind.snapshot(model)
    predict = tf.function(lambda x: model(x, training=False))  # one trace for the whole path
    errors = {split: [] for split in data}
    try:
        for alpha in grid:
            rewind.restore(model, interpolate(w1, w2, alpha, masks), masks={})
            if bn == "recompute":
                recompute_bn_statistics(model, bn_data, bn_batches, bn_batch_size)
            for split, split_data in data.items():
                errors[split].append(error(model, split_data, batch_size, predict))
    finally:
        rewind.restore(model, original, masks={})
    return PathResult(alphas=grid, errors=errors, bn=bn)
