"""Hostile input to the command lines (issue 28): each case ends in its exit code and one stderr line without a
traceback, and leaves every file under the results directory byte-identical (config.json included).

The cheap refusals run in-process: lth_tf.main's `main` with `_run` (everything after the start-up checks, where
TensorFlow starts) replaced by a failure, so a case that is not refused fails at once instead of training. Only
the divergence case trains, in one subprocess.
"""
import errno
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.experiment import files
from lth_tf.experiment.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The directory make_run writes is that of `python -m lth_tf.main ARGS` (the store writes it, no training).
ARGS = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--iterations=30", "--eval_every=15"]
ROUND1 = os.path.join("trial_0", "lottery", "round_1")


def make_run(path, weights=None, masks=None, **overrides):
    """A finished two-round directory as lth_tf.main ARGS leaves it (made by the store; `weights`, `masks`: the
    arrays to store, default a stand-in fc1 layer)."""
    from lth_tf.experiment.store import Store
    settings = dict(model="lenet300_100", dataset="mnist1d", rounds=1, iterations=30, eval_every=15,
                    output_dir=str(path))
    settings.update(overrides)
    cfg = Config(**settings).resolve()
    rng = np.random.default_rng(0)
    if weights is None:
        weights = {"fc1/kernel": rng.normal(size=(40, 300)).astype(np.float32), "fc1/bias": np.zeros(300, np.float32)}
    masks = masks or {"fc1": np.ones((40, 300), bool)}
    store = Store(str(path))
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        store.save_weights(0, "initial", weights)
        store.save_weights(0, "rewind", weights)
        for r in range(cfg.rounds + 1):
            store.save_round(0, "lottery", r, masks=masks,
                             curve=[{"iteration": i, "train_loss": 1.0, "val_loss": 0.5, "val_accuracy": 0.8,
                                     "test_loss": 0.5, "test_accuracy": 0.8} for i in (15, 30)],
                             start_weights=weights, weights=weights,
                             row={"trial": 0, "variant": "lottery", "round": r, "pruning": "iterative",
                                  "weights_remaining": 1.0, "early_stop_iteration": 30,
                                  "test_accuracy_at_early_stop": 0.8, "val_loss_at_early_stop": 0.5,
                                  "test_accuracy": 0.8, "test_loss": 0.5, "iterations": 30, "train_seconds": 1.0})
    return store


def snapshot(*roots) -> dict:
    """sha256 of every file under each root (links listed as links, never followed)."""
    out = {}
    for root in roots:
        for directory, dirs, names in os.walk(root):
            for name in dirs + names:
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    out[path] = "link -> " + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        out[path] = hashlib.sha256(f.read()).hexdigest()
                else:
                    out[path] = "dir"
    return out


