"""The results directory: what is finished, written so that a crash can never leave a half-written file.

Layout (a public contract):

    OUTPUT_DIR/config.json                       the resolved configuration and its hash
    OUTPUT_DIR/results.csv                       one row per finished (trial, variant, round)
    OUTPUT_DIR/trial_<t>/initial_weights.npz     the trial's initialisation ("<layer>/<weight>" keys)
    OUTPUT_DIR/trial_<t>/rewind_weights.npz      the weights rounds rewind to (= initial when rewind_iteration=0)
    OUTPUT_DIR/trial_<t>/<variant>/round_<r>/
        masks.npz          one boolean array per pruned kernel, keyed by layer name
        curve.csv          iteration, train_loss, val_loss, val_accuracy, test_loss, test_accuracy
        start_weights.npz  the weights the round's training started from
        weights.npz        the trained weights
        result.json        the round's row; written last, so its presence means "finished"
        backup/state.npz   only while the round trains: its state after the last eval_every chunk
                           (weights, optimizer, curve so far), so a killed run resumes mid-round
        instability/       only with the instability analysis (lth_tf.instability); variant may be `random`
            copy_<i>_weights.npz, copy_<i>_curve.csv, copy_<i>.json   each trained copy (the json last)
            backup_<i>/state.npz     only while copy i trains
            masks.npz      the mask both copies trained under (random pruning draws its own)
            result.json    the pair's path (alphas, errors per split) and instability; written last

Every file is written to a temporary name and renamed into place (atomic on POSIX). results.csv is
regenerated from the result.json files, so it never holds duplicated or partial rows.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import glob
import io
import json
import os
import shutil
import tempfile

import numpy as np

COLUMNS = ["trial", "variant", "round", "pruning", "weights_remaining", "early_stop_iteration",
           "test_accuracy_at_early_stop", "val_loss_at_early_stop", "test_accuracy", "test_loss",
           "iterations", "train_seconds"]
CURVE_COLUMNS = ["iteration", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]


class StoreError(Exception):
    """The results directory cannot be used as asked; str(e) says why in one line."""


def atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_npz(path: str) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _csv_bytes(rows: list, columns: list) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def check_writable(path: str) -> None:
    """Raises StoreError unless `path` is, or can be created as, a writable directory (creates nothing)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise StoreError(f"output directory '{path}' is not usable: '{probe}' is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StoreError(f"output directory '{path}' is not writable")


class Store:
    """One experiment's results directory.

        store = Store("results/run1")
        with store.open(config_dict, config_hash):      # takes the lock, checks or writes config.json
            if not store.is_done(0, "lottery", 3): ...
    """

    def __init__(self, root: str):
        self.root = root
        self._lock = None
        self._held = set()  # names of the lock files this Store holds (see trial_lock())

    # ---- opening -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, config: dict, config_hash: str, identity: dict, lock_name: str = ".lock"):
        """Locks the directory for this process and records the configuration.

        Refuses a directory holding results of a configuration with another hash, naming what differs.
        """
        check_writable(self.root)
        self.check_compatible(config_hash, identity)
        lock_path = os.path.join(self.root, lock_name)
        try:
            os.makedirs(os.path.dirname(lock_path), exist_ok=True)
            handle = open(lock_path, "a")
        except OSError as e:
            raise StoreError(f"cannot create the output directory '{self.root}': {e.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(f"another lth_tf process is running in '{self.root}' (lock {lock_name} is held)")
        self._held.add(lock_name)
        try:
            atomic_write(os.path.join(self.root, "config.json"),
                         json.dumps({"hash": config_hash, "identity": identity, "config": config},
                                    indent=2, sort_keys=True).encode())
            yield self
        finally:
            self._held.discard(lock_name)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def check_compatible(self, config_hash: str, identity: dict) -> None:
        """Raises StoreError, naming what differs, if the directory holds another configuration's results."""
        existing = self.read_config()
        if existing and existing.get("hash") != config_hash:
            old = existing.get("identity", {})
            diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in identity.items() if old.get(k) != v]
            raise StoreError(f"'{self.root}' holds results of a different configuration "
                             f"({'; '.join(diff) or 'hash differs'}); use another --output_dir")

    def read_config(self) -> dict | None:
        path = os.path.join(self.root, "config.json")
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise StoreError(f"'{path}' is unreadable ({e}); use another --output_dir") from None

    # ---- paths ---------------------------------------------------------------------------------------
    def trial_dir(self, trial: int) -> str:
        return os.path.join(self.root, f"trial_{trial}")

    def round_dir(self, trial: int, variant: str, round_: int) -> str:
        return os.path.join(self.trial_dir(trial), variant, f"round_{round_}")

    # ---- per trial -----------------------------------------------------------------------------------
    def save_weights(self, trial: int, kind: str, weights: dict) -> None:
        """kind: "initial" or "rewind"."""
        atomic_write(os.path.join(self.trial_dir(trial), f"{kind}_weights.npz"), _npz_bytes(weights))

    def load_weights(self, trial: int, kind: str) -> dict | None:
        path = os.path.join(self.trial_dir(trial), f"{kind}_weights.npz")
        return load_npz(path) if os.path.exists(path) else None

    # ---- per round -----------------------------------------------------------------------------------
    def is_done(self, trial: int, variant: str, round_: int) -> bool:
        return os.path.exists(os.path.join(self.round_dir(trial, variant, round_), "result.json"))

    def save_round(self, trial, variant, round_, *, masks, curve, start_weights, weights, row) -> None:
        """Writes a finished round; result.json goes last, so a crash leaves the round unfinished, not broken."""
        directory = self.round_dir(trial, variant, round_)
        atomic_write(os.path.join(directory, "masks.npz"), _npz_bytes(masks))
        atomic_write(os.path.join(directory, "curve.csv"), _csv_bytes(curve, CURVE_COLUMNS))
        atomic_write(os.path.join(directory, "start_weights.npz"), _npz_bytes(start_weights))
        atomic_write(os.path.join(directory, "weights.npz"), _npz_bytes(weights))
        atomic_write(os.path.join(directory, "result.json"), json.dumps(row, sort_keys=True).encode())
        self.write_results_csv()

    def load_round(self, trial, variant, round_, what: str) -> dict:
        """what: "masks", "weights" or "start_weights"."""
        return load_npz(os.path.join(self.round_dir(trial, variant, round_), f"{what}.npz"))

    # ---- one trial at a time -------------------------------------------------------------------------
    @contextlib.contextmanager
    def trial_lock(self, trial: int):
        """Holds trial_<t>/.lock, or raises StoreError at once if another process holds it.

        A full run takes each trial's lock while it runs that trial, and a --trial_index run opens the
        store with it, so two processes never write the same trial. Re-entrant within this Store (flock
        locks belong to an open file: taking the same file twice in one process would refuse itself).
        The kernel drops the lock when its process dies, SIGKILL included: a crash leaves no stale lock.
        """
        name = f"trial_{trial}/.lock"
        if name in self._held:
            yield self
            return
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(f"trial {trial} is being run by another lth_tf process in '{self.root}' "
                             f"(lock {name} is held); wait for it, or run the other trials with --trial_index") \
                from None
        self._held.add(name)
        try:
            yield self
        finally:
            self._held.discard(name)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # ---- crash-safe resume within a round ------------------------------------------------------------
    def backup_path(self, trial, variant, round_, copy=None) -> str:
        """round_<r>/backup/state.npz: the unfinished round's state after its last completed chunk
        (with `copy`: round_<r>/instability/backup_<copy>/state.npz, one copy of an instability pair)."""
        if copy is not None:
            return os.path.join(self.pair_dir(trial, variant, round_), f"backup_{copy}", "state.npz")
        return os.path.join(self.round_dir(trial, variant, round_), "backup", "state.npz")

    def save_backup(self, trial, variant, round_, arrays: dict, copy=None) -> None:
        """Replaces the round's backup in one atomic rename: a crash leaves the old state or the new one."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # uncompressed: written every eval_every steps, so speed matters
        atomic_write(self.backup_path(trial, variant, round_, copy), buffer.getvalue())

    def load_backup(self, trial, variant, round_, copy=None) -> dict | None:
        path = self.backup_path(trial, variant, round_, copy)
        if not os.path.exists(path):
            return None
        try:
            return load_npz(path)
        except (OSError, ValueError, EOFError):
            return None  # unreadable (cannot come from atomic_write): the round restarts from its start

    def clear_backup(self, trial, variant, round_, copy=None) -> None:
        """Removes the backup once the round is stored (or is found finished)."""
        directory = os.path.dirname(self.backup_path(trial, variant, round_, copy))
        if os.path.isdir(directory):
            shutil.rmtree(directory, ignore_errors=True)

    # ---- instability pairs (lth_tf.instability) ------------------------------------------------------
    def pair_dir(self, trial: int, variant: str, round_: int) -> str:
        return os.path.join(self.round_dir(trial, variant, round_), "instability")

    def save_copy(self, trial, variant, round_, copy: int, *, weights, curve, row) -> None:
        """One trained copy of a pair; copy_<i>.json goes last, so its presence means "trained"."""
        directory = self.pair_dir(trial, variant, round_)
        atomic_write(os.path.join(directory, f"copy_{copy}_weights.npz"), _npz_bytes(weights))
        atomic_write(os.path.join(directory, f"copy_{copy}_curve.csv"), _csv_bytes(curve, CURVE_COLUMNS))
        atomic_write(os.path.join(directory, f"copy_{copy}.json"), json.dumps(row, sort_keys=True).encode())

    def load_copy(self, trial, variant, round_, copy: int) -> dict | None:
        """{"weights", "row"} of a trained copy, or None if it is not finished."""
        directory = self.pair_dir(trial, variant, round_)
        try:
            with open(os.path.join(directory, f"copy_{copy}.json")) as f:
                row = json.load(f)
        except (OSError, ValueError):
            return None
        return {"weights": load_npz(os.path.join(directory, f"copy_{copy}_weights.npz")), "row": row}

    def save_pair(self, trial, variant, round_, result: dict, masks: dict) -> None:
        """The pair's masks, then its result.json (last: its presence means "finished")."""
        atomic_write(os.path.join(self.pair_dir(trial, variant, round_), "masks.npz"), _npz_bytes(masks))
        atomic_write(os.path.join(self.pair_dir(trial, variant, round_), "result.json"),
                     json.dumps(result, sort_keys=True).encode())

    def load_pair(self, trial, variant, round_) -> dict | None:
        """The pair's stored result (path and instability), or None if it is not finished."""
        try:
            with open(os.path.join(self.pair_dir(trial, variant, round_), "result.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def pair_results(self) -> list:
        """Every finished pair's result, sorted by (trial, variant, round)."""
        rows = []
        for path in glob.glob(os.path.join(self.root, "trial_*", "*", "round_*", "instability", "result.json")):
            try:
                with open(path) as f:
                    rows.append(json.load(f))
            except (OSError, ValueError):
                continue
        return sorted(rows, key=lambda r: (r["trial"], r["variant"], r["round"]))

    # ---- the table -----------------------------------------------------------------------------------
    def results(self) -> list:
        """Every finished round's row, sorted by (trial, variant, round)."""
        rows = []
        for path in glob.glob(os.path.join(self.root, "trial_*", "*", "round_*", "result.json")):
            try:
                with open(path) as f:
                    rows.append(json.load(f))
            except (OSError, ValueError):
                continue  # cannot happen with atomic writes; a foreign file is not ours to read
        return sorted(rows, key=lambda r: (r["trial"], r["variant"], r["round"]))

    def write_results_csv(self) -> None:
        # Several processes (one per trial) may regenerate the table; serialise them.
        with open(os.path.join(self.root, ".results.lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            rows = self.results()
            extra = sorted({k for r in rows for k in r} - set(COLUMNS))
            atomic_write(os.path.join(self.root, "results.csv"), _csv_bytes(rows, COLUMNS + extra))
            fcntl.flock(handle, fcntl.LOCK_UN)
