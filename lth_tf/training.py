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

Resumable rounds: a round's data order is a pure function of (data_key, position) (`train_stream`), and
with `backup=BackupSlot(load, save)` the trainer saves its state after every eval_every chunk (a Keras
"epoch": weights, optimizer slots and step, the curve so far, late-rewind weights) and, when `load()` finds
such a state, continues from that chunk. With op determinism the resumed round equals an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf import dropout, pruning


def make_mask_variables(net: keras.Model) -> dict:
    """One non-trainable all-ones variable per prunable layer of `net`, shaped like its kernel: the round's mask.
    Variables, so that a new round's masks (`assign_masks`) do not retrace the compiled training step."""
    return {layer.name: tf.Variable(tf.ones(layer.kernel.shape, layer.kernel.dtype), trainable=False,
                                    name=f"{layer.name}_mask")
            for layer in pruning.prunable_layers(net)}


def assign_masks(mask_variables: dict, masks: dict) -> None:
    """Sets mask variables from {layer name: 0/1 array}; a layer without an entry is left unpruned."""
    for name, variable in mask_variables.items():
        mask = masks.get(name)
        variable.assign(np.ones(variable.shape) if mask is None else mask.astype(np.float32))


def kernel_masks(net: keras.Model, mask_variables: dict) -> dict:
    """{kernel variable ref: its mask variable}, for `masked_gradients`."""
    return {layer.kernel.ref(): mask_variables[layer.name] for layer in pruning.prunable_layers(net)}


def masked_gradients(grads, variables, masks_by_ref: dict) -> list:
    """The gradients with the entries of pruned kernel weights set to exactly 0."""
    return [g * tf.cast(masks_by_ref[v.ref()], g.dtype) if v.ref() in masks_by_ref else g
            for g, v in zip(grads, variables)]


def looping_train_function(model: keras.Model):
    """A Keras training function that runs `model._steps_per_execution` steps per call and traces
    `train_step` once.

    tf_keras's own loop (`for _ in tf.range(steps): outputs = step(...)`) leaves `outputs` undefined before the
    loop, so autograph traces the step a second time just to learn its structure: for 8 stacked lenet300_100
    networks that was 1.7 s of a 9 s first round on 2 CPU cores. The steps here return nothing through the
    loop; the metrics' results are read once after it, which are the values the last step returned (a
    metric's result is a function of its state). Same steps, same updates, same step counter. Models trained
    under a distribution strategy keep Keras' loop (their per-replica outputs need its reduction).
    """
    if (model._distribution_strategy is not None or tf.distribute.has_strategy() or model._cluster_coordinator
            or model._steps_per_execution is None or model._autotune_steps_per_execution):
        return keras.Model.make_train_function(model)

    def run_step(data):
        outputs = model.train_step(data)
        with tf.control_dependencies(tf.nest.flatten(outputs)):  # count a step only once it has run
            model._train_counter.assign_add(1)

    if model.jit_compile:
        run_step = tf.function(run_step, jit_compile=True, reduce_retracing=True)

    def train_function(iterator):
        def body(i):
            run_step(next(iterator))
            return i + 1
        steps = tf.cast(model._steps_per_execution, tf.int64)
        tf.while_loop(lambda i: i < steps, body, [tf.constant(0, tf.int64)])
        return {metric.name: metric.result() for metric in model.metrics}

    if model.run_eagerly:
        return train_function
    model.train_tf_function = tf.function(train_function, reduce_retracing=True)
    return model.train_tf_function


