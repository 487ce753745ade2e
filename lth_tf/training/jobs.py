"""What a training round is asked to do and what it gives back, without TensorFlow: TrainSpec (how rounds train),
Job (one round: start weights, masks, late-rewind recording, backup slot), BackupSlot (where a round's
in-progress state lives), the arrays a backup holds (`backup_arrays`, `backup_meta`) and RoundResult (its curve,
early stop, weights).

Plain data, shared by both training engines: the tf_keras RoundTrainer (lth_tf.training.trainer) and the Keras 3
one (lth_tf.keras3.trainer), so the experiment loop (lth_tf.experiment.experiment) imports no TensorFlow itself.

    spec = TrainSpec(batch_size=60, learning_rate=0.05, iterations=1000, eval_every=100)
    spec.eval_points(200)   # [300, 400, ..., 1000]: a round rewound to iteration 200 evaluates on round 0's grid
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np


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


@dataclasses.dataclass(frozen=True)
class BackupSlot:
    """Where one round's in-progress state lives: load() -> dict of arrays or None; save(dict); clear() removes
    it (a diverged round keeps none)."""

    load: object
    save: object
    clear: object = None


def scheduled_rate(step, rate, boundaries, warmup: int, gamma: float, where, minimum):
    """The learning rate at training iteration `step` (a float tensor), in any tensor library whose `where` and
    `minimum` are given (TensorFlow's for tf_keras, keras.ops for Keras 3):
    lr(t) = rate * gamma^(number of boundaries d with t >= d) * min(1, (t + 1) / warmup)."""
    for boundary in boundaries:
        rate = where(step >= boundary, rate * gamma, rate)
    if warmup:
        rate = rate * minimum(1.0, (step + 1.0) / warmup)
    return rate


def backup_arrays(meta: dict, net: dict, optimizer: list, rewind: dict | None = None, **groups) -> dict:
    """A round's backup as the arrays BackupSlot.save takes, in both engines' format: "meta" (JSON: version,
    iteration, start, chunk_size, total, curve, seconds, optimizer_shapes, and whatever else `meta` holds), the
    network's weights under net/, the optimizer's variables as opt/<i>, late-rewind weights under rewind/, and each
    of `groups` (a list of arrays) as <group>/<i>."""
    arrays = {"meta": np.array(json.dumps(dict(meta, optimizer_shapes=[list(np.shape(v)) for v in optimizer])))}
    arrays.update({f"net/{k}": v for k, v in net.items()})
    arrays.update({f"opt/{i}": v for i, v in enumerate(optimizer)})
    arrays.update({f"rewind/{k}": v for k, v in (rewind or {}).items()})
    for group, values in groups.items():
        arrays.update({f"{group}/{i}": v for i, v in enumerate(values)})
    return arrays


def backup_meta(arrays, spec: TrainSpec, start: int, optimizer_shapes: list, **expected) -> dict | None:
    """The meta of a saved backup if it fits this round, else None (the round then starts over): the `expected`
    entries (version, engine, ...) equal, the same total, chunk and start, optimizer variables of the same shapes,
    and saved at an evaluation point before the last. Adds "net" and "rewind" (None when absent) from the arrays."""
    if not arrays or "meta" not in arrays:
        return None
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError:
        return None
    if (any(meta.get(key) != value for key, value in expected.items())
            or meta.get("total") != spec.total_iterations or meta.get("chunk_size") != spec.chunk
            or meta.get("start") != start or meta.get("iteration") not in spec.eval_points(start)[:-1]
            or meta.get("optimizer_shapes") != [list(shape) for shape in optimizer_shapes]):
        return None
    meta["net"] = {k[4:]: v for k, v in arrays.items() if k.startswith("net/")}
    meta["rewind"] = {k[7:]: v for k, v in arrays.items() if k.startswith("rewind/")} or None
    return meta


@dataclasses.dataclass
class Job:
    """One round for `RoundTrainer.train_many`; the fields are `RoundTrainer.train`'s arguments."""

    start_weights: dict
    masks: dict
    record_at: int | None = None
    on_eval: object = None
    callbacks: tuple = ()
    data_key: int | None = None
    backup: BackupSlot | None = None
    on_resume: object = None
    start_iteration: int = 0
    label: str = "training"  # how a Diverged error names this job (e.g. "trial 0 lottery round 3")

    def batch_key(self) -> tuple:
        """Jobs with equal keys can train side by side in one stacked model (one schedule, one step count)."""
        return self.start_iteration, self.record_at


@dataclasses.dataclass
class RoundResult:
    curve: list  # dicts: iteration, train_loss, val_loss, val_accuracy, test_loss, test_accuracy
    iterations: int
    seconds: float
    weights: dict | None = None  # set by the caller from rewind.snapshot
    rewind_weights: dict | None = None  # recorded at `record_at`, when asked
    resumed_from: int = 0  # the iteration a backup let this round start from (0: from the beginning)

    @property
    def eval_seconds(self) -> float:
        """Time spent evaluating (included in `seconds`); `seconds - eval_seconds` is pure training."""
        return float(sum(point.get("eval_seconds", 0.0) for point in self.curve))

    @property
    def early_stop(self) -> dict:
        """The evaluation with minimum validation loss (the paper's early-stopping criterion)."""
        return min(self.curve, key=lambda point: point["val_loss"])


class Diverged(ArithmeticError):
    """Training diverged: a loss was not finite at an evaluation (the training loss there is the mean over the
    chunk's steps, so a non-finite loss in any step counts). `index`: which of the networks trained together;
    `where`: the round's name once the experiment knows it (`at`). Entry points print str(e) as one line."""

    def __init__(self, iteration: int, quantity: str, value: float, index: int = 0, where: str = "training"):
        super().__init__(f"{where} diverged at iteration {iteration} ({quantity} is {value}); nothing of it is "
                         "stored: a lower --learning_rate (or a warm-up) may help")
        self.iteration, self.quantity, self.value, self.index, self.where = iteration, quantity, value, index, where

    def at(self, where: str) -> "Diverged":
        """The same divergence, named (e.g. "trial 0 lottery round 3")."""
        return Diverged(self.iteration, self.quantity, self.value, self.index, where)