def one_line(stderr: str, prefix: str) -> str:
    """The single line of `stderr` (no traceback), which starts with `prefix`."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


@pytest.fixture
def lth(monkeypatch, capsys):
    """lth_tf.main in this process: returns (exit code, stdout, stderr). Nothing past the start-up checks runs."""
    from lth_tf import main as cli

    def past_the_checks(*args, **kwargs):
        raise AssertionError("not refused: the run got past the start-up checks")
    monkeypatch.setattr(cli, "_run", past_the_checks)

    def run(*args):
        cli.FLAGS.unparse_flags()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            cli.main(cli._parse_flags(["lth_tf.main", *args]))
        out = capsys.readouterr()
        cli.FLAGS.unparse_flags()
        return exit_.value.code, out.out, out.err
    return run


# ---- every numeric flag finite and within its stated range, refused before anything is written ------------------
FLAG_ARGS = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--eval_every=15"]  # epochs: the model's
FLAG_CASES = [
    (["--batch_size=1000000000"], "--batch_size must be positive and at most the 7200 training examples"),
    (["--batch_size=7201"], "--batch_size must be positive and at most the 7200"),
    (["--epochs=inf", "--iterations=60"], "--epochs must be positive and at most 100000, got inf"),
    (["--epochs=inf"], "--epochs must be positive and at most 100000, got inf"),
    (["--epochs=-inf"], "--epochs must be positive"),
    (["--epochs=1e300"], "--epochs must be positive and at most 100000, got 1e+300"),
    (["--epochs=nan"], "--epochs must be positive"),
    (["--epochs=100000", "--batch_size=1"], "--epochs=100000 is 720000000 iterations per round"),
    (["--iterations=99999999999999"], "--iterations must be in [1, 10000000]"),
    (["--seed=99999999999"], "--seed must be in [0, 2000000]"),
    (["--learning_rate=inf"], "--learning_rate must be positive and at most 1000"),
    (["--learning_rate=1e300"], "--learning_rate must be positive and at most 1000"),
    (["--learning_rate=nan"], "--learning_rate must be positive"),
    (["--momentum=nan"], "--momentum must be in [0, 1)"),
    (["--dropout=nan"], "--dropout must be in [0, 1)"),
    (["--prune_rate_fc=nan"], "--prune_rate_fc must be in [0, 1)"),
    (["--prune_rate_output=inf"], "--prune_rate_output must be in [0, 1)"),
    (["--rounds=100000"], "--rounds must be in [0, 1000]"),
    (["--trials=100000"], "--trials must be in [1, 1000]"),
    (["--trial_index=99999999999"], "--trial_index must be in [0, trials)"),
    (["--eval_every=99999999999"], "--eval_every must be in [1, 10000000]"),
    (["--iterations=10000000", "--eval_every=1"], "--eval_every=1 evaluates 10000000 times per round"),
    (["--rewind_iteration=99999999999"], "--rewind_iteration"),
    (["--pruning=snip", "--score_examples_per_class=99999999999"], "--score_examples_per_class must be in"),
    (["--pruning=synflow", "--synflow_iterations=99999999999"], "--synflow_iterations must be in"),
    (["--parallel_trials=1000"], "--parallel_trials must be in [1, 64]"),
]


@pytest.mark.parametrize("args, message", FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_numeric_flags_out_of_range_are_refused_before_anything_is_written(tmp_path, lth, args, message):
    store = make_run(tmp_path / "run")
    before = snapshot(store.root)
    code, out, err = lth(*FLAG_ARGS, *args, f"--output_dir={store.root}")
    assert code == 2 and message in one_line(err, "lth_tf: error: ")
    assert snapshot(store.root) == before
    fresh = tmp_path / "fresh"  # and a new directory is never made
    code, out, err = lth(*FLAG_ARGS, *args, f"--output_dir={fresh}")
    assert code == 2 and message in one_line(err, "lth_tf: error: ") and not fresh.exists()


# ---- the start-up check looks inside the .npz files ---------------------------------------------------------------
def _rewrite(path, change):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays = change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _renamed(arrays):
    return {"dense_7/" + k.split("/", 1)[1]: v for k, v in arrays.items()}


def _transposed(arrays):
    return dict(arrays, **{"fc1/kernel": arrays["fc1/kernel"].T.copy()})


def _float64(arrays):
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def _mask_as_float(arrays):
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def _objects(arrays):
    return dict(arrays, extra=np.array([{"pickled": True}], dtype=object))


CONTENT_CASES = [  # (file, change, what the line says after the file's name)
    (os.path.join(ROUND1, "weights.npz"), _renamed, "is damaged (no 'fc1/bias' (and 1 more missing), unexpected "
     "'dense_7/bias', as in trial_0/initial_weights.npz)"),
    (os.path.join(ROUND1, "start_weights.npz"), _transposed, "is damaged ('fc1/kernel' has shape (300, 40), the "
     "model's is (40, 300), as in trial_0/initial_weights.npz)"),
    (os.path.join("trial_0", "rewind_weights.npz"), _float64, "is damaged ('fc1/bias' has dtype float64, the model's "
     "is float32, as in trial_0/initial_weights.npz)"),
    (os.path.join(ROUND1, "masks.npz"), _mask_as_float, "is damaged ('fc1' has dtype float32, the model's is bool "
     "(masks: a boolean array of each layer's kernel shape))"),
    (os.path.join(ROUND1, "masks.npz"), _objects, "is damaged ('extra' holds Python objects, which lth_tf never "
     "stores)"),
]


@pytest.mark.parametrize("name, change, message", CONTENT_CASES,
                         ids=["weights-renamed", "start-transposed", "rewind-float64", "mask-float", "mask-objects"])
def test_well_formed_npz_with_the_wrong_content_is_refused_at_start_up(tmp_path, lth, name, change, message):
    store = make_run(tmp_path / "run")
    path = os.path.join(store.root, name)
    _rewrite(path, change)
    before = snapshot(store.root)
    code, out, err = lth(*ARGS, "--rounds=3", f"--output_dir={store.root}")
    assert code == 2
    assert one_line(err, "lth_tf: error: ") == f"lth_tf: error: '{path}' {message}: " + (
        f"restore it from a copy, or delete '{store.trial_dir(0)}' to run trial 0 again" if "rewind" in name
        else f"restore it from a copy, or delete '{store.round_dir(0, 'lottery', 1)}', the later lottery rounds "
        "and the control rounds from 1 on, to train them again")
    assert snapshot(store.root) == before


def test_a_wrongly_shaped_backup_is_discarded_with_a_warning(tmp_path):
    warnings = []
    store = make_run(tmp_path / "run")
    store.on_warning = warnings.append
    net = {f"net/{k}": v for k, v in store.load_weights(0, "initial").items()}
    store.save_backup(0, "lottery", 2, {"meta": np.array("{}"), **net})
    assert store.load_backup(0, "lottery", 2) is not None and not warnings  # a fitting one is used
    net["net/fc1/kernel"] = np.zeros((41, 300), np.float32)
    store.save_backup(0, "lottery", 2, {"meta": np.array("{}"), **net})
    assert store.load_backup(0, "lottery", 2) is None  # the round starts over
    assert warnings == [f"'{store.backup_path(0, 'lottery', 2)}' is damaged (net/: 'fc1/kernel' has shape (41, 300), "
                        "the model's is (40, 300)); discarded it: trial 0 lottery round 2 restarts from its beginning"]


# ---- a refusal changes nothing on disk (config.json included) -----------------------------------------------------
def test_a_refused_run_leaves_config_json_as_it_was(tmp_path, lth):
    store = make_run(tmp_path / "run")
    with open(os.path.join(store.root, ROUND1, "masks.npz"), "r+b") as f:
        f.truncate(100)
    before = snapshot(store.root)
    code, out, err = lth(*ARGS, "--rounds=7", "--trials=3", "--tensorboard", f"--output_dir={store.root}")
    assert code == 2 and "masks.npz' is damaged" in one_line(err, "lth_tf: error: ")
    assert snapshot(store.root) == before


# ---- symbolic links inside the results directory are never followed ----------------------------------------------
def test_a_linked_round_directory_is_refused_before_anything_is_written(tmp_path, lth):
    store = make_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "backup").mkdir(parents=True)
    (elsewhere / "backup" / "state.npz").write_bytes(b"someone else's file")
    round1 = os.path.join(store.root, ROUND1)
    shutil.copytree(round1, elsewhere, dirs_exist_ok=True)
    shutil.rmtree(round1)
    os.symlink(elsewhere, round1)
    before = snapshot(store.root, str(elsewhere))
    code, out, err = lth(*ARGS, "--rounds=3", f"--output_dir={store.root}")
    assert code == 2
    assert one_line(err, "lth_tf: error: ") == (
        f"lth_tf: error: '{round1}' is a symbolic link; lth_tf never follows a link inside a results directory, "
        "where a write or a deletion could land outside it: replace it with the directory or file itself")
    assert snapshot(store.root, str(elsewhere)) == before


def test_a_linked_file_is_refused(tmp_path, lth):
    store = make_run(tmp_path / "run")
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    lock = os.path.join(store.trial_dir(0), ".lock")
    if os.path.exists(lock):
        os.unlink(lock)
    os.symlink(target, lock)
    before = snapshot(store.root, str(tmp_path / "precious.txt"))
    code, out, err = lth(*ARGS, f"--output_dir={store.root}")
    assert code == 2 and f"'{lock}' is a symbolic link" in one_line(err, "lth_tf: error: ")
    assert snapshot(store.root, str(target)) == before


def test_store_writes_and_deletions_refuse_a_link_made_after_start_up(tmp_path):
    store = make_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "backup").mkdir(parents=True)
    (elsewhere / "backup" / "state.npz").write_bytes(b"x")
    os.symlink(elsewhere, os.path.join(store.trial_dir(0), "lottery", "round_3"))
    with pytest.raises(files.StoreError, match="round_3' is a symbolic link"):
        store.clear_backup(0, "lottery", 3)
    with pytest.raises(files.StoreError, match="round_3' is a symbolic link"):
        store.save_backup(0, "lottery", 3, {"meta": np.array("{}")})
    assert (elsewhere / "backup" / "state.npz").read_bytes() == b"x" and len(os.listdir(elsewhere)) == 1


# ---- a file where a directory belongs, and the reverse ------------------------------------------------------------
def test_trial_directory_that_is_a_file(tmp_path, lth):
    store = make_run(tmp_path / "run")
    shutil.rmtree(store.trial_dir(0))
    with open(store.trial_dir(0), "w") as f:
        f.write("not a directory")
    before = snapshot(store.root)
    code, out, err = lth(*ARGS, f"--output_dir={store.root}")
    assert code == 2
    assert one_line(err, "lth_tf: error: ") == (f"lth_tf: error: '{store.trial_dir(0)}' is a file where lth_tf "
                                                "keeps a directory; move it away")
    assert snapshot(store.root) == before


def test_results_csv_that_is_a_directory(tmp_path, lth):
    store = make_run(tmp_path / "run")
    path = os.path.join(store.root, "results.csv")
    os.unlink(path)
    os.mkdir(path)
    before = snapshot(store.root)
    code, out, err = lth(*ARGS, f"--output_dir={store.root}")
    assert code == 2
    assert one_line(err, "lth_tf: error: ") == (f"lth_tf: error: '{path}' is a directory where lth_tf keeps a file; "
                                                "move it away")
    assert snapshot(store.root) == before


# ---- report and export: damaged files and full disks in one line, nothing half-written ----------------------------
def test_report_leaves_a_damaged_npz_out_in_one_warning_line(tmp_path, capsys):
    from lth_tf import report
    store = make_run(tmp_path / "run")
    path = os.path.join(store.root, ROUND1, "masks.npz")
    with open(path, "r+b") as f:
        f.truncate(100)
    before = snapshot(store.root)
    code = report.main(["report", store.root, f"--out={tmp_path / 'report'}", "--rounds=1"])
    assert code == 0
    assert one_line(capsys.readouterr().err, "warning: ") == (
        f"warning: '{path}' is damaged (File is not a zip file): left out of the report (restore it from a copy)")
    assert snapshot(store.root) == before


def test_report_on_a_full_disk_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    from lth_tf import report
    store = make_run(tmp_path / "run")
    out = tmp_path / "report"
    out.mkdir()
    (out / "accuracy.png").write_bytes(b"an earlier report's figure")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", full)  # where a full disk shows, at the latest
    before = snapshot(store.root, str(out))
    code = report.main(["report", store.root, f"--out={out}"])
    assert code == 1
    line = one_line(capsys.readouterr().err, "error: no space left on the device writing ")
    assert str(out) in line
    assert snapshot(store.root, str(out)) == before  # no temporary file, no truncated figure, the old one intact


def test_export_refuses_a_damaged_npz_in_one_line(tmp_path, capsys):
    from lth_tf import export
    store = make_run(tmp_path / "run")
    path = os.path.join(store.root, ROUND1, "masks.npz")
    with open(path, "r+b") as f:
        f.truncate(100)
    before = snapshot(store.root)
    code = export.main(["export", store.root, "--round=1", f"--out={tmp_path / 'ticket'}"])
    assert code == 2
    assert one_line(capsys.readouterr().err, "lth_tf.export: error: ") == (
        f"lth_tf.export: error: '{path}' is damaged (File is not a zip file): restore it from a copy, or delete "
        f"'{store.round_dir(0, 'lottery', 1)}', the later lottery rounds and the control rounds from 1 on, to "
        "train them again")
    assert snapshot(store.root) == before and not (tmp_path / "ticket").exists()


def test_export_on_a_full_disk_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    from lth_tf import export
    from lth_tf.models import networks
    from lth_tf.pruning import masks as pruning
    from lth_tf.pruning import rewind
    model = networks.build("lenet300_100", (40,), 10, seed=0)
    store = make_run(tmp_path / "run", weights=rewind.snapshot(model), masks=pruning.full_masks(model), rounds=0)
    out = tmp_path / "ticket"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    before = snapshot(store.root)
    code = export.main(["export", store.root, "--round=0", f"--out={out}"])
    assert code == 1
    assert "no space left on the device" in one_line(capsys.readouterr().err, "lth_tf.export: error: ")
    assert snapshot(store.root) == before and not out.exists()


# ---- the launcher does not promise a resume after a worker's refusal ----------------------------------------------
@pytest.mark.parametrize("code, says", [(2, "fix them, then run again"), (3, "resuming would diverge again"),
                                        (1, "Run the same command again to resume")])
def test_launcher_after_a_worker_refused_its_flags(code, says):
    import io
    from lth_tf import launch
    out = io.StringIO()
    rc = launch.launch(["--x=1"], workers=1, out=out, command=[sys.executable, "-c", f"import sys; sys.exit({code})"])
    last = out.getvalue().strip().splitlines()[-1]
    assert rc == code and last.startswith("lth_tf.launch: error: worker 0 exited with code") and says in last
    assert (code == 1) == ("resume" in last)


# ---- the smaller items -----------------------------------------------------------------------------------------
def test_the_header_says_when_iterations_are_rounded_up_to_eval_every():
    from lth_tf.main import _iterations_text
    assert _iterations_text(Config(iterations=150, eval_every=100).resolve()) == (
        "200 iterations (150 rounded up to a multiple of --eval_every=100)")
    assert _iterations_text(Config(iterations=60, eval_every=30).resolve()) == "60 iterations"
    assert _iterations_text(Config(iterations=20, eval_every=100).resolve()) == "20 iterations"  # one chunk of 20


def test_mixed_precision_without_a_gpu_warns_in_one_line(monkeypatch, capsys):
    import tensorflow as tf
    from lth_tf import main as cli
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    cli._check_device(Config(mixed_precision=True).resolve())
    assert one_line(capsys.readouterr().err, "lth_tf: warning: --mixed_precision without a GPU")
    cli._check_device(Config().resolve())
    assert capsys.readouterr().err == ""


# ---- divergence: one line naming where, nothing stored ------------------------------------------------------------
def test_a_diverging_round_stops_in_one_line_and_stores_nothing(tmp_path):
    """lr 1000 is within range, and lenet300_100's loss is NaN by its first evaluation. The directory already
    holds the trial's initial weights (as after a first diverged run): the run leaves it byte-identical."""
    from lth_tf.experiment.store import Store
    from lth_tf.models import networks
    from lth_tf.pruning import rewind
    args = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=0", "--iterations=60", "--eval_every=30",
            "--learning_rate=1000"]
    cfg = Config(model="lenet300_100", dataset="mnist1d", rounds=0, iterations=60, eval_every=30,
                 learning_rate=1000.0, output_dir=str(tmp_path / "run")).resolve()
    store = Store(cfg.output_dir)
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        store.save_weights(0, "initial", rewind.snapshot(networks.build("lenet300_100", (40,), 10, seed=0)))
    before = snapshot(store.root)
    result = subprocess.run([sys.executable, "-m", "lth_tf.main", *args, f"--output_dir={store.root}", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT,
                                                                                TF_CPP_MIN_LOG_LEVEL="3"),
                            timeout=300)
    assert result.returncode == 3, result.stderr[-2000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("lth_tf")]
    assert "Traceback" not in result.stderr and len(ours) == 1, result.stderr
    assert ours[0].startswith("lth_tf: error: trial 0 lottery round 0 diverged at iteration 30 (")
    assert ours[0].endswith("; nothing of it is stored: a lower --learning_rate (or a warm-up) may help")
    assert snapshot(store.root) == before  # no result.json, no backup, config.json as it was
