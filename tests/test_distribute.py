"""Tests for lth_tf.experiment.distribute: TF_CONFIG and chief detection, the non-chief WorkerStore, the TPU refusal,
and MirroredStrategy over 2 logical CPU devices giving the same masks and weights as one device.

Logical devices must be configured before TensorFlow initialises, so strategy runs happen in subprocesses
(`python -m lth_tf.main`, or a small script that splits the CPU and then runs lth_tf.main).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lth_tf.experiment import distribute
from lth_tf.experiment.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=2", "--iterations=40", "--eval_every=20", "--quiet"]


def _env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")


def _start(args, **kwargs):
    return subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _masks(root, round_):
    return Store(str(root)).load_round(0, "lottery", round_, "masks")


def _weights(root, round_):
    return Store(str(root)).load_round(0, "lottery", round_, "weights")


# ---- TF_CONFIG and the chief ------------------------------------------------------------------------

def _tf_config(task_type="worker", index=0, chief=False, workers=2):
    cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:1999"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_chief_is_worker_0_without_a_chief_job_and_the_chief_task_with_one():
    assert distribute.is_chief("multi_worker", _tf_config("worker", 0))
    assert not distribute.is_chief("multi_worker", _tf_config("worker", 1))
    assert distribute.is_chief("multi_worker", _tf_config("chief", 0, chief=True))
    assert not distribute.is_chief("multi_worker", _tf_config("worker", 0, chief=True))
    # Only multi_worker reads TF_CONFIG: a stray TF_CONFIG never silences a single-process run.
    for name in ("default", "one_device", "mirrored", "tpu"):
        assert distribute.is_chief(name, _tf_config("worker", 1))
    assert distribute.worker_count(_tf_config("chief", 0, chief=True, workers=3)) == 4


@pytest.mark.parametrize("value, needle", [
    ("{not json", "not valid JSON"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), '"cluster"'),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), '"task"'),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}), '"task"'),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}), "ps"),
])
def test_malformed_tf_config_is_one_clear_line(value, needle):
    with pytest.raises(distribute.StrategyError) as info:
        distribute.tf_config({"TF_CONFIG": value})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_multi_worker_without_tf_config_and_unknown_names_are_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.StrategyError, match="needs the TF_CONFIG .*lth_tf.launch"):
        distribute.create("multi_worker")
    with pytest.raises(distribute.StrategyError, match="unknown strategy 'gpus'"):
        distribute.create("gpus")


# ---- the non-chief worker's store ---------------------------------------------------------------------

def _round(store, trial, round_, value):
    masks = {"fc1": np.array([[True, False]])}
    weights = {"fc1/kernel": np.full((1, 2), value, np.float32)}
    store.save_round(trial, "lottery", round_, masks=masks, curve=[{"iteration": 1, "val_loss": value}],
                     start_weights=weights, weights=weights, row={"trial": trial, "variant": "lottery",
                                                                  "round": round_, "value": value})


def _listing(root):
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_worker_store_reads_the_chief_directory_and_never_writes_it(tmp_path):
    chief = Store(str(tmp_path / "results"))
    _round(chief, 0, 0, 1.0)
    chief.save_backup(0, "lottery", 1, {"meta": np.array("{}")})
    before = _listing(chief.root)
    with distribute.WorkerStore.opened(chief.root) as worker:
        scratch = worker.scratch.root
        assert worker.is_done(0, "lottery", 0) and not worker.is_done(0, "lottery", 1)
        assert worker.load_round(0, "lottery", 0, "weights")["fc1/kernel"][0, 0] == 1.0  # the chief's
        assert worker.load_backup(0, "lottery", 1) is not None
        # What the worker finishes is visible to itself at once (the chief may not have written it yet) ...
        _round(worker, 0, 1, 2.0)
        worker.save_weights(0, "initial", {"fc1/kernel": np.zeros((1, 2), np.float32)})
        worker.save_backup(0, "lottery", 2, {"meta": np.array("{}")})
        worker.clear_backup(0, "lottery", 1)
        with worker.trial_lock(0):
            pass
        assert worker.is_done(0, "lottery", 1)
        assert worker.load_round(0, "lottery", 1, "weights")["fc1/kernel"][0, 0] == 2.0
        assert worker.load_weights(0, "initial") is not None
    # ... but nothing reached the chief's directory, and the scratch directory is gone.
    assert _listing(chief.root) == before
    assert not os.path.exists(scratch)


# ---- the CLI: TPU and MirroredStrategy ----------------------------------------------------------------

def test_tpu_strategy_fails_with_one_clear_line_and_writes_nothing(tmp_path):
    out_dir = tmp_path / "tpu"
    code, out, err = _finish(_start([sys.executable, "-m", "lth_tf.main", "--strategy=tpu",
                                     f"--output_dir={out_dir}", *TINY]))
    ours = [line for line in err.splitlines() if line.startswith("lth_tf")]
    assert code == 2
    assert len(ours) == 1 and ours[0].startswith("lth_tf: error: --strategy=tpu: no TPU"), err
    assert "Traceback" not in err and not out_dir.exists()


MIRRORED_SCRIPT = textwrap.dedent("""
    # Splits the CPU into 2 logical devices (before TensorFlow starts), then runs lth_tf.main. At exit it
    # reports which of the first round trainer's variables are distributed (mirrored) variables.
    import atexit, sys
    from lth_tf.experiment import distribute
    distribute.configure_cpu_devices(2)
    import tensorflow as tf
    from lth_tf import main
    from lth_tf.pruning import masks as pruning
    from lth_tf.training.trainer import RoundTrainer

    made = []
    original = RoundTrainer.__init__
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)
    RoundTrainer.__init__ = init

    def report():
        t = made[0].trainer
        groups = {"kernels": [layer.kernel for layer in pruning.prunable_layers(t.net)],
                  "masks": list(t.mask_variables.values()), "optimizer": list(t.optimizer.variables)}
        for name, variables in groups.items():
            mirrored = sum(isinstance(v, tf.distribute.DistributedValues) for v in variables)
            print(f"VARIABLES {name} {mirrored} {len(variables)}", flush=True)
    atexit.register(report)
    sys.argv = ["lth_tf.main"] + sys.argv[1:]
    main.run()
