"""Training one round under a fixed mask, at dense speed.

tfmot's wrapper multiplies and re-assigns every kernel on every step and updates its step counters, which
doubles the cost of a small network's step. Within a lottery-ticket round the mask never changes, so lth_tf
trains the plain model (which shares its variables with the tfmot-wrapped one) and instead zeroes the
*gradients* of pruned weights. A pruned weight starts at exactly 0 and its update is then exactly 0 under
SGD, momentum, Adam and decoupled or L2 weight decay, so it stays exactly 0 at every step; surviving weights
get the same updates as under tfmot's wrapper.

    trainer = RoundTrainer(model, data, TrainSpec(batch_size=60, learning_rate=0.05, iterations=1000))
    result = trainer.train(start_weights, masks)        # rewinds, trains, evaluates every eval_every steps
    result.early_stop_iteration, result.test_accuracy_at_early_stop
"""
from __future__ import annotations

import dataclasses
import math
import time

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf import pruning
from lth_tf.rewind import RewindCallback


class MaskedTrainer(keras.Model):
    """Wraps a plain Keras model; trains it with the gradients of masked kernel entries set to zero.

    Masks live in non-trainable variables, so changing them between rounds (`set_masks`) does not retrace
    the compiled training step.
    """

    def __init__(self, net: keras.Model, **kwargs):
        super().__init__(name=f"masked_{net.name}", **kwargs)
        self.net = net
        self._layers_by_name = {layer.name: layer for layer in pruning.prunable_layers(net)}
        self.mask_variables = {
            name: tf.Variable(tf.ones(layer.kernel.shape, layer.kernel.dtype), trainable=False,
                              name=f"{name}_mask")
            for name, layer in self._layers_by_name.items()}

    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def set_masks(self, masks: dict) -> None:
        for name, variable in self.mask_variables.items():
            mask = masks.get(name)
            variable.assign(np.ones(variable.shape) if mask is None else mask.astype(np.float32))

    def train_step(self, data):
        x, y = data[0], data[1]
        scaling = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred)
            scaled = self.optimizer.get_scaled_loss(loss) if scaling else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if scaling:
            grads = self.optimizer.get_unscaled_gradients(grads)
        masks = {layer.kernel.ref(): self.mask_variables[name] for name, layer in self._layers_by_name.items()}
        grads = [g * tf.cast(masks[v.ref()], g.dtype) if v.ref() in masks else g for g, v in zip(grads, variables)]
        self.optimizer.apply_gradients(zip(grads, variables))
        return self.compute_metrics(x, y, y_pred, None)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How one round trains. `iterations` is rounded up to a multiple of `eval_every`."""

    batch_size: int
    learning_rate: float
    iterations: int
    eval_every: int = 100
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.0
    lr_boundaries: tuple = ()  # iterations where the learning rate drops 10x
    warmup_iterations: int = 0
    augment: bool = False
    seed: int = 0
    mixed_precision: bool = False

    @property
    def chunk(self) -> int:
        return max(1, min(self.eval_every, self.iterations))

    @property
    def total_iterations(self) -> int:
        return self.chunk * math.ceil(self.iterations / self.chunk)


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then 10x drops at the boundaries (ResNet / VGG in the paper's Section 4)."""

    def __init__(self, rate, boundaries, warmup):
        self.rate, self.boundaries, self.warmup = rate, tuple(boundaries), warmup

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.rate, tf.float32)
        for boundary in self.boundaries:
            rate = tf.where(step >= boundary, rate * 0.1, rate)
        if self.warmup:
            rate = rate * tf.minimum(1.0, (step + 1.0) / self.warmup)
        return rate

    def get_config(self):
        return {"rate": self.rate, "boundaries": self.boundaries, "warmup": self.warmup}


