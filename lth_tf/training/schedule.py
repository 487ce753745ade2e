"""How a round trains: TrainSpec, the optimizer and its learning-rate schedule (warm-up, drops), mixed
precision, and a fresh optimizer state for each round.

The learning rate at training iteration t (counted from the start of training, so a late-rewound round
continues the schedule) is  lr(t) = rate * gamma^(number of drops d with t >= d) * min(1, (t + 1) / warmup):
a linear warm-up over the first `warmup_iterations` steps (Goyal et al. 2017; the paper's Figures 7 and 8), and
a drop by `lr_gamma` (0.1 in the paper's ResNet-18 / VGG-19 recipe) at each of `lr_boundaries`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How one round trains. `iterations` is rounded up to a multiple of `eval_every`."""

    batch_size: int
    learning_rate: float
    iterations: int
    eval_every: int = 100
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.0
    lr_boundaries: tuple = ()  # iterations where the learning rate drops (times lr_gamma)
    warmup_iterations: int = 0
    augment: bool = False
    seed: int = 0
    mixed_precision: bool = False
    # "masked" (lth_tf's fast path: gradients of pruned weights zeroed) or "tfmot" (the reference: the model
    # wrapped in tfmot's PruneLowMagnitude, trained with UpdatePruningStep, the assigned mask held fixed).
    trainer: str = "masked"
    # Training steps per call into TensorFlow: fewer Python round trips per step (lenet300_100 trains about
    # 1.4x faster on CPU at 50 than at 1) and the same updates. Fits whose callbacks need every step
    # (late-rewind recording, user callbacks with batch hooks) run one step per call.
    steps_per_execution: int = 50
    # XLA-compile the training step (Keras' jit_compile). Pruned weights stay exactly 0 (their gradients are
    # multiplied by 0 inside the compiled step too); surviving ones differ from the uncompiled step's only by
    # float rounding. `experiment.xla_pays` says where it was measured to pay (--xla=auto).
    jit_compile: bool = False
    lr_gamma: float = 0.1  # the factor of each drop at lr_boundaries
    nesterov: bool = False  # Nesterov momentum (SGD)
    # Parameters that keep their start values: their gradients are set to exactly 0 (lth_tf.training.frozen).
    batchnorm_frozen: bool = False  # every BatchNorm layer's gamma and beta (its moving statistics still update)
    output_frozen: bool = False  # the output layer's kernel and bias

    @property
    def chunk(self) -> int:
        return max(1, min(self.eval_every, self.iterations))

    @property
    def total_iterations(self) -> int:
        return self.chunk * math.ceil(self.iterations / self.chunk)

    def eval_points(self, start: int = 0) -> list:
        """The iterations (counted from the start of training) at which a round that starts at iteration
        `start` evaluates: the multiples of `chunk` after `start`, up to `total_iterations`. A late-rewound
        round (start k > 0) thus evaluates on the same grid as round 0, so the curves of rounds line up."""
        first = (start // self.chunk + 1) * self.chunk
        return list(range(first, self.total_iterations + 1, self.chunk))


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
        rate = tf.constant(self.rate, tf.float32)
        for boundary in self.boundaries:
            rate = tf.where(step >= boundary, rate * self.gamma, rate)
        if self.warmup:
            rate = rate * tf.minimum(1.0, (step + 1.0) / self.warmup)
        return rate

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
