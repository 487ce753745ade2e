"""Resumable rounds: a round's state after every evaluation, and the early weights late rewinding records.

With `backup=BackupSlot(load, save)` the trainer saves its state after every eval_every chunk (a Keras
"epoch": weights, optimizer slots and step, the curve so far, late-rewind weights) and, when `load()` finds
such a state, continues from that chunk. A round's data order is a pure function of (data_key, position)
(lth_tf.training.streams), so with op determinism the resumed round equals an uninterrupted one.
"""
from __future__ import annotations

import time

from lth_tf import _env  # noqa: F401
import tf_keras as keras

from lth_tf.training.jobs import BackupSlot, backup_arrays, backup_meta  # noqa: F401  (BackupSlot re-exported)


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
        meta = backup_meta(arrays, spec, start, [v.shape for v in variables], version=cls.VERSION)
        if meta is None:
            return None
        loss_scale = _loss_scale_state(optimizer)
        if (loss_scale is not None) != ("loss_scale/0" in arrays):
            return None
        if not meta["net"] or any(f"opt/{i}" not in arrays or arrays[f"opt/{i}"].shape != tuple(v.shape)
                                  for i, v in enumerate(variables)):
            return None  # the optimizer_shapes it claims are not what it holds
        meta["optimizer"] = [arrays[f"opt/{i}"] for i in range(len(variables))]
        meta["loss_scale"] = [arrays[f"loss_scale/{i}"] for i in range(2)] if loss_scale is not None else []
        return meta

    def on_epoch_end(self, epoch, logs=None):
        iteration = self.points[epoch]
        if iteration >= self.spec.total_iterations:
            return  # the round is finished: the store keeps the result, not a backup
        from lth_tf.pruning import rewind
        variables = self.optimizer_variables
        if self.recorder is not None and self.recorder.weights is not None:
            self.rewind_weights = self.recorder.weights[self.index]
        meta = {"version": self.VERSION, "iteration": iteration, "start": self.start, "chunk_size": self.spec.chunk,
                "total": self.spec.total_iterations, "curve": self.curve.curves[self.index],
                "seconds": self.began_seconds + time.perf_counter() - self.clock}
        loss_scale = _loss_scale_state(self.model.optimizer) or ()
        arrays = backup_arrays(meta, rewind.snapshot(self.net), [v.numpy() for v in variables], self.rewind_weights,
                               loss_scale=[v.numpy() for v in loss_scale])
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
        from lth_tf.pruning import rewind
        self.weights = [rewind.snapshot(net) for net in self.nets]
