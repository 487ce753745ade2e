"""Rewinding for Keras 3 models: the weights of an early step restored exactly, kernels under their masks.

Frankle & Carbin (ICLR 2019) rewind the survivors to their initial values; Frankle et al. (2020) to their values
after k steps (late rewinding). `RewindCallback` records the weights of the first `fit` (after
`rewind_iteration` optimizer steps) and restores them, kernels multiplied by the masks of `lth_tf.keras3.masks`,
when each later `fit` starts. `snapshot` / `restore` are the weights as {"<layer>/<weight>": array}.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lth_tf.keras3.masks import Masks, _kernel_variable, _owned, _set_masks, held_masks, masks_of, prunable_layers


def snapshot(model) -> dict:
    """All weights of `model` (kernels, biases, BatchNorm statistics), keyed "<layer>/<weight>"."""
    out = {}
    for layer, own in _owned(model):
        for v in own:
            key = f"{layer.name}/{v.name}"
            if key in out:
                raise ValueError(f"two weights are named '{key}': give the layers unique names")
            out[key] = ops.convert_to_numpy(v)
    return out


def restore(model, weights: dict, masks: Masks | None = None) -> None:
    """Sets every weight of `model` from `weights` (keys as in `snapshot`), then zeroes the kernel entries
    that `masks` prunes (default: the masks held by the model)."""
    masks = masks_of(model) if masks is None else masks
    kernel_of = {id(_kernel_variable(layer)): layer.name for layer in prunable_layers(model)}
    missing = []
    for layer, own in _owned(model):
        for v in own:
            key = f"{layer.name}/{v.name}"
            if key not in weights:
                missing.append(key)
                continue
            value = np.asarray(weights[key])
            if kernel_of.get(id(v)) in masks:
                value = value * masks[kernel_of[id(v)]]
            v.assign(value.astype(v.dtype))
    if missing:
        raise KeyError(f"no saved value for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))


class RewindCallback(keras.callbacks.Callback):
    """Resets a network to its saved early weights, under its pruning masks, when training starts.

    The first `fit` it takes part in (unless `weights` are given) records the weights after
    `rewind_iteration` optimizer steps of that fit: 0 (the default) is the initialisation (Frankle & Carbin,
    2019); k > 0 is late rewinding (Frankle et al., 2020). Every later `fit` starts from those weights, each
    kernel multiplied by its mask: the masks held by the model (`prune_model`, `apply_masks`; for a model
    reloaded with `keras.saving.load_model`, its kernels' zeros: see `held_masks`), or `masks`.

    Steps are counted with the optimizer's own counter, from its value when the fit starts. Callbacks run only
    between executions of `steps_per_execution` steps (the last one of an epoch may be shorter), so k must be
    a step at which one ends: a k that is not a multiple of `steps_per_execution` is refused when the fit
    starts, and one that falls inside an execution (after an epoch's short one) when training passes it.

    Args:
      weights: a `snapshot` to rewind to; when None, the first fit records one.
      rewind_iteration: the optimizer step of the first fit after which the weights are recorded.
      masks: {layer name: bool array}; set on the model (as `apply_masks` does) when it rewinds. Compile
        before a fit whose masks changed, as the recipe does, so the train step is traced anew.

    Example:
      rewind = RewindCallback(rewind_iteration=100)
      model.fit(x, y, callbacks=[rewind])                   # records the weights after 100 steps
      model = prune_model(model); model.compile(...)
      model.fit(x, y, callbacks=[rewind])                   # rewinds first
    """

    def __init__(self, weights: dict | None = None, rewind_iteration: int = 0, masks: Masks | None = None):
        super().__init__()
        if rewind_iteration < 0:
            raise ValueError("rewind_iteration must be >= 0")
        self.weights = dict(weights) if weights is not None else None
        self.rewind_iteration = int(rewind_iteration)
        self.masks = masks
        self._recording = False
        self._start = self._bound = self._per_call = 0

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        # A rewinding fit holds a reloaded kernel's zeros as its masks; the recording fit trains as it finds the
        # model (a fresh network may have deliberate zeros).
        masks = (self.masks if self.masks is not None else held_masks(model) if self.weights is not None
                 else masks_of(model))
        if masks and (getattr(optimizer, "clipnorm", None) or getattr(optimizer, "global_clipnorm", None)):
            raise ValueError("clipnorm/global_clipnorm would count the gradients of pruned weights; "
                             "use clipvalue or no clipping with a pruned model")
        if self.weights is None:
            self._per_call = int(getattr(model, "steps_per_execution", 1) or 1)
            if self.rewind_iteration % self._per_call:
                raise ValueError(f"rewind_iteration={self.rewind_iteration} is not a multiple of "
                                 f"steps_per_execution={self._per_call}: callbacks see the weights only between "
                                 f"executions; compile with a steps_per_execution that divides it")
            self._recording, self._start, self._bound = True, self._optimizer_steps(model), 0
            if self.rewind_iteration == 0:
                self._record()
        else:
            if self.masks is not None or masks.keys() != masks_of(model).keys():
                # fit has made its train step but traces it at its first call, after this: the constraints
                # set here are in it, unless it was traced by an earlier fit of the same compile.
                _set_masks(model, masks)
            restore(model, self.weights)

    @staticmethod
    def _optimizer_steps(model) -> int:
        return int(ops.convert_to_numpy(model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if not self._recording:
            return
        # One call follows at most steps_per_execution steps, so _bound never falls behind the true count; the
        # optimizer's counter is read only once _bound reaches k (under JAX, self.model syncs the whole state).
        self._bound += self._per_call
        if self._bound < self.rewind_iteration:
            return
        done = self._optimizer_steps(self.model) - self._start
        if done == self.rewind_iteration:
            self._record()
        elif done > self.rewind_iteration:
            raise ValueError(f"step {self.rewind_iteration} fell inside an execution of steps_per_execution="
                             f"{self._per_call} steps (one that ended at step {done}: an epoch's shorter last "
                             f"execution moved the boundaries); choose a rewind_iteration at which an execution "
                             f"ends, or compile with steps_per_execution=1")
        else:
            self._bound = done

    def on_train_end(self, logs=None):
        if self._recording:
            raise ValueError(f"training ran {self._optimizer_steps(self.model) - self._start} steps, fewer than "
                             f"rewind_iteration={self.rewind_iteration}")

    def _record(self):
        self.weights = snapshot(self.model)
        self._recording = False
