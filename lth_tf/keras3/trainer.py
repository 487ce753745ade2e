"""Training rounds under fixed masks with Keras 3, on TensorFlow, JAX or PyTorch: the Keras 3 engine's RoundTrainer.

The same contract as the tf_keras engine's lth_tf.training.trainer.RoundTrainer (`train_many(jobs)` ->
[RoundResult]), written with `keras` and numpy only:

- masks: the optimizer holds one 0/1 variable per pruned kernel (its own state, so a new round's masks change
  no traced step on any backend); in every step it multiplies the kernel's gradient by it before the update
  (`_MaskedOptimizer.apply`), as the tf_keras engine's masked trainer does. A pruned weight starts the round at
  exactly 0 with zeroed slots (`reset`, or a backup saved from such a round), so its update under SGD, momentum,
  Nesterov and Adam is exactly 0 and it stays 0 after every step, with no re-masking of the kernels;
- evaluation: validation and test sets every `eval_every` iterations (cross-entropy without the weight
  penalty, and accuracy); the early stop is the evaluation of least validation loss (RoundResult.early_stop);
- late rewinding: `record_at=k` returns the weights after k steps; a round started at iteration k
  (`start_iteration`) trains k..T with a fresh optimizer, the learning-rate schedule continuing from k
  (lr(step + k), as lth_tf.training.schedule and open_lth do);
- resuming: the rules of lth_tf.training.backup: after every evaluation but the last, the weights, the
  optimizer's step and slots, the curve so far and the late-rewind weights go to the job's BackupSlot; a
  saved state that fits this round (same total, chunk, start, optimizer shapes, an evaluation point) makes the
  round continue there, and a resumed round sees the batches an uninterrupted one would (lth_tf.keras3.batches:
  on TensorFlow the tf_keras engine's data order, elsewhere a numpy one; a backup of another backend is not used).

Data are numpy arrays, fed to `fit` one evaluation chunk at a time (shuffle off, our order): no tf.data.

    trainer = Keras3RoundTrainer(model, data, TrainSpec(batch_size=60, learning_rate=0.05, iterations=1000))
    [result] = trainer.train_many([Job(start_weights, masks)])
"""
from __future__ import annotations

import math
import time

import keras
import numpy as np
from keras import ops

from lth_tf.keras3.batches import Batches
from lth_tf.keras3.masks import prunable_layers
from lth_tf.keras3.rewind import restore, snapshot
from lth_tf.training.jobs import Diverged, RoundResult, backup_arrays, backup_meta, scheduled_rate

