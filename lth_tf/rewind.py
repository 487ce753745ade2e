"""Rewinding: putting a network back to its saved early weights under its learned masks.

Weights are exchanged as plain data, ``{"<layer>/<weight>": ndarray}`` (for example ``"fc1/kernel"``,
``"bn1/moving_mean"``), so they can be stored, compared and moved between a plain model and its tfmot-wrapped
twin (tfmot keeps the inner layer's name).

The Keras recipe (a complete script in README.md):

    rewind = lth_tf.RewindCallback()             # remembers the weights the first fit starts from
    model.fit(x, y, epochs=5, callbacks=[rewind])   # dense training
    model = lth_tf.prune_model(model)            # tfmot-wrapped, nested magnitude masks
    model.compile(...)
    model.fit(x, y, epochs=5, callbacks=[rewind, tfmot.sparsity.keras.UpdatePruningStep()])
    # ^ starts from the remembered weights, pruned entries exactly zero
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import numpy as np
import tf_keras as keras

from lth_tf import pruning


def _layers(model):
    """(name, layer) for every weight-holding layer, tfmot wrappers unwrapped, nested models flattened."""
    for layer in model.layers:
        inner = pruning._inner(layer)
        if isinstance(inner, keras.Model):
            yield from _layers(inner)
        elif inner.weights:
            yield inner.name, inner


def _short(variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def snapshot(model) -> dict:
    """All weights of `model` (kernels, biases, BatchNorm), keyed "<layer>/<weight>"; tfmot masks excluded."""
    return {f"{name}/{_short(v)}": v.numpy() for name, layer in _layers(model) for v in layer.weights}


def restore(model, weights: dict, masks: dict | None = None) -> None:
    """Sets `model`'s weights from `weights` (keys as in `snapshot`), then zeroes the kernel entries that
    `masks` prunes. Without `masks`, the masks of the model's tfmot wrappers are used, if it has any."""
    if masks is None:
        masks = pruning.masks_of(model)
    missing = []
    for name, layer in _layers(model):
        for v in layer.weights:
            key = f"{name}/{_short(v)}"
            if key not in weights:
                missing.append(key)
                continue
            value = weights[key]
            if _short(v) == "kernel" and name in masks:
                value = value * masks[name]
            v.assign(value)
    if missing:
        raise KeyError(f"no saved value for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))


class RewindCallback(keras.callbacks.Callback):
    """Resets a network to its saved early weights, under its pruning masks, when training starts.

    The first `fit` it takes part in (unless `weights` are given) records the weights after
    `rewind_iteration` training steps: 0 (the default) is the initialisation, as in Frankle & Carbin (2019);
    k > 0 is "late rewinding" (Frankle et al., 2020). Every later `fit` starts from those weights: each
    kernel is multiplied by its mask, taken from the model's tfmot `PruneLowMagnitude` wrappers, or from
    `masks` when given (a plain model whose masks are kept elsewhere).

    Args:
      weights: a `snapshot` to rewind to; when None, the first fit records one.
      rewind_iteration: the training step after which the first fit records the weights.
      masks: {layer name: bool array}; overrides the wrappers' masks.

    Example:
      rewind = RewindCallback()
      model.fit(x, y, callbacks=[rewind])                    # records the initial weights
      pruned = lth_tf.prune_model(model); pruned.compile(...)
      pruned.fit(x, y, callbacks=[rewind, tfmot.sparsity.keras.UpdatePruningStep()])   # rewinds first
    """

    def __init__(self, weights: dict | None = None, rewind_iteration: int = 0, masks: dict | None = None):
        super().__init__()
        if rewind_iteration < 0:
            raise ValueError("rewind_iteration must be >= 0")
        self.weights = dict(weights) if weights is not None else None
        self.rewind_iteration = int(rewind_iteration)
        self.masks = masks
        self._recording = False
        self._step = 0
        self._supports_tf_logs = True  # batch hooks must not force a device sync on every step

    def on_train_begin(self, logs=None):
        if self.weights is None:
            self._recording, self._step = True, 0
            if self.rewind_iteration == 0:
                self._record()
        else:
            restore(self.model, self.weights, self.masks)

    def on_train_batch_end(self, batch, logs=None):
        if self._recording:
            self._step += 1
            if self._step == self.rewind_iteration:
                self._record()

    def on_train_end(self, logs=None):
        if self._recording:  # training was shorter than rewind_iteration
            raise ValueError(f"training ran {self._step} steps, fewer than rewind_iteration={self.rewind_iteration}")

    def _record(self):
        self.weights = snapshot(self.model)
        self._recording = False

