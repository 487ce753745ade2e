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
    # ^ starts from the remembered weights; pruned entries exactly zero then and after every step
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import masks as pruning


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


def _wrappers(model):
    """Every tfmot PruneLowMagnitude wrapper of `model`, nested models included."""
    for layer in model.layers:
        if isinstance(layer, pruning.PruneLowMagnitude):
            yield layer
        elif isinstance(layer, keras.Model):
            yield from _wrappers(layer)


def _masker(model):
    """One TensorFlow call doing what tfmot's forward pass does to each pruned weight: weight *= mask (the
    wrapper's current mask). One call for all kernels: eager ops would cost one dispatch per read, multiply
    and assign (on 2 CPU cores, 12 kernels took 4 ms eagerly, 1 ms as one call)."""
    pairs = [(weight, mask) for wrapper in _wrappers(model) for weight, mask, _ in wrapper.pruning_vars]

    @tf.function(autograph=False)
    def remask():
        for weight, mask in pairs:
            weight.assign(weight * tf.cast(mask, weight.dtype), read_value=False)
    return remask if pairs else None


class RewindCallback(keras.callbacks.Callback):
    """Resets a network to its saved early weights, under its pruning masks, when training starts, and keeps
    its pruned weights at exactly 0 after every training step.

    The first `fit` it takes part in (unless `weights` are given) records the weights after
    `rewind_iteration` training steps: 0 (the default) is the initialisation, as in Frankle & Carbin (2019);
    k > 0 is "late rewinding" (Frankle et al., 2020). Every later `fit` starts from those weights: each
    kernel is multiplied by its mask, taken from the model's tfmot `PruneLowMagnitude` wrappers, or from
    `masks` when given (a plain model whose masks are kept elsewhere).

    Counting steps. k counts optimizer steps (`model.optimizer.iterations`) from the start of the recording
    fit, so steps the optimizer took in an earlier fit do not count. Keras calls a callback once per execution
    of `steps_per_execution` steps, so to record after exactly k steps the callback shortens the executions
    that would pass step k (it sets `model.steps_per_execution`, a public setting Keras reads before every
    execution) and puts the compiled value back once the weights are recorded: only the first k steps run in
    smaller executions. `steps_per_execution="auto"` retunes that value on its own and is refused when k > 0.
    A recording fit shorter than k steps is an error; the next fit then records from its own start.

    Exact zeros. tfmot multiplies a kernel by its mask at the start of each forward pass
    (`weight.assign(weight * mask)` in the wrapper's `call`), and the optimizer step that follows moves the
    pruned entries again: the gradient of a pruned entry is not 0, and momentum or Adam keep moving it. A
    callback, a TensorBoard histogram or a checkpoint taken between steps would see those non-zeros.
    So after every execution this callback applies the same `weight * mask` assign to each kernel a tfmot
    wrapper prunes, with the wrapper's current mask, in one TensorFlow call (a plain model rewound under
    `masks` is left to whatever keeps its masks). Training is unchanged, bit for bit: the
    next forward pass would have multiplied by the same mask. Inside an execution of several steps the entries
    still move between steps, where no callback can see them, and each forward pass zeroes them before use.
    List this callback before the callbacks that read the weights.

    Args:
      weights: a `snapshot` to rewind to; when None, the first fit records one.
      rewind_iteration: the optimizer step of the recording fit after which the weights are recorded.
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
        self._step = 0         # optimizer steps of the recording fit so far
        self._start = 0        # optimizer.iterations when the recording fit began
        self._compiled = None  # (model.steps_per_execution, its compiled value) while executions are shortened
        self._remask = None
        self._supports_tf_logs = True  # after recording, batch hooks must not force a device sync on every step

    def on_train_begin(self, logs=None):
        self._release()  # a fit that stopped with an exception before on_train_end
        self._remask = _masker(self.model)
        if self.weights is not None:
            restore(self.model, self.weights, self.masks)
            return
        self._recording, self._step = True, 0
        self._start = int(self.model.optimizer.iterations.numpy())
        spe = getattr(self.model, "steps_per_execution", None)
        if self.rewind_iteration == 0:
            self._record()
        elif getattr(self.model, "autotune_steps_per_execution", False):
            self._recording = False
            raise ValueError(f"RewindCallback(rewind_iteration={self.rewind_iteration}) cannot stop at an exact "
                             "step while steps_per_execution='auto' retunes it: compile with an integer value")
        elif spe is not None and int(spe.numpy()) > 1:
            self._compiled = (spe, int(spe.numpy()))

    def on_epoch_begin(self, epoch, logs=None):
        if self._recording:  # Keras puts its value back after an epoch's last, shorter execution
            self._aim()

    def on_train_batch_end(self, batch, logs=None):
        if self._remask is not None:  # see "Exact zeros" above
            self._remask()
        if not self._recording:
            return
        self._step = int(self.model.optimizer.iterations.numpy()) - self._start
        if self._step == self.rewind_iteration:
            self._record()
        elif self._step > self.rewind_iteration:  # a train_step that updates more than once per batch
            self._recording = False
            self._release()
            raise RuntimeError(f"the optimizer passed step {self.rewind_iteration} between two batch ends (now "
                               f"at {self._step}): the weights after it cannot be recorded")
        else:
            self._aim()

    def on_train_end(self, logs=None):
        self._release()
        if self._recording:  # training was shorter than rewind_iteration
            self._recording = False
            raise ValueError(f"training ran {self._step} steps, fewer than rewind_iteration={self.rewind_iteration}")

    def _aim(self):
        """Shortens the next execution so that it ends at step rewind_iteration rather than past it."""
        if self._compiled is not None:
            variable, compiled = self._compiled
            variable.assign(min(compiled, self.rewind_iteration - self._step))

    def _release(self):
        if self._compiled is not None:
            variable, compiled = self._compiled
            variable.assign(compiled)
            self._compiled = None

    def _record(self):
        self.weights = snapshot(self.model)
        self._recording = False
        self._release()
