"""TensorBoard logs for lottery-ticket rounds: one run per round, so rounds can be compared side by side.

From the command line, ``--tensorboard`` writes one run per (trial, variant, round)::

    python -m lth_tf.main --model=lenet300_100 --rounds=5 --tensorboard --output_dir=results/run1
    tensorboard --logdir results/run1/tensorboard        # viewing needs `pip install tensorboard`

    results/run1/tensorboard/trial_<t>/<variant>/round_<r>/events.out.tfevents.*

In your own Keras code, the same callback logs any fit (also a tfmot-wrapped model's)::

    model.fit(x, y, epochs=5, callbacks=[rewind, UpdatePruningStep(),
                                         lth_tf.training.summaries.RoundSummaries("logs/round_1")])

Tags, written at the end of every Keras epoch (for lth_tf's trainer: every ``eval_every`` iterations), with the
optimizer's iteration count as the step:

  loss/train, accuracy/train             Keras' epoch metrics (the mean over the epoch's steps)
  loss/validation, accuracy/validation   from ``val_loss``/``val_accuracy`` in the epoch logs
  loss/test, accuracy/test               from ``test_loss``/``test_accuracy`` (lth_tf's trainer adds them)
  sparsity/<layer>                       fraction of exactly-zero entries in each dense/conv kernel
  weights_remaining                      fraction of non-zero entries over all those kernels
  learning_rate                          the optimizer's current rate (schedules evaluated)

Sparsity is measured on the kernels rather than read from tfmot's mask variables, so the curve also shows that
pruned weights stay exactly zero through training. tfmot's own ``PruningSummaries`` callback is not used: it needs
a compiled tfmot-wrapped model (lth_tf's trainer trains the plain twin) and logs mask variables only.

Scalars are written with ``tf.summary.write`` and the scalar plugin's metadata, which is what
``tf.summary.scalar`` writes; unlike ``tf.summary.scalar``, that needs no ``tensorboard`` package installed.
"""
from __future__ import annotations

import glob
import os

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.framework import summary_pb2

from lth_tf.pruning import masks as pruning

_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

# Keras log key -> TensorBoard tag. Grouping by metric puts train/validation/test of one round in one section.
_TAGS = {"loss": "loss/train", "accuracy": "accuracy/train",
         "val_loss": "loss/validation", "val_accuracy": "accuracy/validation",
         "test_loss": "loss/test", "test_accuracy": "accuracy/test"}


def round_log_dir(results_dir: str, trial: int, variant: str, round_: int) -> str:
    """Where ``--tensorboard`` writes a round's run: RESULTS_DIR/tensorboard/trial_<t>/<variant>/round_<r>."""
    return os.path.join(results_dir, "tensorboard", f"trial_{trial}", variant, f"round_{round_}")


def _prunable(model) -> list:
    """Dense/conv layers of `model`, looking inside nested models (lth_tf's MaskedTrainer holds the net).

    A layer reachable twice (MaskedTrainer also tracks the net's layers directly) is listed once."""
    found = {}
    for layer in model.layers:
        inner = pruning._inner(layer)
        if isinstance(inner, keras.Model):
            found.update((id(sub), sub) for sub in _prunable(inner))
        elif isinstance(inner, pruning._PRUNABLE):
            found[id(inner)] = inner
    return list(found.values())


def sparsity(model) -> dict:
    """{layer name: fraction of exactly-zero kernel entries} for the dense and conv layers of `model`."""
    return {layer.name: float(np.mean(layer.kernel.numpy() == 0)) for layer in _prunable(model)}


def write_scalar(tag: str, value, step: int) -> None:
    """One scalar in the default summary writer, in the format of ``tf.summary.scalar``."""
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=_SCALAR)


class RoundSummaries(keras.callbacks.Callback):
    """Keras callback writing a fit's curves and per-layer sparsity to one TensorBoard run in `log_dir`.

    Args:
      log_dir: the run's directory (created).
      fresh: when a fit starts at optimizer step 0, remove event files already in `log_dir`, so a round
        trained again from its start does not show two overlapping curves. A fit that starts later (a round
        resumed from its mid-round backup, whose optimizer step is restored) appends to the run.
    """

    def __init__(self, log_dir: str, fresh: bool = True):
        super().__init__()
        self.log_dir, self.fresh = log_dir, fresh
        self._writer = None
        self._supports_tf_logs = True  # epoch logs only; no per-batch hooks, so no device syncs per step

    def on_train_begin(self, logs=None):
        if self.fresh and int(self.model.optimizer.iterations.numpy()) == 0:
            for path in glob.glob(os.path.join(self.log_dir, "events.out.tfevents.*")):
                os.remove(path)
        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        with self._writer.as_default():
            for key, tag in _TAGS.items():
                if key in logs:
                    write_scalar(tag, logs[key], step)
            zeros = total = 0
            for layer in _prunable(self.model):
                kernel = layer.kernel.numpy()
                layer_zeros = int(np.count_nonzero(kernel == 0))
                write_scalar(f"sparsity/{layer.name}", layer_zeros / kernel.size, step)
                zeros, total = zeros + layer_zeros, total + kernel.size
            if total:
                write_scalar("weights_remaining", 1.0 - zeros / total, step)
            rate = getattr(getattr(optimizer, "inner_optimizer", optimizer), "learning_rate", None)
            if rate is not None:
                if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                    rate = rate(optimizer.iterations)
                write_scalar("learning_rate", float(keras.backend.get_value(rate)), step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
