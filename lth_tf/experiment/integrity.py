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

Every .npz is also checked inside, from its array headers (no data read, nothing unpickled): weights
(initial, rewind, a round's start and trained, an instability copy's) must have the names, shapes and dtypes
of the trial's initial_weights.npz, the model's own (or another trial's); masks one boolean
array per layer with that layer's kernel shape, the same layers in every round. An array of Python objects
is refused.

An .npz of up to FULL_CHECK_BYTES is read whole (every member's CRC-32 is checked); a bigger one only has
its zip directory and member names checked (a truncated file loses its directory, so it is still caught),
and its contents are verified by CRC when a run loads it (Store.load_round). Backups are not checked here:
a damaged one is discarded, with a warning, when its round starts (Store.load_backup).

    from lth_tf.experiment import integrity, store
    integrity.check(store.Store("results/run1"), trials=[0, 1])   # raises store.DamagedFileError
"""
from __future__ import annotations

import csv
import glob
import os
import zipfile

from lth_tf.experiment.files import NPZ_ERRORS, DamagedFileError, describe_error, layout_mismatch, npz_layout
from lth_tf.experiment.store import Store

FULL_CHECK_BYTES = 8 << 20


def check(store: Store, trials) -> None:
    """Raises DamagedFileError for the first damaged file that a run of `trials` in `store` would rely on."""
    store.read_config()
    store.check_results_csv()
    finished = store.finished(set(trials))
    reference = _Reference(store)
    for trial in trials:
        for kind in ("initial", "rewind"):
            path = os.path.join(store.trial_dir(trial), f"{kind}_weights.npz")
            if os.path.exists(path):
                reference.weights(trial, path, store.trial_advice(trial))
    for trial, variant, round_ in finished:
        store.read_result(trial, variant, round_)
        directory, advice = store.round_dir(trial, variant, round_), store.round_advice(trial, variant, round_)
        reference.masks(trial, os.path.join(directory, "masks.npz"), advice)
        for name in ("weights", "start_weights"):
            reference.weights(trial, os.path.join(directory, f"{name}.npz"), advice)
        check_curve(os.path.join(directory, "curve.csv"), advice)
    for trial, variant, round_ in store.finished_pairs(set(trials)):
        store.load_pair(trial, variant, round_)
        reference.masks(trial, os.path.join(store.pair_dir(trial, variant, round_), "masks.npz"),
                        store.pair_advice(trial, variant, round_))
    for trial, variant, round_, copy in store.trained_copies(set(trials)):
        directory, advice = store.pair_dir(trial, variant, round_), store.pair_advice(trial, variant, round_)
        store.read_json(os.path.join(directory, f"copy_{copy}.json"), advice)
        reference.weights(trial, os.path.join(directory, f"copy_{copy}_weights.npz"), advice)
        check_curve(os.path.join(directory, f"copy_{copy}_curve.csv"), advice)


class _Reference:
    """What the model's weights look like ({name: (shape, dtype)}), from the stored initial_weights.npz of the
    trial (else of another trial: every trial builds the same model), and the layers its masks cover."""

    def __init__(self, store: Store):
        self.store, self.layouts, self.mask_layers = store, {}, None

    def expected(self, trial: int) -> tuple:
        """(layout, the initial_weights.npz it comes from), or (None, None) where no trial has one yet."""
        own = os.path.join(self.store.trial_dir(trial), "initial_weights.npz")
        others = sorted(glob.glob(os.path.join(self.store.root, "trial_*", "initial_weights.npz")))
        for path in [own] + [p for p in others if p != own]:
            if path not in self.layouts and os.path.isfile(path):
                check_npz(path, self.store.trial_advice(trial))
                self.layouts[path] = npz_layout(path)
            if path in self.layouts:
                return self.layouts[path], path
        return None, None

    def weights(self, trial: int, path: str, advice: str) -> None:
        layout = _checked_layout(path, advice)
        expected, source = self.expected(trial)
        problem = layout_mismatch(expected, layout) if expected is not None and source != path else None
        if problem:
            raise DamagedFileError(path, f"{problem}, as in {os.path.relpath(source, self.store.root)}", advice)

    def masks(self, trial: int, path: str, advice: str) -> None:
        layout = _checked_layout(path, advice)
        expected, source = self.expected(trial)
        problem = None
        if self.mask_layers is not None and set(layout) != self.mask_layers:
            problem = f"masks of layers {sorted(layout)}, other rounds' of {sorted(self.mask_layers)}"
        elif expected is not None:
            kernels = {name: (expected[f"{name}/kernel"][0], bool) for name in layout if f"{name}/kernel" in expected}
            problem = layout_mismatch(kernels, {name: layout[name] for name in layout})
            problem = problem and f"{problem} (masks: a boolean array of each layer's kernel shape)"
        if problem:
            raise DamagedFileError(path, problem, advice)
        self.mask_layers = set(layout)


def _checked_layout(path: str, advice: str) -> dict:
    check_npz(path, advice)
    try:
        return npz_layout(path)
    except NPZ_ERRORS as e:
        raise DamagedFileError(path, describe_error(e), advice) from None


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