class MaskedTrainer(keras.Model):
    """Wraps a plain Keras model; trains it with the gradients of masked kernel entries set to zero.

    Masks live in non-trainable variables, so changing them between rounds (`set_masks`) does not retrace
    the compiled training step.
    """

    def __init__(self, net: keras.Model, mask_gradients: bool = True, **kwargs):
        super().__init__(name=f"masked_{net.name}", **kwargs)
        self.net, self.mask_gradients = net, mask_gradients
        self.mask_variables = make_mask_variables(net)

    def call(self, inputs, training=None):
        # Under a mixed_float16 policy the net computes in float16; the loss and metrics take float32 logits.
        return tf.cast(self.net(inputs, training=training), tf.float32)

    def set_masks(self, masks: dict) -> None:
        assign_masks(self.mask_variables, masks)

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = looping_train_function(self)
        return self.train_function

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
        if self.mask_gradients:  # off under tfmot's wrappers, which mask the kernels themselves at every step
            grads = masked_gradients(grads, variables, kernel_masks(self.net, self.mask_variables))
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
    """Linear warm-up, then 10x drops at the boundaries (ResNet / VGG in the paper's Section 4).

    `offset` (a variable, so setting it retraces nothing) is the training iteration the round started from:
    a late-rewound round starts at iteration k with a fresh optimizer (step 0) and its learning rate
    continues from k, lr(step + k), as open_lth does.
    """

    def __init__(self, rate, boundaries, warmup):
        self.rate, self.boundaries, self.warmup = rate, tuple(boundaries), warmup
        self.offset = tf.Variable(0, dtype=tf.int64, trainable=False, name="schedule_offset")

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + tf.cast(self.offset, tf.float32)
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


INFINITY = 1 << 62  # "forever" for tf.data ranges


