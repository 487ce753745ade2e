"""Tests for lth_tf.launch: local multi-worker runs.

Stand-in workers (tiny Python programs) check the launcher itself: TF_CONFIG per worker, prefixed output,
all workers stopped and a non-zero exit when one dies. Then a real 2-worker MultiWorkerMirroredStrategy
run over loopback must give the masks (per-layer sparsity, nested) and weights of a single-process run,
with only the chief writing the results directory.
"""
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lth_tf import launch
from lth_tf.experiment.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=2", "--iterations=40", "--eval_every=20", "--quiet"]


def _env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")


def _run_stand_ins(code, workers=2, **kwargs):
    out = io.StringIO()
    began = time.monotonic()
    rc = launch.launch(["--flag=1"], workers=workers, command=[sys.executable, "-c", code], out=out, **kwargs)
    return rc, out.getvalue(), time.monotonic() - began


# ---- the launcher with stand-in workers ----------------------------------------------------------------

def test_each_worker_gets_its_tf_config_and_a_prefixed_output():
    code = ("import json, os, sys; c = json.loads(os.environ['TF_CONFIG']); "
            "print('task', c['task']['index'], 'of', ' '.join(c['cluster']['worker']), 'args', *sys.argv[1:])")
    rc, out, _ = _run_stand_ins(code, workers=3)
    assert rc == 0
    lines = {int(line.split("]")[0].split()[1]): line for line in out.splitlines() if line.startswith("[worker ")}
    assert sorted(lines) == [0, 1, 2]
    clusters = set()
    for index, line in lines.items():
        assert line.startswith(f"[worker {index}] task {index} of ")
        assert line.endswith("args --flag=1")
        clusters.add(line.split(" of ")[1].split(" args")[0])
    (cluster,) = clusters  # every worker sees the same cluster
    addresses = cluster.split()
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)


def test_a_dying_worker_stops_the_others_with_a_clear_message(tmp_path):
    # Worker 1 fails after a moment; worker 0 would run for a minute and records its pid.
    code = (f"import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            f"open(os.path.join({str(tmp_path)!r}, f'pid{{i}}'), 'w').write(str(os.getpid()))\n"
            "print('working', flush=True)\n"
            "if i == 1:\n    time.sleep(0.5); print('boom', file=sys.stderr, flush=True); sys.exit(3)\n"
            "time.sleep(60)")
    rc, out, seconds = _run_stand_ins(code, grace_seconds=2)
    assert rc == 3 and seconds < 30
    assert "[worker 1] boom" in out  # stderr is streamed too
    assert "lth_tf.launch: error: worker 1 exited with code 3; stopped the other workers" in out
    pid = int((tmp_path / "pid0").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_worker_ignoring_sigterm_is_killed_and_a_signal_death_is_named(tmp_path):
    code = ("import json, os, signal, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if i == 0:\n    time.sleep(0.5); os.kill(os.getpid(), signal.SIGKILL)\n"
            "time.sleep(60)")
    rc, out, seconds = _run_stand_ins(code, grace_seconds=1)
    assert rc != 0 and seconds < 30
    assert "worker 0 was killed by SIGKILL; stopped the other workers" in out


def test_cli_refuses_another_strategy_in_one_line():
    result = subprocess.run([sys.executable, "-m", "lth_tf.launch", "--workers=2", "--", "--strategy=mirrored"],
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("lth_tf.launch: error: the launcher runs --strategy=multi_worker; "
                                     "remove '--strategy=mirrored'")


def test_generated_tf_configs_parse_and_name_worker_0_the_chief():
    from lth_tf.experiment import distribute
    configs = launch.tf_configs(2)
    chiefs = [distribute.is_chief("multi_worker", {"TF_CONFIG": json.dumps(c)}) for c in configs]
    assert chiefs == [True, False]


# ---- a real 2-worker run -------------------------------------------------------------------------------

def _masks(root, round_):
    return Store(str(root)).load_round(0, "lottery", round_, "masks")


def _weights(root, round_):
    return Store(str(root)).load_round(0, "lottery", round_, "weights")


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_workers_on_loopback_match_a_single_process_run(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    procs = [subprocess.Popen([sys.executable, "-m", "lth_tf.main", f"--output_dir={single}", *TINY], cwd=REPO,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
             subprocess.Popen([sys.executable, "-m", "lth_tf.launch", "--workers=2", "--",
                               f"--output_dir={multi}", *TINY], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert procs[0].returncode == 0, outs[0][-2000:]
    assert procs[1].returncode == 0, outs[1][-3000:]
    out = outs[1]
    assert "[worker 0] lth_tf: strategy multi_worker: CollectiveAllReduceStrategy, 2 replicas" in out
    assert "(not the chief: the chief writes the results)" in out.split("[worker 1] lth_tf: strategy")[1]
    for worker in (0, 1):  # both workers trained every round
        assert sum(line.startswith(f"[worker {worker}] trial 0  lottery") for line in out.splitlines()) == 3
    # Only the chief wrote, and only the store's files (no second copy, no temporary leftovers).
    names = sorted(os.listdir(multi / "trial_0" / "lottery" / "round_2"))
    assert names == ["curve.csv", "masks.npz", "result.json", "start_weights.npz", "weights.npz"]
    assert not any(name.startswith(".tmp-") for _, _, files in os.walk(multi) for name in files)
    with open(multi / "results.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 3
    previous = None
    for r in range(3):
        ms, mm = _masks(single, r), _masks(multi, r)
        for name in ms:
            assert ms[name].mean() == mm[name].mean(), (r, name)  # same per-layer sparsity
            assert (ms[name] == mm[name]).mean() > 0.999, (r, name)
            if previous is not None:
                assert not (mm[name] & ~previous[name]).any(), (r, name)  # nested
        previous = mm
        # The global batch is split over the workers: the same training as one process, up to rounding.
        ws, wm = _weights(single, r), _weights(multi, r)
        for key in ws:
            np.testing.assert_allclose(ws[key], wm[key], atol=1e-5, err_msg=f"round {r} {key}")
    assert _masks(multi, 2)["output"].mean() == pytest.approx(0.81)
