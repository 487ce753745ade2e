"""How a round trains: TrainSpec, the optimizer and its learning-rate schedule (warm-up, drops), mixed
precision, and a fresh optimizer state for each round.

The learning rate at training iteration t (counted from the start of training, so a late-rewound round
continues the schedule) is  lr(t) = rate * gamma^(number of drops d with t >= d) * min(1, (t + 1) / warmup):
a linear warm-up over the first `warmup_iterations` steps (Goyal et al. 2017; the paper's Figures 7 and 8), and
a drop by `lr_gamma` (0.1 in the paper's ResNet-18 / VGG-19 recipe) at each of `lr_boundaries`.
"""
from __future__ import annotations

import contextlib

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from lth_tf.training.jobs import TrainSpec, scheduled_rate  # noqa: F401  (TrainSpec re-exported)


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then drops by `gamma` at the boundaries (ResNet / VGG in the paper's Section 4).

    `offset` (a variable, so setting it retraces nothing) is the training iteration the round started from:
    a late-rewound round starts at iteration k with a fresh optimizer (step 0) and its learning rate
    continues from k, lr(step + k), as open_lth does.
    """

    def __init__(self, rate, boundaries, warmup, gamma=0.1):
        self.rate, self.boundaries, self.warmup, self.gamma = rate, tuple(boundaries), warmup, gamma
        self.offset = tf.Variable(0, dtype=tf.int64, trainable=False, name="schedule_offset")

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + tf.cast(self.offset, tf.float32)
        return scheduled_rate(step, tf.constant(self.rate, tf.float32), self.boundaries, self.warmup, self.gamma,
                              tf.where, tf.minimum)

    def get_config(self):
        return {"rate": self.rate, "boundaries": self.boundaries, "warmup": self.warmup, "gamma": self.gamma}


def make_optimizer(spec: TrainSpec):
    rate = spec.learning_rate
    if spec.lr_boundaries or spec.warmup_iterations:
        rate = _Schedule(spec.learning_rate, spec.lr_boundaries, spec.warmup_iterations, spec.lr_gamma)
    if spec.optimizer == "adam":
        optimizer = keras.optimizers.Adam(rate)
    else:
        optimizer = keras.optimizers.SGD(rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.mixed_precision:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Builds and trains the models made inside under Keras' mixed_float16 policy when `mixed` (float16
    compute, float32 variables; MaskedTrainer returns float32 logits, make_optimizer scales the loss).
    Keras reads the global policy when a layer is made, so models must be built inside. Restores the old one."""
    if not mixed:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def reset_optimizer(optimizer) -> None:
    """Zeroes step count and slots: each round starts with a fresh optimizer without a recompile."""
    base = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in base.variables:
        variable.assign(tf.zeros_like(variable))
    # Mixed precision: the dynamic loss scale starts afresh too (tf_keras keeps it outside `variables`).
    state = getattr(optimizer, "_loss_scale", None)
    if base is not optimizer and hasattr(state, "_current_loss_scale"):
        state._current_loss_scale.assign(optimizer.initial_scale)
        state._counter.assign(0)
