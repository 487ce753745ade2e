"""TensorFlow's CPU threads for every lth_tf run, set in one place, from the network alone (never from N).

TensorFlow runs up to `inter_op` independent ops at once and splits one op over up to `intra_op` threads (its
default for both: every core). Some CPU kernels split their sums by the number of intra-op threads, so their
results change bit-wise with it. Before this module, --parallel_trials N > 1 alone ran one intra-op thread, so
N, which is not part of a configuration's identity, changed conv2's stored weights and masks, and one results
directory could mix both. Now the settings depend only on the network:

    networks without convolutions (lenet300_100*):  intra_op = 1, inter_op = cores
    networks with convolutions (every image model):  intra_op = 0 (TensorFlow's default: cores), inter_op = cores

Measured (TensorFlow 2.21, oneDNN on, 2 CPU cores shared with other jobs; BENCHMARKS.md, "Threads"):
- Results, from CLI runs of 2 trials x 2 rounds x 20 iterations on 600 Fashion-MNIST-sized images with
  --deterministic, every stored file compared. conv2 stored different bits at intra_op 1, 2 (= 4), 8 and 16
  (44 to 312 round-1 mask entries apart), so with the default its bits depend on the machine's core count;
  lenet300_100 stored the same bits at 1, 4 and 8. inter_op 1, 2 and 8 stored the same bits for both (it
  schedules whole ops). At fixed settings N = 1 and N = 2 store the same bits (tests/test_threads.py). Runs
  with and without --deterministic (op determinism) differ (conv2 up to 0.0045, lenet300_100 4e-8); it does
  not remove the thread dependence, which was first seen with it on.
- Speed, ms per network-step, in fresh processes, the settings interleaved. lenet300_100 is faster on one thread
  per op: N = 1 2.0 against 2.2 with the default, stacked N = 2 1.1 against 1.6 (the towers run side by side).
  conv2 is faster with the default at N = 1 (33 against 46: one thread per op would cost it 1.4x) and about
  even at N = 2 (33 against 38).

Overrides, read by `settings` (before TensorFlow's first op):

    LTH_TF_INTRA_OP_THREADS   whole number >= 0 (0 = TensorFlow's default, every core)
    LTH_TF_INTER_OP_THREADS   whole number >= 0 (0 = TensorFlow's default)

Changing LTH_TF_INTRA_OP_THREADS can change results bit-wise: runs with different values, or with 0 on machines
with different core counts, need not store the same weights and masks, even with --deterministic. Setting it to
the same number (1, say) on every machine removes the core count as a cause; a different processor (its
instruction set) can still change the bits, and TensorFlow promises equal outputs only on the same hardware.

Programs that train in-process (a notebook calling lth_tf.experiment.experiment.run) call `configure(model)`
before TensorFlow's first op to get the command line's numbers.
"""
from __future__ import annotations

import os

from lth_tf import _env  # noqa: F401  (legacy Keras before TensorFlow's import)
from lth_tf.models import specs

INTRA_OP_VARIABLE = "LTH_TF_INTRA_OP_THREADS"
INTER_OP_VARIABLE = "LTH_TF_INTER_OP_THREADS"


class ThreadsError(ValueError):
    """A bad thread override in the environment; str(e) is one line."""


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ThreadsError(f"{name} must be a whole number >= 0 (0 = TensorFlow's default), not {text!r}")
    return value


def settings(model: str) -> tuple:
    """(intra_op, inter_op) for a run of `model` (a name specs.model_spec knows), whatever --parallel_trials is: the
    defaults above, or the environment's overrides. No TensorFlow; raises ThreadsError for a bad override."""
    convolutional = specs.model_spec(model).image_input  # the image models are the ones with convolutions
    return _read(INTRA_OP_VARIABLE, 0 if convolutional else 1), _read(INTER_OP_VARIABLE, cores())


def configure(model: str) -> bool:
    """Applies `settings(model)` to TensorFlow. Call before TensorFlow's first op; returns False (and changes
    nothing) when that has already run with other settings."""
    intra, inter = settings(model)
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already started in this process
        return False
    return True