def train_stream(x, y, batch_size: int, key: int, start_batch: int = 0, augment: bool = False) -> tf.data.Dataset:
    """Infinite batches of (x, y) whose order is a pure function of (key, batch position).

    Data epoch e is the permutation argsort(stateless_uniform(seed=(key, e))) of the training examples;
    batches run across epoch boundaries (as shuffle().repeat().batch() does). Starting at `start_batch`
    costs one permutation plus skipping less than one epoch of indices, so a resumed round, or a round
    run in a fresh process, sees exactly the batches an uninterrupted run would. Only indices are
    shuffled; `x` and `y` (tensors, built once per trainer) are gathered per batch, so no per-round copy
    or cache of the data is made. Every stream has the same element spec: fitting on a new stream reuses
    the traced training step.

    augment (HxWxC images): random flip and 4-px translation, seeded by (key, position of the example).
    """
    n = int(x.shape[0])
    # Tensors or ints alike: RoundTrainer builds streams through one traced function (see there).
    key = tf.cast(key, tf.int64)
    first = tf.cast(start_batch, tf.int64) * tf.cast(batch_size, tf.int64)
    indices = example_order(n, key, first)
    if augment:
        from lth_tf.data import _augment  # the pipeline's own augmentation, keyed by the example's position
        examples = tf.data.Dataset.zip(tf.data.Dataset.range(first, INFINITY), indices).map(
            lambda position, i: _augment(position, (tf.gather(x, i), tf.gather(y, i)), seed=key),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        batches = examples.batch(batch_size)
    else:
        batches = indices.batch(batch_size).map(lambda i: (tf.gather(x, i), tf.gather(y, i)))
    return batches.with_options(_data_sharding()).prefetch(tf.data.AUTOTUNE)


def example_order(n: int, key, first) -> tf.data.Dataset:
    """The training example indices of data key `key` from position `first` on: epoch e is the permutation
    argsort(stateless_uniform([n], seed=(key, e))), epochs one after the other (see `train_stream`).
    A vector of keys gives vectors: element j holds each key's j-th index (stacked trials' orders in one
    stream; their epochs end at the same positions)."""
    key, first = tf.cast(key, tf.int64), tf.cast(first, tf.int64)

    def one(k, epoch):
        return tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([k, epoch])))

    def permutation(epoch):
        if key.shape.rank == 0:
            return tf.data.Dataset.from_tensor_slices(one(key, epoch))
        return tf.data.Dataset.from_tensor_slices(tf.stack([one(key[i], epoch) for i in range(key.shape[0])], 1))

    return tf.data.Dataset.range(first // n, INFINITY).flat_map(permutation).skip(first % n)


def _data_sharding() -> tf.data.Options:
    # In-memory data has no files to shard; say so, rather than have multi-worker runs try and warn.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


@dataclasses.dataclass(frozen=True)
class BackupSlot:
    """Where one round's in-progress state lives: load() -> dict of arrays or None; save(dict)."""

    load: object
    save: object


def _loss_scale_state(optimizer):
    """The dynamic loss scale's variables (current scale, steps since it last changed), or None.

    tf_keras keeps them outside `optimizer.variables`; a backup must carry them, or a resumed mixed-precision
    round scales (so rounds, and skips on overflow) differently from the uninterrupted one.
    """
    state = getattr(optimizer, "_loss_scale", None)
    if not hasattr(state, "current_loss_scale") or not hasattr(state, "counter"):
        return None
    return state.current_loss_scale, state.counter


class _Backup(keras.callbacks.Callback):
    """Saves one network's round state after every evaluation but the last; `unpack` reads a saved one back.

    The state is taken at an evaluation point (an absolute training iteration of `spec.eval_points(start)`):
    weights, optimizer slots and step, the dynamic loss scale under mixed precision, the curve so far,
    late-rewind weights, seconds trained. RoundTrainer.train restores it. With stacked trials each network
    saves its own state into its own job's slot, in the layout of a one-network trainer (`_optimizer_slots`), so a
    backup resumes under any --parallel_trials.
    """

    # 2: iteration-based. A mixed-precision backup without the loss scale (written before it was kept) is
    # not used (`unpack`): the round restarts rather than resume with another scale.
    VERSION = 2

    def __init__(self, slot, points, curve, index, recorder, spec, start, began_seconds, net, optimizer_variables,
                 rewind_weights=None):
        super().__init__()
        self.slot, self.points, self.curve, self.index, self.recorder = slot, points, curve, index, recorder
        self.spec, self.start, self.began_seconds = spec, start, began_seconds
        self.net, self.optimizer_variables = net, optimizer_variables
        self.clock = time.perf_counter()
        self.rewind_weights = rewind_weights

    @classmethod
    def unpack(cls, arrays, optimizer, variables, spec, start):
        """The loaded state if it fits this round's trainer, else None (the round then starts over).
        variables: the optimizer variables of the network the state is for."""
        if not arrays or "meta" not in arrays:
            return None
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            return None
        if (meta.get("version") != cls.VERSION or meta.get("total") != spec.total_iterations
                or meta.get("chunk_size") != spec.chunk or meta.get("start") != start
                or meta.get("iteration") not in spec.eval_points(start)[:-1]
                or meta.get("optimizer_shapes") != [list(v.shape) for v in variables]):
            return None
        loss_scale = _loss_scale_state(optimizer)
        if (loss_scale is not None) != ("loss_scale/0" in arrays):
            return None
        meta["net"] = {k[4:]: v for k, v in arrays.items() if k.startswith("net/")}
        meta["optimizer"] = [arrays[f"opt/{i}"] for i in range(len(variables))]
        meta["loss_scale"] = [arrays[f"loss_scale/{i}"] for i in range(2)] if loss_scale is not None else []
        rewind_weights = {k[7:]: v for k, v in arrays.items() if k.startswith("rewind/")}
        meta["rewind"] = rewind_weights or None
        return meta

    def on_epoch_end(self, epoch, logs=None):
        iteration = self.points[epoch]
        if iteration >= self.spec.total_iterations:
            return  # the round is finished: the store keeps the result, not a backup
        from lth_tf import rewind
        variables = self.optimizer_variables
        if self.recorder is not None and self.recorder.weights is not None:
            self.rewind_weights = self.recorder.weights[self.index]
        meta = {"version": self.VERSION, "iteration": iteration, "start": self.start, "chunk_size": self.spec.chunk,
                "total": self.spec.total_iterations, "curve": self.curve.curves[self.index],
                "seconds": self.began_seconds + time.perf_counter() - self.clock,
                "optimizer_shapes": [list(v.shape) for v in variables]}
        arrays = {"meta": np.array(json.dumps(meta))}
        arrays.update({f"net/{k}": v for k, v in rewind.snapshot(self.net).items()})
        arrays.update({f"opt/{i}": v.numpy() for i, v in enumerate(variables)})
        loss_scale = _loss_scale_state(self.model.optimizer) or ()
        arrays.update({f"loss_scale/{i}": v.numpy() for i, v in enumerate(loss_scale)})
        arrays.update({f"rewind/{k}": v for k, v in (self.rewind_weights or {}).items()})
        self.slot.save(arrays)


class _Recorder(keras.callbacks.Callback):
    """Records every network's weights after `at` training steps of the fit it is in (0: at its start)."""

    def __init__(self, nets, at: int):
        super().__init__()
        self.nets, self.at, self.step, self.weights = nets, at, 0, None
        self._supports_tf_logs = True  # batch hooks must not force a device sync on every step

    def on_train_begin(self, logs=None):
        if self.at == 0:
            self._record()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.weights is None and self.step == self.at:
            self._record()

    def _record(self):
        from lth_tf import rewind
        self.weights = [rewind.snapshot(net) for net in self.nets]


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


@contextlib.contextmanager
def _one_step_per_execution(model):
    """Evaluation runs one batch per call: a multi-step call would end mid-way at the end of a dataset whose
    size Keras cannot see (distributed inputs). Restores the training setting afterwards."""
    variable = getattr(model, "_steps_per_execution", None)
    steps = int(variable.numpy()) if variable is not None else 1
    if steps != 1:
        variable.assign(1)
    try:
        yield
    finally:
        if steps != 1:
            variable.assign(steps)


class _EvalCurve(keras.callbacks.Callback):
    """Evaluates validation and test sets at each evaluation point (the end of a Keras "epoch").

    Losses are the cross-entropy alone: a weight penalty (L2) changes with the mask and would move the
    early-stopping argmin, and the paper's criterion is the validation loss of the classifier.
    suffixes: the metric-name suffix of each network trained ("" for a one-network trainer, "_i" for the
    i-th of stacked trials); `curves[i]` is the i-th network's curve and on_eval[i] is told its points.
    """

    def __init__(self, val, test, points, on_eval, suffixes=("",)):
        super().__init__()
        self.val, self.test, self.points, self.on_eval, self.suffixes = val, test, points, on_eval, suffixes
        self.curves = [[] for _ in suffixes]

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        with _one_step_per_execution(self.model):
            val = self.model.evaluate(self.val, verbose=0, return_dict=True)
            test = self.model.evaluate(self.test, verbose=0, return_dict=True)
        seconds = time.perf_counter() - began
        for curve, suffix, on_eval in zip(self.curves, self.suffixes, self.on_eval):
            point = {"iteration": self.points[epoch], "train_loss": float(logs["cross_entropy" + suffix]),
                     "val_loss": val["cross_entropy" + suffix], "val_accuracy": val["accuracy" + suffix],
                     "test_loss": test["cross_entropy" + suffix], "test_accuracy": test["accuracy" + suffix],
                     # Not written to curve.csv; lets callers tell training time from evaluation time.
                     "eval_seconds": seconds}
            curve.append(point)
            if logs is not None and suffix == "":
                # Keras passes this dict on to the callbacks after this one (TensorBoard logging, History),
                # which find the evaluations under the usual val_* names, and test_* beside them.
                logs.update({key: point[key] for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy")})
            if on_eval:
                on_eval(point)


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

    def batch_key(self) -> tuple:
        """Jobs with equal keys can train side by side in one stacked model (one schedule, one step count)."""
        return self.start_iteration, self.record_at


class RoundTrainer:
    """Trains one network round after round: compiled once, so rounds reuse the traced training step.

    trainer="tfmot" (TrainSpec.trainer) trains through tfmot instead: the model wrapped once in
    PruneLowMagnitude (pruning.wrap), each round's mask assigned to the wrappers and held fixed, with
    tfmot's UpdatePruningStep; the reference against which the fast masked path is tested.

    Given a list of networks of one architecture, it trains up to that many rounds at once as one stacked
    Keras model (`lth_tf.stacked`, --parallel_trials): `train_many` takes one `Job` per network.
    """

    def __init__(self, model, data, spec: TrainSpec):
        self.nets = list(model) if isinstance(model, (list, tuple)) else [model]
        self.model, self.data, self.spec = self.nets[0], data, spec
        self.wrapped = None
        stacked = len(self.nets) > 1
        if stacked:
            from lth_tf import stacked as stacked_lib
            if spec.trainer != "masked" or spec.mixed_precision:
                raise ValueError("stacked trials train with trainer='masked' and without mixed precision "
                                 "(one loss scale would be shared by the trials)")
            self.trainer = stacked_lib.StackedTrainer(self.nets)
        elif spec.trainer == "tfmot":
            # Shares its variables with `model`; the wrappers' masks are set per round (assign_masks).
            self.wrapped = pruning.wrap(self.model, pruning.full_masks(self.model))
            self.trainer = MaskedTrainer(self.wrapped, mask_gradients=False)
        elif spec.trainer == "masked":
            self.trainer = MaskedTrainer(self.model)
        else:
            raise ValueError(f"unknown trainer '{spec.trainer}'; choose masked or tfmot")
        self.steps_per_execution = max(1, min(int(spec.steps_per_execution), spec.chunk))
        losses = {} if stacked else dict(  # a stacked trainer computes its per-trial losses and metrics itself
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")])
        self.trainer.compile(optimizer=make_optimizer(spec), steps_per_execution=self.steps_per_execution,
                             jit_compile=bool(spec.jit_compile), **losses)
        # Keras picks the one-step or the looping training function from the variable's value when it first
        # makes it; make it now, so a first fit at one step per execution (late rewinding) cannot fix it
        # to one step for the rounds after.
        self.trainer.make_train_function()
        # Slots exist from the start (not at the first step), so a backup can be restored into them.
        self.trainer.optimizer.build(self.trainer.trainable_variables)
        self._slots = [_optimizer_slots(self.trainer, net) for net in self.nets] if stacked else None
        # Dropout draws keyed by (round key, step, layer), like the data order: exact resumes (see dropout.py).
        self._dropout_keys = [dropout.make_positional(net, self.trainer.optimizer.iterations) for net in self.nets]
        with tf.device("/cpu:0"):  # the training data, once; each round's stream only gathers from it
            self._x, self._y = tf.constant(data.x_train), tf.constant(data.y_train)
        # Building the tf.data graph of a stream traces its functions, about 25 ms a round on 2 CPU cores (1% of
        # a quickstart round); traced once here, a round's stream takes a millisecond. Same batches.
        x, y, augment = self._x, self._y, spec.augment
        self._make_stream = tf.function(
            lambda key, start_batch, batch_size: train_stream(x, y, batch_size, key, start_batch, augment),
            input_signature=[tf.TensorSpec([], tf.int64)] * 3, autograph=False)
        n = int(x.shape[0])
        self._make_orders = tf.function(  # stacked trials: all networks' example orders in one stream
            lambda keys, start_batch, batch_size: example_order(n, keys, start_batch * batch_size).batch(batch_size),
            input_signature=[tf.TensorSpec([len(self.nets)], tf.int64)] + [tf.TensorSpec([], tf.int64)] * 2,
            autograph=False)
        self.val_data = data.eval_pipeline("validation").with_options(_data_sharding())
        self.test_data = data.eval_pipeline("test").with_options(_data_sharding())

    @property
    def capacity(self) -> int:
        """How many jobs one `train_many` call takes."""
        return len(self.nets)

    def train(self, start_weights: dict, masks: dict, record_at: int | None = None,
              on_eval=None, callbacks=(), data_key: int | None = None, backup: BackupSlot | None = None,
              on_resume=None, start_iteration: int = 0) -> RoundResult:
        """Rewinds to `start_weights` under `masks` and trains to `spec.total_iterations`, evaluating as it goes.

        start_iteration: the training iteration `start_weights` come from. 0 trains the whole schedule; k > 0
            (late rewinding) trains the `total - k` steps from k on, with a fresh optimizer and the
            learning-rate schedule continuing from k. Curve iterations count from the start of training.
        record_at: also return the weights after this many steps (late rewinding's iteration-k weights).
        data_key: picks the round's data order (default: spec.seed); see `train_stream`. The round's first
            step takes batch 0 of that order, whatever `start_iteration` is.
        backup: saves state after each evaluation; a state it loads makes the round continue from there
            (on_resume(iteration) is called first).
        """
        return self.train_many([Job(start_weights, masks, record_at=record_at, on_eval=on_eval,
                                    callbacks=tuple(callbacks), data_key=data_key, backup=backup,
                                    on_resume=on_resume, start_iteration=start_iteration)])[0]

    def train_many(self, jobs: list) -> list:
        """Trains each job on its own network (job i on network i), side by side, and returns their RoundResults
        (weights set). All jobs share `batch_key()` (start iteration, record_at): one schedule drives them.
        Networks without a job this time take no update (their losses are weighted 0). With backups, the jobs
        resume together from a common iteration, or (if their saved states disagree) all start over."""
        from lth_tf import rewind
        spec = self.spec
        if not 1 <= len(jobs) <= self.capacity:
            raise ValueError(f"{len(jobs)} jobs for a trainer of {self.capacity} networks")
        if len({job.batch_key() for job in jobs}) != 1:
            raise ValueError("jobs trained together need the same start_iteration and record_at")
        stacked = self._slots is not None
        if stacked and any(job.callbacks for job in jobs):
            raise ValueError("stacked trials take no per-round callbacks")
        start, record_at = jobs[0].batch_key()
        if not 0 <= start < spec.total_iterations:
            raise ValueError(f"start_iteration {start} is outside [0, {spec.total_iterations})")
        optimizer = self.trainer.optimizer
        reset_optimizer(optimizer)
        schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
        if isinstance(schedule, _Schedule):
            schedule.offset.assign(start)
        keys = [spec.seed if job.data_key is None else job.data_key for job in jobs]
        if stacked:
            self.trainer.set_masks([job.masks for job in jobs])
        else:
            self.trainer.set_masks(jobs[0].masks)
        for dropout_key, key in zip(self._dropout_keys, keys):
            if dropout_key is not None:  # the optimizer's step (restored with a backup) is the other part
                dropout_key.assign(key)
        slots = self._slots or [optimizer.variables]
        states = [_Backup.unpack(job.backup.load(), optimizer, slots[i], spec, start) if job.backup else None
                  for i, job in enumerate(jobs)]
        if len({state["iteration"] if state else None for state in states}) != 1:
            states = [None] * len(jobs)  # saved at different points: resuming them together is impossible
        done = states[0]["iteration"] if states[0] else start
        for i, (job, state) in enumerate(zip(jobs, states)):
            if state:
                if job.on_resume:
                    job.on_resume(done)
                rewind.restore(self.nets[i], state["net"], masks={})  # pruned entries were saved as zeros
                for variable, value in zip(slots[i], state["optimizer"]):
                    variable.assign(value)  # the step counter, shared by stacked networks, too
                for variable, value in zip(_loss_scale_state(optimizer) or (), state["loss_scale"]):
                    variable.assign(value)
            else:
                rewind.restore(self.nets[i], job.start_weights, job.masks)
        if self.wrapped is not None:
            pruning.assign_masks(self.wrapped, jobs[0].masks)
        points = spec.eval_points(start)
        suffixes = [f"_{i}" for i in range(len(jobs))] if stacked else [""]
        curve = _EvalCurve(self.val_data, self.test_data, points, [job.on_eval for job in jobs], suffixes)
        curve.curves = [list(state["curve"]) if state else [] for state in states]
        recorded = states[0]["rewind"] is not None if states[0] else False
        recorder = _Recorder(self.nets[:len(jobs)], record_at - done) if record_at and not recorded else None
        savers = [_Backup(job.backup, points, curve, i, recorder, spec, start, state["seconds"] if state else 0.0,
                          self.nets[i], slots[i], state["rewind"] if state else None)
                  for i, (job, state) in enumerate(zip(jobs, states)) if job.backup]
        extra = [tfmot_update_step()] if self.wrapped is not None else []
        callbacks = [cb for job in jobs for cb in job.callbacks]
        began = time.perf_counter()
        for first, steps, epochs in _segments(points, done):
            # One fit per run of equal chunks: a late-rewound round whose k is not a multiple of eval_every
            # trains the steps up to the next evaluation point first, then whole chunks.
            recording = recorder is not None and recorder.weights is None
            fit_callbacks = ([recorder] if recording else []) + extra + [curve] + savers + callbacks
            every_step = recording or _needs_every_step(callbacks)
            self._set_steps_per_execution(1 if every_step else self.steps_per_execution)
            start_batch = (points[first] - steps) - start
            if stacked:  # networks without a job see the first job's batches; their losses are weighted 0
                stream = self.stacked_stream(keys + keys[:1] * (self.capacity - len(jobs)), start_batch)
            else:
                stream = self.stream(keys[0], start_batch=start_batch)
            self.trainer.fit(stream, epochs=first + epochs, initial_epoch=first, steps_per_epoch=steps,
                             callbacks=fit_callbacks, verbose=0)
        seconds = time.perf_counter() - began
        results = []
        for i, state in enumerate(states):
            rewind_weights = None
            if record_at:
                rewind_weights = recorder.weights[i] if recorder else state["rewind"]
            results.append(RoundResult(
                curve=curve.curves[i], iterations=spec.total_iterations - start,
                seconds=seconds + (state["seconds"] if state else 0.0), weights=rewind.snapshot(self.nets[i]),
                rewind_weights=rewind_weights, resumed_from=done))
        return results

    def stream(self, key: int, start_batch: int = 0) -> tf.data.Dataset:
        """The training batches of a round with data key `key` from batch `start_batch` on (`train_stream`)."""
        def scalar(value):
            return tf.constant(value, tf.int64)
        return self._make_stream(scalar(key), scalar(start_batch), scalar(self.spec.batch_size))

    def stacked_stream(self, keys: list, start_batch: int = 0) -> tf.data.Dataset:
        """Each network's own batches side by side: elements ((x_0, ..., x_n-1), (y_0, ..., y_n-1)), network i
        seeing exactly the batches `stream(keys[i], start_batch)` gives a one-network trainer."""
        def scalar(value):
            return tf.constant(value, tf.int64)
        if self.spec.augment:  # augmentation is keyed per stream: zip whole streams
            streams = tuple(self.stream(key, start_batch) for key in keys)
            return tf.data.Dataset.zip(streams).map(
                lambda *batches: (tuple(b[0] for b in batches), tuple(b[1] for b in batches))).prefetch(2)
        # All networks' index batches ([batch, networks]) from one stream, then one gather for all of them: a
        # stream and a gather per network per step made the input pipeline the bottleneck of small networks.
        orders = self._make_orders(tf.constant(keys, tf.int64), scalar(start_batch), scalar(self.spec.batch_size))
        x, y, count = self._x, self._y, len(keys)

        def gather(indices):
            indices = tf.transpose(indices)
            return tuple(tf.unstack(tf.gather(x, indices), count)), tuple(tf.unstack(tf.gather(y, indices), count))
        return orders.map(gather).with_options(_data_sharding()).prefetch(tf.data.AUTOTUNE)

    def _set_steps_per_execution(self, steps: int) -> None:
        # Keras keeps steps_per_execution in a variable that the compiled training loop reads, so changing it
        # between fits needs no recompile and no retrace (compile() would drop the traced functions).
        variable = getattr(self.trainer, "_steps_per_execution", None)
        if variable is not None and int(variable.numpy()) != steps:
            variable.assign(steps)


def _optimizer_slots(trainer, net) -> list:
    """`net`'s share of the stacked trainer's optimizer variables, in a one-network trainer's layout: the step
    counter, then each of net's trainable variables' slots in order. tf_keras optimizers keep [iterations]
    followed by a fixed number of slots per trainable variable, in the order they were built."""
    variables, trainable = trainer.optimizer.variables, trainer.trainable_variables
    per, rest = divmod(len(variables) - 1, len(trainable))
    if rest:
        raise ValueError(f"cannot split {len(variables)} optimizer variables among {len(trainable)} weights")
    index = {v.ref(): i for i, v in enumerate(trainable)}
    out = [variables[0]]
    for v in net.trainable_variables:
        i = index[v.ref()]
        out.extend(variables[1 + per * i: 1 + per * (i + 1)])
    return out


def _segments(points: list, done: int) -> list:
    """(index of the first point, steps per chunk, chunks) for each fit that takes training from `done` through
    the remaining evaluation `points`: a shorter first chunk, if any, is a fit of its own."""
    index = next(i for i, p in enumerate(points) if p > done)
    segments = []
    if index + 1 < len(points) and points[index] - done != points[index + 1] - points[index]:
        segments.append((index, points[index] - done, 1))
        index, done = index + 1, points[index]
    if index < len(points):
        segments.append((index, points[index] - done, len(points) - index))
    return segments


def tfmot_update_step():
    """tfmot's UpdatePruningStep: its wrappers refuse to train without it."""
    import tensorflow_model_optimization as tfmot
    return tfmot.sparsity.keras.UpdatePruningStep()


def _needs_every_step(callbacks) -> bool:
    """Whether any callback has per-batch training hooks (with several steps per execution it would see
    only every n-th step)."""
    return any(getattr(cb, "_implements_train_batch_hooks", lambda: True)() for cb in callbacks)
