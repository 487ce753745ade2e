"""Crash-safe resume and processes sharing a results directory.

- A run SIGKILLed in the middle of round 1 and started again finishes with exactly the results of an
  uninterrupted run (--deterministic): same results.csv numbers (timing aside), masks, weights and curves.
- A run stopped by a full disk, then by SIGTERM, prints one line each and resumes exactly, with mixed precision
  (the loss scale is in the backup) and dropout (draws keyed by step); in-process, a fresh trainer resumes a
  mixed-precision round exactly.
- A second process on a directory or trial in use is refused with one line, before TensorFlow starts; a full
  run and a --trial_index run never write the same trial (trial locks).
- Two --trial_index processes write one directory, and the report merges their trials.
"""
import csv
import fcntl
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lth_tf import report
from lth_tf.experiment.files import StoreError
from lth_tf.experiment.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")


def _main(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "lth_tf.main", *args], cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def _rows(root):
    with open(os.path.join(root, "results.csv")) as f:
        return list(csv.DictReader(f))


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _assert_same_results(whole, other):
    """Rounds 0 and 1 of two directories hold the same numbers (timing aside), masks, weights and curves."""
    a, b = _rows(whole), _rows(other)
    assert [(r["trial"], r["variant"], r["round"]) for r in b] == [("0", "lottery", "0"), ("0", "lottery", "1")]
    for ra, rb in zip(a, b):  # every number but the timing, exactly
        assert {k: v for k, v in ra.items() if k != "train_seconds"} == \
               {k: v for k, v in rb.items() if k != "train_seconds"}
    for r in range(2):
        for name in ("masks", "weights", "start_weights"):
            wa = _npz(os.path.join(whole, "trial_0", "lottery", f"round_{r}", f"{name}.npz"))
            wb = _npz(os.path.join(other, "trial_0", "lottery", f"round_{r}", f"{name}.npz"))
            assert sorted(wa) == sorted(wb)
            for key in wa:
                np.testing.assert_array_equal(wa[key], wb[key], err_msg=f"round {r} {name} {key}")
        with open(os.path.join(whole, "trial_0", "lottery", f"round_{r}", "curve.csv")) as fa, \
                open(os.path.join(other, "trial_0", "lottery", f"round_{r}", "curve.csv")) as fb:
            assert fa.read() == fb.read()


# ---- killed mid-round, resumed exactly ------------------------------------------------------------------

# 20 evaluation chunks per round: a backup after each, so the kill lands in the middle of the round.
# Momentum gives the optimizer state (slots) that the backup must carry for the resumed run to be exact.
CRASH = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--iterations=200", "--eval_every=10",
         "--momentum=0.9", "--deterministic"]


@pytest.mark.slow  # the full-disk + SIGTERM test also kills, reruns and compares exactly
@pytest.mark.multiprocess
def test_sigkill_mid_round_then_rerun_equals_an_uninterrupted_run(tmp_path):
    whole, crashed = str(tmp_path / "whole"), str(tmp_path / "crashed")
    reference = _main(*CRASH, f"--output_dir={whole}")
    victim = _main(*CRASH, f"--output_dir={crashed}")
    backup = os.path.join(crashed, "trial_0", "lottery", "round_1", "backup", "state.npz")
    while not os.path.exists(backup):
        assert victim.poll() is None, "the run ended before round 1 saved a backup"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)  # mid-chunk: the backup is at a chunk end, training is past it
    victim.communicate()
    round1 = os.path.join(crashed, "trial_0", "lottery", "round_1")
    assert not os.path.exists(os.path.join(round1, "result.json")) and os.path.exists(backup)
    assert [r["round"] for r in _rows(crashed)] == ["0"]

    out = _finish(_main(*CRASH, f"--output_dir={crashed}"))
    assert "round  0  already finished" in out
    resumed_at = int(out.split("round  1  resuming from its backup at iteration ")[1].split()[0])
    assert 0 < resumed_at < 200
    _finish(reference)

    _assert_same_results(whole, crashed)
    assert not os.path.exists(os.path.dirname(backup))  # removed once the round was stored


# ---- stopped by a full disk or SIGTERM; mixed precision and dropout resumed exactly -----------------------

# A round with both sources of state that a resume must not lose: the loss scale (made to move within a round:
# growth after 3 finite steps instead of 2000, or it stays at 2^15 in so short a run) and dropout draws.
EXACT = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--iterations=60", "--eval_every=10",
         "--momentum=0.9", "--deterministic", "--mixed_precision", "--dropout=0.3"]
