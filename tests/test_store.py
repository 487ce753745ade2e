"""The results directory: atomic files, "finished" means result.json exists, refusals keep old results intact."""
import csv
import errno
import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lth_tf.experiment.files import DiskFullError, StoreError
from lth_tf.experiment.store import Store

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
        from lth_tf.experiment.store import Store
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


# ---- two processes at once, a failed start, a full disk ---------------------------------------------------

RACER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from lth_tf.experiment import files
    from lth_tf.experiment import store as store_lib
    check = store_lib.Store.check_compatible
    def slow(self, *args):  # widens the window between reading and writing config.json to 0.5 s
        check(self, *args)
        time.sleep(0.5)
    store_lib.Store.check_compatible = slow
    root, trial, config_hash = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        with store_lib.Store(root).open({{}}, config_hash, {{"lr": config_hash}}, lock_name=f"trial_{{trial}}/.lock"):
            print("passed", flush=True)
    except files.StoreError as e:
        print("refused:", e, flush=True)
""")


def test_two_trial_index_processes_on_an_empty_directory_cannot_both_pass_the_configuration_check(tmp_path):
    # Different trials take different locks; the configuration check and write share the directory's config lock.
    root = str(tmp_path / "race")
    procs = [subprocess.Popen([sys.executable, "-c", RACER.format(repo=os.getcwd()), root, str(t), h],
                              stdout=subprocess.PIPE, text=True) for t, h in ((0, "h1"), (1, "h2"))]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs[0] == "passed" and outs[1].startswith("refused:"), outs
    assert "holds results of a different configuration (lr: 'h" in outs[1]
    winner = json.loads((tmp_path / "race" / "config.json").read_text())["hash"]
    assert f"-> '{'h2' if winner == 'h1' else 'h1'}'" in outs[1]


def test_a_start_that_fails_before_storing_anything_leaves_no_trace(tmp_path):
    root = tmp_path / "a" / "b"  # two directories that open() creates
    with pytest.raises(RuntimeError):
        with Store(str(root)).open({}, "h", {}, lock_name="trial_3/.lock") as store:
            with store.trial_lock(4):
                raise RuntimeError("data could not be loaded")
    assert not (tmp_path / "a").exists()
    # Something stored, or a file of another process: nothing is removed.
    with pytest.raises(RuntimeError):
        with Store(str(root)).open({}, "h", {}) as store:
            store.save_weights(0, "initial", {"w": np.zeros(2)})
            raise RuntimeError
    assert (root / "config.json").exists() and (root / "trial_0" / "initial_weights.npz").exists()
    other = tmp_path / "c"
    with pytest.raises(RuntimeError):
        with Store(str(other)).open({}, "h", {}):
            (other / "trial_1").mkdir()  # as a --trial_index=1 process starting meanwhile would
            raise RuntimeError
    assert (other / "config.json").exists()


def _fill_disk_after(monkeypatch, count):
    """Writes through os.fdopen fail with ENOSPC after `count` successful ones, half-written, as a full disk does."""
    real, calls = os.fdopen, []

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        calls.append(fd)
        f = real(fd, *args, **kwargs)
        return f if len(calls) <= count else Full(f)

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_raises_one_line_and_leaves_every_stored_file_as_it_was(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    with store.open({}, "h", {}):
        save(store, 0)
        store.save_backup(0, "lottery", 1, {"meta": np.array("first")})
        before = {p: open(p, "rb").read() for p in glob.glob(f"{tmp_path}/**/*.*", recursive=True)}
        _fill_disk_after(monkeypatch, 0)
        with pytest.raises(DiskFullError, match=r"^no space left on the device writing '.*/round_1/backup/state"
                                                r"\.npz'; everything stored before is intact: free some space and "
                                                r"run the same command again to resume$"):
            store.save_backup(0, "lottery", 1, {"meta": np.array("second")})
        with pytest.raises(DiskFullError, match="round_1/masks.npz"):
            save(store, 1)
        monkeypatch.undo()
    after = {p: open(p, "rb").read() for p in glob.glob(f"{tmp_path}/**/*.*", recursive=True)}
    assert after == before  # old backup, round 0 and the table unchanged; no temporary file left
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]
    assert str(store.load_backup(0, "lottery", 1)["meta"]) == "first" and not store.is_done(0, "lottery", 1)


# ---- results.csv edited by hand ----------------------------------------------------------------------------

def test_a_hand_edited_results_csv_is_detected_and_never_overwritten(tmp_path):
    store = Store(str(tmp_path))
    with store.open({}, "h", {}):
        save(store, 0)
        save(store, 1)  # the table was written twice: both versions are recognised
        store.check_results_csv()
        table = tmp_path / "results.csv"
        edited = table.read_text().replace("0.9", "0.99")
        table.write_text(edited)
        message = (f"'{table}' was changed after lth_tf wrote it (edited by hand?); lth_tf rebuilds it from the "
                   "rounds' result.json files: move it away (e.g. to results.edited.csv) and run again")
        with pytest.raises(StoreError) as e:
            store.check_results_csv()
        assert str(e.value) == message
        with pytest.raises(StoreError, match="edited by hand"):
            save(store, 2)
        assert table.read_text() == edited  # the user's edit is kept
        table.rename(tmp_path / "results.edited.csv")
        store.write_results_csv()
        assert [r["round"] for r in read_csv(table)] == ["0", "1", "2"]
