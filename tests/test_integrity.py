"""Damaged files: each is found before any work, in one line naming the file and what to do.

The directory is made by the store itself (no training: these tests need no TensorFlow), then one file is
truncated, corrupted or edited, as a copy cut short, a disk error or a person would do it.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.experiment import integrity
from lth_tf.experiment.config import Config
from lth_tf.experiment.files import DamagedFileError
from lth_tf.experiment.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--iterations=30", "--eval_every=15"]


def make_run(path, cfg=None) -> Store:
    """A directory as `python -m lth_tf.main ARGS` leaves it: config.json, two finished lottery rounds."""
    cfg = cfg or Config(model="lenet300_100", dataset="mnist1d", rounds=1, iterations=30, eval_every=15,
                        output_dir=str(path)).resolve()
    rng = np.random.default_rng(0)
    weights = {"fc1/kernel": rng.normal(size=(40, 300)).astype(np.float32), "fc1/bias": np.zeros(300, np.float32)}
    store = Store(str(path))
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        store.save_weights(0, "initial", weights)
        store.save_weights(0, "rewind", weights)
        for r in range(2):
            store.save_round(0, "lottery", r, masks={"fc1": rng.random((40, 300)) < 0.8},
                             curve=[{"iteration": i, "train_loss": 1.0, "val_loss": 0.5, "val_accuracy": 0.8,
                                     "test_loss": 0.5, "test_accuracy": 0.8} for i in (15, 30)],
                             start_weights=weights, weights=weights,
                             row={"trial": 0, "variant": "lottery", "round": r, "pruning": "iterative",
                                  "weights_remaining": 0.8 ** r, "early_stop_iteration": 30,
                                  "test_accuracy_at_early_stop": 0.8, "val_loss_at_early_stop": 0.5,
                                  "test_accuracy": 0.8, "test_loss": 0.5, "iterations": 30, "train_seconds": 1.0})
    return store


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def corrupt(path):
    """Overwrites 64 bytes in the middle of the file (its data, not its zip directory)."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff" * 64)


def edit(path):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("0.8", "0.85"))


def garble(path):
    with open(path, "w") as f:
        f.write('{"hash": "abc", "identity": {')


ROUND1 = os.path.join("trial_0", "lottery", "round_1")
ROUND_ADVICE = ("restore it from a copy, or delete '{root}/trial_0/lottery/round_1', the later lottery rounds and "
                "the control rounds from 1 on, to train them again")
# (file, damage, the exact line lth_tf prints after "lth_tf: error: ")
CASES = [
    (os.path.join(ROUND1, "masks.npz"), truncate,
     "'{root}/" + ROUND1 + "/masks.npz' is damaged (File is not a zip file): " + ROUND_ADVICE),
    (os.path.join(ROUND1, "weights.npz"), corrupt,
     "'{root}/" + ROUND1 + "/weights.npz' is damaged ({reason}): " + ROUND_ADVICE),
    (os.path.join(ROUND1, "result.json"), truncate,
     "'{root}/" + ROUND1 + "/result.json' is damaged ({reason}): " + ROUND_ADVICE),
    (os.path.join("trial_0", "initial_weights.npz"), truncate,
     "'{root}/trial_0/initial_weights.npz' is damaged (File is not a zip file): restore it from a copy, or delete "
     "'{root}/trial_0' to run trial 0 again"),
    ("config.json", garble,
     "'{root}/config.json' is damaged ({reason}): restore it from a copy, delete it if this directory holds "
     "results of this same configuration, or use another --output_dir"),
    ("results.csv", edit,
     "'{root}/results.csv' was changed after lth_tf wrote it (edited by hand?); lth_tf rebuilds it from the "
     "rounds' result.json files: move it away (e.g. to results.edited.csv) and run again"),
]
IDS = ["masks-truncated", "weights-corrupt", "result-truncated", "initial-truncated", "config-garbled",
       "results-csv-edited"]


def expected(template, root, error):
    reason = error.reason if isinstance(error, DamagedFileError) else ""
    return template.format(root=root, reason=reason)


@pytest.mark.parametrize("name, damage, message", CASES, ids=IDS)
def test_the_check_names_the_damaged_file_and_what_to_do(tmp_path, name, damage, message):
    store = make_run(tmp_path / "run")
    integrity.check(store, [0])  # undamaged: passes
    damage(os.path.join(store.root, name))
    with pytest.raises(DamagedFileError) as e:
        integrity.check(store, [0])
    assert str(e.value) == expected(message, store.root, e.value)
    assert e.value.path == os.path.join(store.root, name)
    if name.startswith("trial_0"):
        integrity.check(store, [1])  # a run of another trial does not read trial 0's files


