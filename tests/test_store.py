"""The results directory: atomic files, "finished" means result.json exists, refusals keep old results intact."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lth_tf.store import Store, StoreError

ROW = {"trial": 0, "variant": "lottery", "round": 0, "pruning": "iterative", "weights_remaining": 1.0,
       "early_stop_iteration": 100, "test_accuracy_at_early_stop": 0.9, "val_loss_at_early_stop": 0.3,
       "test_accuracy": 0.89, "test_loss": 0.31, "iterations": 200, "train_seconds": 1.0}


def save(store, round_=0, accuracy=0.9):
    store.save_round(0, "lottery", round_, masks={"fc1": np.ones((3, 2), bool)},
                     curve=[{"iteration": 100, "train_loss": 1, "val_loss": 0.3, "val_accuracy": 0.9,
                             "test_loss": 0.3, "test_accuracy": accuracy}],
                     start_weights={"fc1/kernel": np.zeros((3, 2))}, weights={"fc1/kernel": np.ones((3, 2))},
                     row=dict(ROW, round=round_, test_accuracy_at_early_stop=accuracy))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_round_files_and_no_temporaries_left(tmp_path):
    store = Store(str(tmp_path))
    with store.open({"a": 1}, "h1", {"a": 1}):
        assert not store.is_done(0, "lottery", 0)
        save(store)
        assert store.is_done(0, "lottery", 0)
    files = sorted(os.listdir(store.round_dir(0, "lottery", 0)))
    assert files == ["curve.csv", "masks.npz", "result.json", "start_weights.npz", "weights.npz"]
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]
    assert store.load_round(0, "lottery", 0, "masks")["fc1"].dtype == bool


def test_results_csv_has_one_row_per_round_even_when_a_round_is_written_twice(tmp_path):
    store = Store(str(tmp_path))
    with store.open({}, "h", {}):
        save(store, 0, 0.5)
        save(store, 1)
        save(store, 0, 0.7)  # rewriting a round replaces its row
    rows = read_csv(tmp_path / "results.csv")
    assert [(r["round"], r["test_accuracy_at_early_stop"]) for r in rows] == [("0", "0.7"), ("1", "0.9")]


def test_a_round_without_result_json_is_not_finished(tmp_path):
    store = Store(str(tmp_path))
    with store.open({}, "h", {}):
        os.makedirs(store.round_dir(0, "lottery", 0))
        np.savez(os.path.join(store.round_dir(0, "lottery", 0), "masks.npz"), fc1=np.ones(2, bool))
        assert not store.is_done(0, "lottery", 0)
        assert store.results() == []


def test_another_configuration_is_refused_naming_the_difference_and_nothing_changes(tmp_path):
    store = Store(str(tmp_path))
    with store.open({"learning_rate": 0.1}, "h1", {"learning_rate": 0.1}):
        save(store)
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(StoreError, match=r"learning_rate: 0\.1 -> 0\.2"):
        with store.open({"learning_rate": 0.2}, "h2", {"learning_rate": 0.2}):
            pass
    assert (tmp_path / "config.json").read_bytes() == before
    assert len(read_csv(tmp_path / "results.csv")) == 1


def test_same_hash_may_update_non_identity_fields(tmp_path):
    store = Store(str(tmp_path))
    with store.open({"rounds": 2}, "h", {}):
        pass
    with store.open({"rounds": 5}, "h", {}):
        pass
    assert json.loads((tmp_path / "config.json").read_text())["config"]["rounds"] == 5


def test_a_second_process_is_refused_while_the_lock_is_held(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from lth_tf.store import Store
        with Store({str(tmp_path)!r}).open({{}}, "h", {{}}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="another lth_tf process"):
            with Store(str(tmp_path)).open({}, "h", {}):
                pass
    finally:
        holder.kill()
        holder.wait()
    with Store(str(tmp_path)).open({}, "h", {}):  # released when the holder died
        pass


def test_unwritable_or_impossible_directories_are_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        with Store(str(blocker / "sub")).open({}, "h", {}):
            pass
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(StoreError, match="not writable"):
            with Store(str(locked / "out")).open({}, "h", {}):
                pass
