"""Tests for lth_tf.report (write_report, the command line) on a small synthetic results directory that follows
the lth_tf.experiment.store contract; its parts are tested in test_results.py and test_tables.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lth_tf import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WEIGHTS = [1.0, 0.5, 0.25]
# (variant, trial) -> per round values
EARLY = {("lottery", 0): [1000, 800, 600], ("lottery", 1): [1200, 600, 400],
         ("reinit", 0): [1000, 1400, 2000], ("reinit", 1): [1100, 1600, 1800]}
ACC_ES = {("lottery", 0): [0.95, 0.96, 0.97], ("lottery", 1): [0.97, 0.98, 0.95],
          ("reinit", 0): [0.95, 0.93, 0.90], ("reinit", 1): [0.96, 0.92, 0.88]}
ACC_FINAL = {("lottery", 0): [0.94, 0.95, 0.96], ("lottery", 1): [0.96, 0.97, 0.94],
             ("reinit", 0): [0.94, 0.92, 0.89], ("reinit", 1): [0.95, 0.91, 0.87]}
COLUMNS = ["trial", "variant", "round", "weights_remaining", "early_stop_iteration", "test_accuracy_at_early_stop",
           "test_accuracy", "val_loss_at_early_stop", "test_loss", "iterations", "train_seconds", "pruning"]


def _masks(rnd):
    """fc1 (4x3) and output (3x2) masks: round 0 all True, then the first k weights in flat order survive."""
    out = {}
    for name, shape in (("fc1", (4, 3)), ("output", (3, 2))):
        n = int(np.prod(shape))
        keep = int(round(n * WEIGHTS[rnd]))
        m = np.zeros(n, bool)
        m[:keep] = True
        out[name] = m.reshape(shape)
    return out


def _initial(trial):
    # Known values: fc1 kernel = 1..12 (+100 * trial), output kernel = -1..-6.
    return {"fc1/kernel": np.arange(1, 13, dtype=np.float32).reshape(4, 3) + 100 * trial,
            "fc1/bias": np.zeros(3, np.float32),
            "output/kernel": -np.arange(1, 7, dtype=np.float32).reshape(3, 2),
            "output/bias": np.zeros(2, np.float32)}


def _row(trial, variant, rnd):
    return {"trial": trial, "variant": variant, "round": rnd, "weights_remaining": WEIGHTS[rnd],
            "early_stop_iteration": EARLY[variant, trial][rnd],
            "test_accuracy_at_early_stop": ACC_ES[variant, trial][rnd],
            "test_accuracy": ACC_FINAL[variant, trial][rnd], "val_loss_at_early_stop": 0.1,
            "test_loss": 0.12, "iterations": 2000, "train_seconds": 1.5, "pruning": "iterative"}


def make_results(root):
    root = str(root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump({"hash": "abc123", "config": {"model": "lenet300_100", "dataset": "mnist1d", "rounds": 3,
                                                 "trials": 2, "variants": ["lottery", "reinit"],
                                                 "eval_every": 100}}, f)
    csv_rows = []
    for trial in (0, 1):
        tdir = os.path.join(root, f"trial_{trial}")
        os.makedirs(tdir, exist_ok=True)
        init = _initial(trial)
        np.savez(os.path.join(tdir, "initial_weights.npz"), **init)
        rng = np.random.default_rng(trial)
        for variant in ("lottery", "reinit"):
            for rnd in range(3):
                rdir = os.path.join(tdir, variant, f"round_{rnd}")
                os.makedirs(rdir)
                masks = _masks(rnd)
                np.savez(os.path.join(rdir, "masks.npz"), **masks)
                start = {}
                for k, v in init.items():
                    base = v if variant == "lottery" else rng.normal(size=v.shape).astype(np.float32)
                    layer = k.split("/")[0]
                    start[k] = base * masks[layer] if k.endswith("kernel") else base
                np.savez(os.path.join(rdir, "start_weights.npz"), **start)
                acc = [0.1, 0.5 + 0.1 * rnd, 0.9 + 0.01 * rnd + 0.01 * trial]
                pd.DataFrame({"iteration": [0, 100, 200], "train_loss": [2.3, 1.0, 0.5],
                              "val_loss": [2.3, 1.1, 0.6], "val_accuracy": acc, "test_loss": [2.3, 1.1, 0.6],
                              "test_accuracy": acc}).to_csv(os.path.join(rdir, "curve.csv"), index=False)
                row = _row(trial, variant, rnd)
                with open(os.path.join(rdir, "result.json"), "w") as f:
                    json.dump(row, f)
                if trial == 0:
                    csv_rows.append(row)
    # results.csv as written by the process that ran trial 0 only: the report must still see trial 1.
    pd.DataFrame(csv_rows, columns=COLUMNS).to_csv(os.path.join(root, "results.csv"), index=False)
    # An unfinished round (no result.json yet) and a round whose result.json is half written.
    unfinished = os.path.join(root, "trial_1", "lottery", "round_3")
    os.makedirs(unfinished)
    np.savez(os.path.join(unfinished, "masks.npz"), **_masks(2))
    corrupt = os.path.join(root, "trial_0", "reinit", "round_3")
    os.makedirs(corrupt)
    with open(os.path.join(corrupt, "result.json"), "w") as f:
        f.write('{"trial": 0, "variant": "reinit", "round": 3, "weights_rem')
    return root


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path / "results")


def test_write_report(results, tmp_path):
    out = str(tmp_path / "out")
    paths = report.write_report(results, out)
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["accuracy.png", "curves.png", "early_stop.png", "histograms.png", "summary.md"]
    for p in paths:
        assert os.path.dirname(p) == out and os.path.getsize(p) > 0
        if p.endswith(".png"):
            with open(p, "rb") as f:
                assert f.read(8) == PNG_MAGIC
    md = open(os.path.join(out, "summary.md")).read()
    assert "lenet300_100" in md and "mnist1d" in md and "abc123" in md
    assert "### Variant: lottery" in md and "### Variant: reinit" in md

    def cells(section):
        lines = [ln for ln in section.splitlines() if ln.startswith("|")]
        return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]

    lottery = cells(md.split("### Variant: lottery")[1].split("### Variant")[0])
    assert lottery[0][0] == "Round" and len(lottery) == 2 + 3
    assert lottery[2] == ["0", "100.0", "1100 [1000, 1200]", "96.00 [95.00, 97.00]", "95.00", "2"]
    assert lottery[3] == ["1", "50.0", "700 [600, 800]", "97.00 [96.00, 98.00]", "96.00", "2"]
    assert lottery[4] == ["2", "25.0", "500 [400, 600]", "96.00 [95.00, 97.00]", "95.00", "2"]
    reinit = cells(md.split("### Variant: reinit")[1])
    assert reinit[4] == ["2", "25.0", "1900 [1800, 2000]", "89.00 [88.00, 90.00]", "88.00", "2"]


def test_write_report_default_out_and_rounds(results):
    paths = report.write_report(results, rounds=[0, 2, 7])
    assert all(os.path.dirname(p) == os.path.join(results, "report") for p in paths)
    assert len(paths) == 5


def test_write_report_no_finished_rounds(tmp_path):
    (tmp_path / "trial_0" / "lottery" / "round_0").mkdir(parents=True)
    with pytest.raises(report.ReportError, match="no finished rounds"):
        report.write_report(str(tmp_path))


REPORT_PY = os.path.join(REPO, "lth_tf", "report.py")


def _run(argv):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def _cli(*args):
    """report.py run as a script: the same main() as `python -m lth_tf.report`."""
    return _run([REPORT_PY, *args])


def test_cli_module_missing_dir(tmp_path):
    """The contract CLI, `python -m lth_tf.report`: exit 2 and one clear error line, no traceback."""
    missing = str(tmp_path / "does_not_exist")
    p = _run(["-m", "lth_tf.report", missing])
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert [ln for ln in lines if ln.startswith(("error", "warning"))] == [
        f"error: results directory not found: {missing}"]
    assert len(lines) == 1, lines  # the package __init__ is lazy: `-m lth_tf.report` never starts TensorFlow


def test_cli_missing_dir(tmp_path):
    missing = str(tmp_path / "does_not_exist")
    p = _cli(missing)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"error: results directory not found: {missing}"]
    assert p.stdout == ""


def test_cli_no_finished_rounds_and_bad_flags(tmp_path):
    p = _cli(str(tmp_path))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "no finished rounds" in p.stderr
    assert "Traceback" not in p.stderr
    p = _cli(str(tmp_path), "--rounds", "a,b")
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    p = _cli()
    assert p.returncode == 2 and "RESULTS_DIR" in p.stderr and "Traceback" not in p.stderr


def test_cli_writes_report(results, tmp_path):
    out = str(tmp_path / "cli_out")
    p = _cli(results, "--out", out, "--rounds", "0,2")
    assert p.returncode == 0, p.stderr
    assert f"wrote {os.path.join(out, 'early_stop.png')}" in p.stdout
    assert f"wrote {os.path.join(out, 'summary.md')}" in p.stdout
    assert "1100 [1000, 1200]" in p.stdout
    assert "Traceback" not in p.stderr


def test_report_module_is_light_and_parses_no_flags():
    """report.py itself imports neither TensorFlow nor pyplot, and importing it parses no flags."""
    code = ("import importlib.util, sys; sys.argv = ['x', '--bogus']; "
            f"spec = importlib.util.spec_from_file_location('lth_report', {REPORT_PY!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "assert 'tensorflow' not in sys.modules; assert 'matplotlib.pyplot' not in sys.modules; print('ok')")
    p = _run(["-c", code])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_two_pruning_modes_get_separate_tables_and_lines(results, tmp_path):
    df = report.load_results(results)
    one = df[df.variant == "lottery"].assign(pruning="oneshot")
    s = report.summarize(pd.concat([df, one]))
    assert len(s) == 9
    text = report.format_summary(s)
    assert "### Variant: lottery (iterative pruning)" in text and "### Variant: lottery (oneshot pruning)" in text
    path = report.plot_vs_weights(s, "early_stop_iteration", "iters", str(tmp_path / "es.png"))
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
