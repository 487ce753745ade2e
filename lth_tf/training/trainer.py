"""Training rounds under fixed masks: RoundTrainer, one network or several stacked, rounds reusing one traced step.

    trainer = RoundTrainer(model, data, TrainSpec(batch_size=60, learning_rate=0.05, iterations=1000))
    result = trainer.train(start_weights, masks)        # rewinds, trains, evaluates every eval_every steps
    result.early_stop, result.curve

The step is lth_tf.training.masked's (gradients of pruned weights zeroed), or tfmot's wrappers (trainer="tfmot",
the reference); the data order lth_tf.training.streams'; resuming lth_tf.training.backup's.
"""
from __future__ import annotations

import time

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import masks as pruning
from lth_tf.training import dropout, frozen
from lth_tf.training.backup import _Backup, _loss_scale_state, _Recorder
from lth_tf.training.curve import _EvalCurve
from lth_tf.training.jobs import BackupSlot, Diverged, Job, RoundResult  # noqa: F401  (re-exported)
from lth_tf.training.masked import MaskedTrainer
from lth_tf.training.schedule import TrainSpec, _Schedule, make_optimizer, reset_optimizer
from lth_tf.training.streams import PREFETCH, example_order, in_memory_options, train_stream


class RoundTrainer:
    """Trains one network round after round: compiled once, so rounds reuse the traced training step.

    trainer="tfmot" (TrainSpec.trainer) trains through tfmot instead: the model wrapped once in
    PruneLowMagnitude (pruning.wrap), each round's mask assigned to the wrappers and held fixed, with
    tfmot's UpdatePruningStep; the reference against which the fast masked path is tested.

    Given a list of networks of one architecture, it trains up to that many rounds at once as one stacked
    Keras model (`lth_tf.training.stacked`, --parallel_trials): `train_many` takes one `Job` per network.
    """

    def __init__(self, model, data, spec: TrainSpec):
        self.nets = list(model) if isinstance(model, (list, tuple)) else [model]
        self.model, self.data, self.spec = self.nets[0], data, spec
        self.wrapped = None
        stacked = len(self.nets) > 1
        frozen_refs = frozenset(ref for net in self.nets for ref in frozen.refs(
            net, batchnorm=spec.batchnorm_frozen, output=spec.output_frozen))
        if stacked:
            from lth_tf.training import stacked as stacked_lib
            if spec.trainer != "masked" or spec.mixed_precision:
                raise ValueError("stacked trials train with trainer='masked' and without mixed precision "
                                 "(one loss scale would be shared by the trials)")
            self.trainer = stacked_lib.StackedTrainer(self.nets, frozen_refs=frozen_refs)
        elif spec.trainer == "tfmot":
            # Shares its variables with `model`; the wrappers' masks are set per round (assign_masks).
            self.wrapped = pruning.wrap(self.model, pruning.full_masks(self.model))
            self.trainer = MaskedTrainer(self.wrapped, mask_gradients=False, frozen_refs=frozen_refs)
        elif spec.trainer == "masked":
            self.trainer = MaskedTrainer(self.model, frozen_refs=frozen_refs)
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
        self.val_data = data.eval_pipeline("validation").with_options(in_memory_options())
        self.test_data = data.eval_pipeline("test").with_options(in_memory_options())

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
        from lth_tf.pruning import rewind
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
            try:
                self.trainer.fit(stream, epochs=first + epochs, initial_epoch=first, steps_per_epoch=steps,
                                 callbacks=fit_callbacks, verbose=0)
            except Diverged as e:
                raise e.at(jobs[e.index].label) from None
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
                lambda *batches: (tuple(b[0] for b in batches), tuple(b[1] for b in batches))).prefetch(PREFETCH)
        # All networks' index batches ([batch, networks]) from one stream, then one gather for all of them: a
        # stream and a gather per network per step made the input pipeline the bottleneck of small networks.
        orders = self._make_orders(tf.constant(keys, tf.int64), scalar(start_batch), scalar(self.spec.batch_size))
        x, y, count = self._x, self._y, len(keys)

        def gather(indices):
            indices = tf.transpose(indices)
            return tuple(tf.unstack(tf.gather(x, indices), count)), tuple(tf.unstack(tf.gather(y, indices), count))
        return orders.map(gather).with_options(in_memory_options()).prefetch(PREFETCH)

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
