"""The start-up check of a results directory: damaged files are found before any work, in one line.

lth_tf's own writes are atomic (files.py), so damage comes from outside: a copy cut short (rsync, scp), a
disk or filesystem error, a hand edit. `check` reads what a resumed run relies on and raises
store.DamagedFileError naming the first damaged file and what to do. It needs no TensorFlow and is cheap:

    config.json               parses and holds a configuration hash
    results.csv               is a table lth_tf wrote (its hash is recorded in .results.csv.sha256)
    per trial run             initial_weights.npz, rewind_weights.npz
    per finished round        result.json (that round's row), masks.npz, weights.npz, start_weights.npz,
                              curve.csv (a header and numeric rows)
    per instability pair      instability/result.json, masks.npz; per trained copy copy_<i>.json,
    (lth_tf.instability)      copy_<i>_weights.npz, copy_<i>_curve.csv

An .npz of up to FULL_CHECK_BYTES is read whole (every member's CRC-32 is checked); a bigger one only has
its zip directory and member names checked (a truncated file loses its directory, so it is still caught),
and its contents are verified by CRC when a run loads it (Store.load_round). Backups are not checked here:
a damaged one is discarded, with a warning, when its round starts (Store.load_backup).

    from lth_tf.experiment import integrity, store
    integrity.check(store.Store("results/run1"), trials=[0, 1])   # raises store.DamagedFileError
"""
from __future__ import annotations

import csv
import os
import zipfile

from lth_tf.experiment.files import NPZ_ERRORS, DamagedFileError, describe_error
from lth_tf.experiment.store import Store

FULL_CHECK_BYTES = 8 << 20


def check(store: Store, trials) -> None:
    """Raises DamagedFileError for the first damaged file that a run of `trials` in `store` would rely on."""
    store.read_config()
    store.check_results_csv()
    finished = store.finished(set(trials))
    for trial in trials:
        for kind in ("initial", "rewind"):
            path = os.path.join(store.trial_dir(trial), f"{kind}_weights.npz")
            if os.path.exists(path):
                check_npz(path, store.trial_advice(trial))
    for trial, variant, round_ in finished:
        store.read_result(trial, variant, round_)
        directory, advice = store.round_dir(trial, variant, round_), store.round_advice(trial, variant, round_)
        for name in ("masks", "weights", "start_weights"):
            check_npz(os.path.join(directory, f"{name}.npz"), advice)
        check_curve(os.path.join(directory, "curve.csv"), advice)
    for trial, variant, round_ in store.finished_pairs(set(trials)):
        store.load_pair(trial, variant, round_)
        check_npz(os.path.join(store.pair_dir(trial, variant, round_), "masks.npz"),
                  store.pair_advice(trial, variant, round_))
    for trial, variant, round_, copy in store.trained_copies(set(trials)):
        directory, advice = store.pair_dir(trial, variant, round_), store.pair_advice(trial, variant, round_)
        store.read_json(os.path.join(directory, f"copy_{copy}.json"), advice)
        check_npz(os.path.join(directory, f"copy_{copy}_weights.npz"), advice)
        check_curve(os.path.join(directory, f"copy_{copy}_curve.csv"), advice)


def check_npz(path: str, advice: str) -> None:
    """Raises DamagedFileError unless `path` is a readable .npz (whole when small, its directory when big)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names or not all(name.endswith(".npy") for name in names):
                raise ValueError("not an .npz of arrays")
            if os.path.getsize(path) <= FULL_CHECK_BYTES:
                bad = archive.testzip()
                if bad is not None:
                    raise ValueError(f"bad CRC-32 for {bad}")
    except FileNotFoundError:
        raise DamagedFileError(path, "missing", advice) from None
    except NPZ_ERRORS as e:
        raise DamagedFileError(path, describe_error(e), advice) from None


def check_curve(path: str, advice: str) -> None:
    """Raises DamagedFileError unless `path` is a curve.csv: an "iteration" header and rows of numbers."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or not rows[0] or rows[0][0] != "iteration":
            raise ValueError("no header starting with 'iteration'")
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != len(rows[0]):
                raise ValueError(f"line {number} has {len(row)} fields, the header {len(rows[0])}")
            for value in row:
                if value:
                    float(value)
    except FileNotFoundError:
        raise DamagedFileError(path, "missing", advice) from None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as e:
        raise DamagedFileError(path, describe_error(e), advice) from None