""")


def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path):
    script = tmp_path / "mirrored_main.py"
    script.write_text(MIRRORED_SCRIPT)
    single, mirrored = tmp_path / "single", tmp_path / "mirrored"
    procs = [_start([sys.executable, "-m", "lth_tf.main", f"--output_dir={single}", *TINY]),
             _start([sys.executable, str(script), "--strategy=mirrored", f"--output_dir={mirrored}", *TINY])]
    (code_s, _, err_s), (code_m, out_m, err_m) = [_finish(p) for p in procs]
    assert code_s == 0, err_s[-2000:]
    assert code_m == 0, err_m[-2000:]
    assert "strategy mirrored: MirroredStrategy, 2 replicas on device:CPU:0, device:CPU:1" in out_m
    # Model, masks and optimizer slots were all created under the strategy's scope.
    for group in ("kernels", "masks", "optimizer"):
        line = next(line for line in out_m.splitlines() if line.startswith(f"VARIABLES {group} "))
        _, _, mirrored_count, total = line.split()
        assert int(total) > 0 and mirrored_count == total, line
    previous = None
    for r in range(3):
        ms, mm = _masks(single, r), _masks(mirrored, r)
        for name in ms:
            # Same sparsity per layer, the same surviving weights, and nested across rounds.
            assert ms[name].mean() == mm[name].mean()
            assert (ms[name] == mm[name]).mean() > 0.999, (r, name)
            if previous is not None:
                assert not (mm[name] & ~previous[name]).any()
        previous = mm
        # --batch_size is the global batch: 2 replicas of 30 do what one device does with 60.
        ws, wm = _weights(single, r), _weights(mirrored, r)
        for key in ws:
            np.testing.assert_allclose(ws[key], wm[key], atol=1e-5, err_msg=f"round {r} {key}")
    assert _masks(mirrored, 2)["fc1"].mean() == pytest.approx(0.64)