STARTER = """
import dataclasses, errno, os, sys
import tf_keras as keras
from lth_tf.training import trainer
base = trainer.make_optimizer
trainer.make_optimizer = lambda spec: keras.mixed_precision.LossScaleOptimizer(
    base(dataclasses.replace(spec, mixed_precision=False)), dynamic_growth_steps=3)
FULL = os.environ.get("FULL_AT")  # the n-th write of round 1's backup finds the disk full (half written)
real_fdopen, writes = os.fdopen, []
class Full:
    def __init__(self, f): self.f = f
    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()
def fdopen(fd, *args, **kwargs):
    f = real_fdopen(fd, *args, **kwargs)
    name = os.readlink(f"/proc/self/fd/{fd}")
    if FULL and "round_1" in name and name.endswith("state.npz"):
        writes.append(name)
        if len(writes) == int(FULL):
            return Full(f)
    return f
os.fdopen = fdopen
import numpy as np
from lth_tf.data import datasets, loading, pipelines
CACHE, generate = os.environ["DATA_CACHE"], loading.load
SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
def load(name, data_dir=None, seed=0):  # mnist1d is generated once for the test's processes (~5 s each)
    if os.path.exists(CACHE):
        with np.load(CACHE) as f:
            return pipelines.Dataset(name, datasets.DATASETS[name].input_shape, 10, str(f["source"]),
                                     *[f[k] for k in SPLITS])
    ds = generate(name, data_dir, seed)
    np.savez(CACHE + f".{os.getpid()}.npz", source=ds.source, **{k: getattr(ds, k) for k in SPLITS})
    os.replace(CACHE + f".{os.getpid()}.npz", CACHE)
    return ds
loading.load = load
from lth_tf import main
main.run()
"""