BACKUP_VERSION = 1
_PIECE_BYTES = 64 << 20  # a fit's batches are gathered at most this many bytes at a time


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then drops by `gamma` at the boundaries (lth_tf.training.jobs.scheduled_rate), evaluated
    at step + offset, the optimizer's `schedule_offset` variable (the iteration a late-rewound round starts from),
    as lth_tf.training.schedule."""

    def __init__(self, rate, boundaries, warmup, gamma=0.1):
        self.rate, self.boundaries, self.warmup, self.gamma = rate, tuple(boundaries), warmup, gamma
        self.offset = None

    def __call__(self, step):
        step = ops.cast(step, "float32") + (ops.cast(self.offset, "float32") if self.offset is not None else 0.0)
        return scheduled_rate(step, ops.convert_to_tensor(self.rate, "float32"), self.boundaries, self.warmup,
                              self.gamma, ops.where, ops.minimum)

    def get_config(self):
        return {"rate": self.rate, "boundaries": self.boundaries, "warmup": self.warmup, "gamma": self.gamma}


class _MaskedOptimizer:
    """Mixed into a Keras 3 optimizer: masks gradients and kernels of the pruned layers in every step."""

    def watch(self, kernels: dict) -> None:
        """kernels: {layer name: its kernel variable}; call before `build`."""
        self._kernel_names = {id(v): name for name, v in kernels.items()}

    def build(self, variables):
        super().build(variables)
        # Optimizer variables, so that under JAX they are part of the state the compiled step is given.
        self._masks = [self.add_variable(v.shape, initializer="ones", dtype=v.dtype, name=f"mask_{i}")
                       if id(v) in self._kernel_names else None for i, v in enumerate(variables)]
        self._mask_of = {self._kernel_names[id(v)]: m for v, m in zip(variables, self._masks) if m is not None}
        self._offset = self.add_variable((), initializer="zeros", dtype="float32", name="schedule_offset")
        if isinstance(self._learning_rate, _Schedule):
            self._learning_rate.offset = self._offset

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
        masks = [self._masks[self._get_variable_index(v)] for v in variables]
        grads = [g if m is None or g is None else g * ops.cast(m, g.dtype) for g, m in zip(grads, masks)]
        super().apply(grads, trainable_variables)

    def set_masks(self, masks: dict) -> None:
        for name, variable in self._mask_of.items():
            mask = masks.get(name)
            variable.assign(np.ones(variable.shape, variable.dtype) if mask is None
                            else np.asarray(mask).astype(variable.dtype))

    def state_variables(self) -> list:
        """The step counter and the slots (what a fresh round zeroes and a backup saves), in a fixed order."""
        fixed = {id(m) for m in self._masks if m is not None} | {id(self._offset)}
        if isinstance(self._learning_rate, keras.Variable):
            fixed.add(id(self._learning_rate))
        return [v for v in self.variables if id(v) not in fixed]

    def reset(self, start: int) -> None:
        """A fresh optimizer for a round that starts at iteration `start` (the schedule continues from it)."""
        for v in self.state_variables():
            v.assign(np.zeros(v.shape, v.dtype))
        self._offset.assign(float(start))


def make_optimizer(spec) -> keras.optimizers.Optimizer:
    rate = spec.learning_rate
    if spec.lr_boundaries or spec.warmup_iterations:
        rate = _Schedule(spec.learning_rate, spec.lr_boundaries, spec.warmup_iterations, spec.lr_gamma)
    if spec.optimizer == "adam":
        cls, kwargs = keras.optimizers.Adam, {}
    else:
        cls, kwargs = keras.optimizers.SGD, {"momentum": spec.momentum, "nesterov": spec.nesterov}
    masked = type(f"Masked{cls.__name__}", (_MaskedOptimizer, cls), {})
    return masked(learning_rate=rate, **kwargs)


class Keras3RoundTrainer:
    """Trains one Keras 3 network round after round (compiled once); see the module docstring."""

    capacity = 1  # stacked trials (--parallel_trials) are not written for Keras 3

    def __init__(self, model, data, spec):
        self.model, self.data, self.spec = model, data, spec
        self.backend = keras.backend.backend()
        self.optimizer = make_optimizer(spec)
        self.optimizer.watch({layer.name: layer.kernel for layer in prunable_layers(model)})
        self.optimizer.build(model.trainable_variables)
        # JAX compiles every step; on TensorFlow XLA follows the spec (--xla), as in the tf_keras engine. Several
        # steps per call into the backend, as the tf_keras engine (TrainSpec.steps_per_execution): the same updates.
        jit = True if self.backend == "jax" else bool(spec.jit_compile)
        model.compile(optimizer=self.optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                               keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")],
                      jit_compile=jit, steps_per_execution=max(1, min(int(spec.steps_per_execution), spec.chunk)))

    def train(self, start_weights: dict, masks: dict, **job) -> RoundResult:
        from lth_tf.training.jobs import Job
        return self.train_many([Job(start_weights, masks, **job)])[0]

    def train_many(self, jobs: list) -> list:
        if len(jobs) != 1:
            raise ValueError(f"{len(jobs)} jobs for a Keras 3 trainer of one network")
        job, spec, model, optimizer = jobs[0], self.spec, self.model, self.optimizer
        if job.callbacks:
            raise ValueError("the Keras 3 engine takes no per-round callbacks")
        start, record_at = job.start_iteration, job.record_at
        if not 0 <= start < spec.total_iterations:
            raise ValueError(f"start_iteration {start} is outside [0, {spec.total_iterations})")
        optimizer.reset(start)
        optimizer.set_masks(job.masks)
        batches = Batches(self.data.x_train, self.data.y_train, spec.batch_size,
                          spec.seed if job.data_key is None else job.data_key, spec.augment,
                          tensorflow_order=self.backend == "tensorflow")
        state = _unpack(job.backup.load(), optimizer, spec, start, self.backend) if job.backup else None
        if state:
            done = state["iteration"]
            if job.on_resume:
                job.on_resume(done)
            restore(model, state["net"], masks={})  # pruned entries were saved as zeros
            for variable, value in zip(optimizer.state_variables(), state["optimizer"]):
                variable.assign(value)
        else:
            done = start
            restore(model, job.start_weights, job.masks)
        curve = list(state["curve"]) if state else []
        rewind_weights = state["rewind"] if state else None
        seconds_before = state["seconds"] if state else 0.0
        began = time.perf_counter()
        for point in spec.eval_points(start):
            if point <= done:
                continue
            losses = []
            if record_at and rewind_weights is None and done < record_at <= point:
                # Late rewinding: the weights after exactly k steps, then the rest of the chunk.
                losses.append((record_at - done, self._fit(batches, done - start, record_at - done)))
                done = record_at
                rewind_weights = snapshot(model)
            if point > done:
                losses.append((point - done, self._fit(batches, done - start, point - done)))
            done = point
            entry = self._evaluate(point, sum(n * loss for n, loss in losses) / sum(n for n, _ in losses))
            for quantity in ("train_loss", "val_loss", "test_loss"):  # as the tf_keras engine: before any backup
                if not math.isfinite(entry[quantity]):
                    raise Diverged(point, quantity.replace("_", " "), entry[quantity], where=job.label)
            curve.append(entry)
            if job.on_eval:
                job.on_eval(entry)
            if job.backup and point < spec.total_iterations:
                job.backup.save(_pack(model, optimizer, spec, start, point, curve, rewind_weights,
                                      seconds_before + time.perf_counter() - began, self.backend))
        if record_at and rewind_weights is None and record_at == start:
            rewind_weights = job.start_weights
        return [RoundResult(curve=curve, iterations=spec.total_iterations - start,
                            seconds=seconds_before + time.perf_counter() - began, weights=snapshot(model),
                            rewind_weights=rewind_weights if record_at else None,
                            resumed_from=state["iteration"] if state else start)]

    def _fit(self, batches: Batches, first_batch: int, steps: int) -> float:
        """Trains `steps` steps on the round's batches from position `first_batch`; their mean training loss."""
        per_step = max(1, self.spec.batch_size * self.data.x_train[:1].nbytes)
        piece, total = max(1, _PIECE_BYTES // per_step), 0.0
        for offset in range(0, steps, piece):
            count = min(piece, steps - offset)
            x, y = batches.take(first_batch + offset, count)
            history = self.model.fit(x, y, batch_size=self.spec.batch_size, epochs=1, shuffle=False, verbose=0)
            total += count * float(history.history["cross_entropy"][-1])
        return total / steps

    def _evaluate(self, iteration: int, train_loss: float) -> dict:
        began = time.perf_counter()
        d = self.data
        val = self.model.evaluate(d.x_val, d.y_val, batch_size=1000, verbose=0, return_dict=True)
        test = self.model.evaluate(d.x_test, d.y_test, batch_size=1000, verbose=0, return_dict=True)
        return {"iteration": iteration, "train_loss": train_loss,
                "val_loss": float(val["cross_entropy"]), "val_accuracy": float(val["accuracy"]),
                "test_loss": float(test["cross_entropy"]), "test_accuracy": float(test["accuracy"]),
                "eval_seconds": time.perf_counter() - began}


def _pack(model, optimizer, spec, start, iteration, curve, rewind_weights, seconds, backend) -> dict:
    meta = {"version": BACKUP_VERSION, "engine": "keras3", "backend": backend, "iteration": iteration, "start": start,
            "chunk_size": spec.chunk, "total": spec.total_iterations, "curve": curve, "seconds": seconds}
    return backup_arrays(meta, snapshot(model), [ops.convert_to_numpy(v) for v in optimizer.state_variables()],
                         rewind_weights)


def _unpack(arrays, optimizer, spec, start, backend) -> dict | None:
    """The saved state if it fits this round (lth_tf.training.jobs.backup_meta's rules, and the same backend: the
    data order is the backend's), else None: the round starts over."""
    variables = optimizer.state_variables()
    meta = backup_meta(arrays, spec, start, [v.shape for v in variables], version=BACKUP_VERSION, engine="keras3",
                       backend=backend)
    if meta is not None:
        meta["optimizer"] = [arrays[f"opt/{i}"] for i in range(len(variables))]
    return meta