@pytest.mark.parametrize("name, damage, message", CASES, ids=IDS)
def test_the_command_refuses_in_one_line_before_tensorflow_and_changes_nothing(tmp_path, name, damage, message):
    store = make_run(tmp_path / "run")
    path = os.path.join(store.root, name)
    damage(path)
    before = open(path, "rb").read()
    result = subprocess.run([sys.executable, "-m", "lth_tf.main", *ARGS, f"--output_dir={store.root}"],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no TensorFlow start-up lines either
    line = result.stderr.strip()
    assert line.startswith(f"lth_tf: error: '{path}' ")
    with pytest.raises(DamagedFileError) as e:
        integrity.check(store, [0])
    assert line == "lth_tf: error: " + expected(message, store.root, e.value)
    assert open(path, "rb").read() == before  # never retrained over, never rewritten
    assert not os.path.exists(os.path.join(store.root, ROUND1, "backup"))


def test_a_big_file_is_checked_by_its_directory_and_its_contents_when_loaded(tmp_path, monkeypatch):
    store = make_run(tmp_path / "run")
    corrupt(os.path.join(store.root, ROUND1, "weights.npz"))
    monkeypatch.setattr(integrity, "FULL_CHECK_BYTES", 0)  # as for a large network: directory only
    integrity.check(store, [0])
    with pytest.raises(DamagedFileError, match=r"round_1/weights.npz' is damaged \(.*\): restore it from a copy"):
        store.load_round(0, "lottery", 1, "weights")  # the CRC-32 check when the run reads it
    truncate(os.path.join(store.root, ROUND1, "start_weights.npz"))
    with pytest.raises(DamagedFileError, match="start_weights.npz' is damaged"):
        integrity.check(store, [0])  # a truncated file has lost its zip directory: still found


def test_a_damaged_backup_is_discarded_with_one_line_and_the_round_restarts(tmp_path):
    warnings = []
    store = make_run(tmp_path / "run")
    store.on_warning = warnings.append
    net = {f"net/{k}": v for k, v in store.load_weights(0, "initial").items()}
    store.save_backup(0, "lottery", 2, {"meta": np.array("{}"), **net})
    path = store.backup_path(0, "lottery", 2)
    assert store.load_backup(0, "lottery", 2) is not None and not warnings
    corrupt(path)
    assert store.load_backup(0, "lottery", 2) is None  # the round starts over ...
    assert warnings == [f"'{path}' is damaged (Bad CRC-32 for file 'net/fc1/kernel.npy'); discarded it: trial 0 "
                        "lottery round 2 restarts from its beginning"]
    assert store.backup_iteration(0, "lottery", 2) is None
    store.save_backup(0, "lottery", 2, {"meta": np.array('{"iteration": 30}')})  # ... and replaces it
    assert store.backup_iteration(0, "lottery", 2) == 30


# ---- instability pairs (lth_tf.instability): the same checks for a pair's files ---------------------------------

PAIR = os.path.join(ROUND1, "instability")
PAIR_ADVICE = "restore it from a copy, or delete '{root}/" + PAIR + "' to train that pair again"


def add_pair(store):
    """A finished pair of round 1 (two trained copies and the path's result), as experiment.run_pairs writes it."""
    weights = store.load_weights(0, "initial")
    curve = [{"iteration": 30, "train_loss": 1.0, "val_loss": 0.5, "val_accuracy": 0.8, "test_loss": 0.5,
              "test_accuracy": 0.8}]
    for copy in range(2):
        store.save_copy(0, "lottery", 1, copy, weights=weights, curve=curve,
                        row={"data_key": copy, "test_accuracy": 0.8, "test_loss": 0.5, "iterations": 30})
    store.save_pair(0, "lottery", 1, {"trial": 0, "variant": "lottery", "round": 1, "rewind_iteration": 0,
                                      "alphas": [0.0, 1.0], "errors": {"test": [0.2, 0.2]}},
                    masks=store.load_round(0, "lottery", 1, "masks"))


@pytest.mark.parametrize("name, damage", [("result.json", truncate), ("masks.npz", truncate),
                                          ("copy_1_weights.npz", corrupt), ("copy_0.json", garble),
                                          ("copy_0_curve.csv", edit)])
def test_a_damaged_pair_file_is_named_with_what_to_do_and_never_trained_over(tmp_path, name, damage):
    store = make_run(tmp_path / "run")
    add_pair(store)
    integrity.check(store, [0])
    assert store.load_pair(0, "lottery", 1)["alphas"] == [0.0, 1.0] and store.load_copy(0, "lottery", 1, 0)
    damage(os.path.join(store.root, PAIR, name))
    if name.endswith(".csv"):  # edit() keeps a valid table: make it one that is not
        with open(os.path.join(store.root, PAIR, name), "a") as f:
            f.write("30,nan?\n")
    with pytest.raises(DamagedFileError) as e:
        integrity.check(store, [0])
    assert e.value.path == os.path.join(store.root, PAIR, name)
    assert str(e.value) == f"'{e.value.path}' is damaged ({e.value.reason}): " + PAIR_ADVICE.format(root=store.root)
    if name in ("result.json", "copy_0.json", "copy_1_weights.npz"):  # what the run reads: refused there too
        with pytest.raises(DamagedFileError):
            store.load_pair(0, "lottery", 1) if name == "result.json" else (
                store.load_copy(0, "lottery", 1, int(name[5])))
    integrity.check(store, [1])


def test_the_instability_command_refuses_a_damaged_pair_in_one_line_before_tensorflow(tmp_path):
    from lth_tf.experiment import stability
    root = tmp_path / "inst"
    cfg = stability.config_for(Config(model="lenet300_100", dataset="mnist1d", rounds=1, iterations=30,
                                      eval_every=15).resolve(), 0, str(root))
    store = make_run(cfg.results_dir(), cfg)  # ROOT/rewind_0, as the sweep at k=0 leaves it
    add_pair(store)
    path = os.path.join(store.root, PAIR, "result.json")
    truncate(path)
    result = subprocess.run([sys.executable, "-m", "lth_tf.instability", *ARGS, "--rewind_iterations=0",
                             f"--output_dir={root}"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.splitlines() == [f"lth_tf: error: '{path}' is damaged ({load_reason(store)}): "
                                          + PAIR_ADVICE.format(root=store.root)]


def load_reason(store):
    with pytest.raises(DamagedFileError) as e:
        store.load_pair(0, "lottery", 1)
    return e.value.reason