def make_optimizer(spec: TrainSpec):
    rate = spec.learning_rate
    if spec.lr_boundaries or spec.warmup_iterations:
        rate = _Schedule(spec.learning_rate, spec.lr_boundaries, spec.warmup_iterations)
    if spec.optimizer == "adam":
        optimizer = keras.optimizers.Adam(rate)
    else:
        optimizer = keras.optimizers.SGD(rate, momentum=spec.momentum)
    if spec.mixed_precision:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def reset_optimizer(optimizer) -> None:
    """Zeroes step count and slots: each round starts with a fresh optimizer without a recompile."""
    base = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in base.variables:
        variable.assign(tf.zeros_like(variable))


@dataclasses.dataclass
class RoundResult:
    curve: list  # dicts: iteration, train_loss, val_loss, val_accuracy, test_loss, test_accuracy
    iterations: int
    seconds: float
    weights: dict | None = None  # set by the caller from rewind.snapshot
    rewind_weights: dict | None = None  # recorded at `record_at`, when asked

    @property
    def early_stop(self) -> dict:
        """The evaluation with minimum validation loss (the paper's early-stopping criterion)."""
        return min(self.curve, key=lambda point: point["val_loss"])


class _EvalCurve(keras.callbacks.Callback):
    """Evaluates validation and test sets at the end of each `eval_every`-step chunk (a Keras "epoch")."""

    def __init__(self, val, test, chunk, on_eval):
        super().__init__()
        self.val, self.test, self.chunk, self.on_eval = val, test, chunk, on_eval
        self.curve = []

    def on_epoch_end(self, epoch, logs=None):
        val = self.model.evaluate(self.val, verbose=0, return_dict=True)
        test = self.model.evaluate(self.test, verbose=0, return_dict=True)
        point = {"iteration": (epoch + 1) * self.chunk, "train_loss": float(logs["loss"]),
                 "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                 "test_loss": test["loss"], "test_accuracy": test["accuracy"]}
        self.curve.append(point)
        if logs is not None:
            # Keras passes this dict on to the callbacks after this one (TensorBoard logging, History),
            # which find the evaluations under the usual val_* names, and test_* beside them.
            logs.update({key: point[key] for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy")})
        if self.on_eval:
            self.on_eval(point)


class RoundTrainer:
    """Trains one network round after round: compiled once, so rounds reuse the traced training step."""

    def __init__(self, model: keras.Model, data, spec: TrainSpec):
        self.model, self.data, self.spec = model, data, spec
        self.trainer = MaskedTrainer(model)
        self.trainer.compile(optimizer=make_optimizer(spec),
                             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=["accuracy"])
        self.train_data = data.train_pipeline(spec.batch_size, spec.seed, augment=spec.augment)
        self.val_data = data.eval_pipeline("validation")
        self.test_data = data.eval_pipeline("test")

    def train(self, start_weights: dict, masks: dict, record_at: int | None = None,
              on_eval=None, callbacks=()) -> RoundResult:
        """Rewinds to `start_weights` under `masks`, trains `spec.iterations` steps, evaluating as it goes.

        record_at: also return the weights after this many steps (late rewinding).
        """
        spec = self.spec
        reset_optimizer(self.trainer.optimizer)
        self.trainer.set_masks(masks)
        curve = _EvalCurve(self.val_data, self.test_data, spec.chunk, on_eval)
        recorder = RewindCallback(rewind_iteration=record_at) if record_at else None
        all_callbacks = [RewindCallback(weights=start_weights, masks=masks)]
        all_callbacks += [recorder] if recorder else []
        all_callbacks += [curve, *callbacks]
        began = time.perf_counter()
        self.trainer.fit(self.train_data, epochs=spec.total_iterations // spec.chunk,
                         steps_per_epoch=spec.chunk, callbacks=all_callbacks, verbose=0)
        seconds = time.perf_counter() - began
        return RoundResult(curve=curve.curve, iterations=spec.total_iterations, seconds=seconds,
                           rewind_weights=recorder.weights if recorder else None)