def _start(*args, full_at=None):
    cache = os.path.join(os.path.dirname(args[-1].split("=", 1)[1]), "mnist1d.npz")  # beside the output dir
    env = dict(_env(), DATA_CACHE=cache, **({"FULL_AT": str(full_at)} if full_at else {}))
    return subprocess.Popen([sys.executable, "-c", STARTER, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop_when(proc, store, at_least, signum):
    """Sends `signum` once round 1's backup is at `at_least` iterations or more; returns (code, stderr)."""
    while (store.backup_iteration(0, "lottery", 1) or 0) < at_least:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.005)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _our_lines(err):
    """lth_tf's lines, less the warning that --mixed_precision gets on a machine without a GPU (test_hostile)."""
    return [line for line in err.splitlines() if line.startswith("lth_tf")
            and not line.startswith("lth_tf: warning: --mixed_precision without a GPU")]


def _free(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a lock were still held


def _stopped_cleanly(root, store, at_least, signum, code):
    """Resumes the EXACT run in `root`, stops it with `signum` once round 1's backup reaches `at_least`, and checks
    the stop: exit `code`, the one line naming the kept backup, no traceback, the lock released. Returns the
    backup's iteration."""
    got, err = _stop_when(_start(*EXACT, f"--output_dir={root}"), store, at_least, signum)
    iteration = store.backup_iteration(0, "lottery", 1)
    assert got == code and _our_lines(err) == [
        f"lth_tf: stopped by {signal.Signals(signum).name}; finished rounds and the backup of trial 0 lottery "
        f"round 1 at iteration {iteration} are kept; run the same command again to resume"], err[-3000:]
    assert "Traceback" not in err
    _free(os.path.join(root, ".lock"))
    return iteration


@pytest.mark.multiprocess
def test_a_full_disk_sigterm_and_ctrl_c_stop_cleanly_and_the_run_resumes_exactly(tmp_path):
    whole, root = str(tmp_path / "whole"), str(tmp_path / "stopped")
    reference = _start(*EXACT, f"--output_dir={whole}")
    store = Store(root)
    proc = _start(*EXACT, f"--output_dir={root}", full_at=2)  # round 1's backup at iteration 10, then a full disk
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and _our_lines(err) == [
        f"lth_tf: error: no space left on the device writing '{store.backup_path(0, 'lottery', 1)}'; everything "
        "stored before is intact: free some space and run the same command again to resume"], err[-3000:]
    assert store.backup_iteration(0, "lottery", 1) == 10 and [r["round"] for r in _rows(root)] == ["0"]
    assert not [f for _, _, files in os.walk(root) for f in files if f.startswith(".tmp-")]

    iteration = _stopped_cleanly(root, store, 20, signal.SIGTERM, 143)  # resumed at 10
    _free(os.path.join(root, "trial_0", ".lock"))
    assert float(store.load_backup(0, "lottery", 1)["loss_scale/0"]) != 2.0 ** 15  # the scale did move

    # Ctrl-C (SIGINT) on the resumed run: the same clean stop, exit code 130.
    iteration = _stopped_cleanly(root, store, iteration + 10, signal.SIGINT, 130)

    out = _finish(_start(*EXACT, f"--output_dir={root}"))
    assert f"round  1  resuming from its backup at iteration {iteration}" in out
    _finish(reference)
    _assert_same_results(whole, root)


# ---- locks -------------------------------------------------------------------------------------------

HOLDER = ("import fcntl, os, sys, time\n"
          "path = sys.argv[1]; os.makedirs(os.path.dirname(path), exist_ok=True)\n"
          "f = open(path, 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)")


class _Holder:
    """Another process holding a lock file of the results directory (as a running lth_tf would)."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("held, args, message", [
    (".lock", [], "another lth_tf process is running in '{out}' (lock .lock is held)"),
    ("trial_0/.lock", ["--trials=2", "--trial_index=0"],
     "another lth_tf process is running in '{out}' (lock trial_0/.lock is held)"),
    # A full run takes every trial's lock at start-up: refused now, not when it reaches trial 1.
    ("trial_1/.lock", ["--trials=2"],
     "trial 1 is being run by another lth_tf process in '{out}' (lock trial_1/.lock is held); wait for it, "
     "or run the other trials with --trial_index"),
], ids=["directory", "same-trial", "full-run-vs-trial"])
def test_a_second_process_is_refused_in_one_line_before_tensorflow_leaving_no_trace(tmp_path, held, args, message):
    out, imported = tmp_path / "run", tmp_path / "imported"
    # lth_tf.main, reporting at exit whether TensorFlow (or the data module, which loads datasets) was imported.
    script = ("import atexit, sys\n"
              f"atexit.register(lambda: open({str(imported)!r}, 'w').write(' '.join(\n"
              "    m for m in ('tensorflow', 'lth_tf.data.loading') if m in sys.modules)))\n"
              "from lth_tf import main\nmain.run()\n")
    with _Holder(out / held):
        before = _files(out)
        proc = subprocess.Popen([sys.executable, "-c", script, "--rounds=0", "--iterations=20", "--eval_every=20",
                                 *args, f"--output_dir={out}"], cwd=REPO, env=_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and stdout == ""
        assert err == f"lth_tf: error: {message.format(out=out)}\n"  # the only line
        assert _files(out) == before  # its lock files and config.json were removed again
    assert imported.read_text() == ""  # refused before TensorFlow started and before any data was loaded


def test_trial_locks_keep_a_full_run_and_a_trial_index_run_apart(tmp_path):
    from lth_tf.experiment import experiment
    from lth_tf.experiment.config import Config
    root = tmp_path / "run"
    store = Store(str(root))
    cfg = Config(rounds=0, iterations=20, eval_every=20, trials=2, output_dir=str(root)).resolve()
    # A --trial_index=0 process holds trial 0: the full run refuses it before training anything ...
    with _Holder(root / "trial_0" / ".lock"):
        with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
            with pytest.raises(StoreError, match=r"trial 0 is being run by another lth_tf process"):
                experiment.run(cfg, store, dataset=object())
        assert not (root / "trial_0" / "lottery").exists()
        # ... while trial 1 is free, and taking a lock this store already holds does not refuse itself.
        with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity(), lock_name="trial_1/.lock"):
            with store.trial_lock(1):
                pass
    # Once the holder is gone (its process ended: the kernel drops the lock), the trial is free again.
    with store.trial_lock(0):
        pass


# ---- trials spread over processes ----------------------------------------------------------------------

def test_two_trial_index_processes_share_a_directory_and_the_report_merges_them(tmp_path):
    root = str(tmp_path / "shared")
    args = ["--trials=2", "--rounds=1", "--iterations=20", "--eval_every=20", "--quiet", f"--output_dir={root}"]
    procs = [_main(*args, f"--trial_index={t}") for t in (0, 1)]
    for proc in procs:
        _finish(proc)
    rows = _rows(root)
    assert sorted((r["trial"], r["round"]) for r in rows) == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    table = report.summarize(report.load_results(root))
    assert list(table["round"]) == [0, 1] and list(table["trials"]) == [2, 2]
    # Different trials are different draws: their dense rounds do not coincide.
    t0, t1 = (_npz(os.path.join(root, f"trial_{t}", "initial_weights.npz"))["fc1/kernel"] for t in (0, 1))
    assert not np.array_equal(t0, t1)


# ---- the data order behind exact resumes -----------------------------------------------------------------

@pytest.mark.parametrize("augment", [False, True])
def test_train_stream_is_a_pure_function_of_key_and_position(augment):
    import tensorflow as tf
    from lth_tf.training.streams import train_stream
    n, batch = 24, 6  # 4 batches per data epoch
    x = tf.constant(np.arange(n * 8 * 8 * 3, dtype=np.float32).reshape(n, 8, 8, 3))
    y = tf.constant(np.arange(n, dtype=np.int32))

    def take(key, start, count):
        return [(bx.numpy(), by.numpy()) for bx, by in train_stream(x, y, batch, key, start, augment)
                .take(count)]

    whole = take(5, 0, 10)
    resumed = take(5, 3, 7)  # what a run resumed at batch 3 sees, across two epoch boundaries
    for (xa, ya), (xb, yb) in zip(whole[3:], resumed):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)  # augmentation included
    for epoch in range(2):  # each data epoch is a permutation of the training set
        labels = np.concatenate([yb for _, yb in whole[4 * epoch:4 * epoch + 4]])
        assert sorted(labels) == list(range(n))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(whole[:4], whole[4:8]))  # reshuffled per epoch
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(whole, take(6, 0, 10)))  # another round's order


def test_a_new_round_stream_does_not_retrace_the_training_step():
    import tensorflow as tf
    import tf_keras as keras
    from lth_tf.training.streams import train_stream
    x = tf.constant(np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    y = tf.constant(np.arange(50, dtype=np.int32) % 3)
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    counts = []
    for round_ in range(3):
        model.fit(train_stream(x, y, 10, key=round_, start_batch=round_), steps_per_epoch=2, epochs=1,
                  verbose=0)
        counts.append(model.train_function.experimental_get_tracing_count())
    assert counts[0] >= 1 and counts[1:] == [counts[0]] * 2


# ---- mixed precision: the loss scale is part of the state ---------------------------------------------------

def test_a_mixed_precision_round_resumed_by_a_fresh_trainer_keeps_its_loss_scale(monkeypatch):
    import dataclasses
    import tf_keras as keras
    from lth_tf.data.pipelines import Dataset
    from lth_tf.models import networks
    from lth_tf.pruning import masks as pruning
    from lth_tf.pruning import rewind
    from lth_tf.training import trainer as trainer_lib
    from lth_tf.training.backup import BackupSlot
    from lth_tf.training.schedule import TrainSpec, precision_policy
    base = trainer_lib.make_optimizer

    def quick(spec):  # the loss scale doubles after 3 finite steps (default 2000), so it moves within the round
        return keras.mixed_precision.LossScaleOptimizer(base(dataclasses.replace(spec, mixed_precision=False)),
                                                        dynamic_growth_steps=3)

    monkeypatch.setattr(trainer_lib, "make_optimizer", quick)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 40)).astype(np.float32)
    y = x[:, :10].argmax(axis=1).astype(np.int32)
    dataset = Dataset("tiny", (40,), 10, "synthetic", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:])
    spec = TrainSpec(batch_size=20, learning_rate=0.05, iterations=40, eval_every=10, momentum=0.9,
                     seed=1, mixed_precision=True)

    def train(load=None):  # a trainer built from scratch, as a resuming process builds it
        saved = []
        with precision_policy(True):
            model = networks.build("lenet300_100", (40,), 10, seed=0)
            trainer = trainer_lib.RoundTrainer(model, dataset, spec)
            result = trainer.train(rewind.snapshot(model), pruning.full_masks(model),
                                   backup=BackupSlot(load=lambda: load, save=saved.append))
        return rewind.snapshot(model), result, saved, trainer.trainer.optimizer

    whole, result, saved, _ = train()
    scales = [float(s["loss_scale/0"]) for s in saved]
    assert scales[1] != 2.0 ** 15 and len(set(scales)) > 1  # the scale moved: a restart at 2^15 would differ
    resumed, again, _, optimizer = train(load=saved[1])
    assert again.resumed_from == 20
    assert [p["val_loss"] for p in again.curve] == [p["val_loss"] for p in result.curve]
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)
