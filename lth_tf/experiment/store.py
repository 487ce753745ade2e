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
    OUTPUT_DIR/.lock, trial_<t>/.lock            held (flock) by the process running the directory / trial
    OUTPUT_DIR/.config.lock, .results.lock       held for a moment while config.json / results.csv is written
    OUTPUT_DIR/.results.csv.sha256               the hashes of the results.csv lth_tf wrote (edit detection)

Every file is written to a temporary name and renamed into place (atomic on POSIX; lth_tf.experiment.files).
results.csv is regenerated from the result.json files, so it never holds duplicated or partial rows.

Damage from outside (a truncated copy, a disk error, a hand edit) is reported, never papered over: a file
that cannot be read raises DamagedFileError naming the file and what to do; a finished round is never
retrained over silently. Only a damaged backup is discarded (the round restarts from its beginning) and
reported through `on_warning`. A full disk raises DiskFullError and leaves every stored file as it was.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import io
import json
import os
import shutil

import numpy as np

from lth_tf.experiment.files import (CURVE_COLUMNS, NPZ_ERRORS, DamagedFileError, StoreError, _csv_bytes, _listing,
                                     _missing_dirs, _npz_bytes, check_layout, check_writable, describe_error,
                                     layout_mismatch, load_npz, npz_layout, refuse_links)
from lth_tf.experiment.pair_store import PairStore

# The footnote-1 convergence columns (lth_tf.training.convergence) come after the older ones, so a reader that indexes
# the older columns by position still finds them; rounds stored before they existed leave them empty.
COLUMNS = ["trial", "variant", "round", "pruning", "weights_remaining", "early_stop_iteration",
           "test_accuracy_at_early_stop", "val_loss_at_early_stop", "test_accuracy", "test_loss",
           "iterations", "train_seconds", "convergence_iteration", "test_accuracy_at_convergence"]


class Store(PairStore):
    """One experiment's results directory.

        store = Store("results/run1")
        with store.open(config_dict, config_hash, identity):   # takes the lock, checks or writes config.json
            if not store.is_done(0, "lottery", 3): ...

    on_warning(message): told, in one line, about what the store repairs on its own (a damaged backup).
    The instability pairs' files are PairStore's (lth_tf.experiment.pair_store).
    """

    def __init__(self, root: str, on_warning=None):
        self.root = root
        self.on_warning = on_warning
        self._lock = None
        self._held = set()  # names of the lock files this Store holds (see trial_lock())
        self._created = set()  # absolute paths that open() and trial_lock() created; see _tidy()

    # ---- opening -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, config: dict, config_hash: str, identity: dict, lock_name: str = ".lock", check=None):
        """Locks the directory for this process and records the configuration.

        Refuses a directory holding results of a configuration with another hash, naming what differs, and one
        with a symbolic link inside (files.check_layout). check(): more checks (the caller's start-up check)
        that run after those and before config.json is written, so a refusal leaves config.json as it was.
        The check and the write of config.json happen under .config.lock, so of two processes starting at
        once on an empty directory (--trial_index runs take different locks) only one configuration wins.
        If the body fails before anything was stored, what open() and trial_lock() created (lock files,
        config.json, the directory) is removed again, and a config.json it replaced is put back: a run that
        fails at start-up leaves no trace.
        """
        check_layout(self.root)  # before the first write: a linked lock file or trial directory is never used
        check_writable(self.root)
        before = _listing(self.root)
        config_path = os.path.join(self.root, "config.json")
        try:
            with open(config_path, "rb") as f:
                old_config = f.read()
        except OSError:
            old_config = None
        handle = self._take(lock_name, refusal=lambda: StoreError(
            f"another lth_tf process is running in '{self.root}' (lock {lock_name} is held)"))
        self._held.add(lock_name)
        try:
            with self._config_lock():
                if not os.path.exists(config_path):
                    self._created.add(os.path.abspath(config_path))
                self.check_compatible(config_hash, identity)
                if check is not None:
                    check()
                self._write(config_path, json.dumps({"hash": config_hash, "identity": identity, "config": config},
                                                     indent=2, sort_keys=True).encode())
            yield self
        except BaseException:
            self._tidy(before, old_config)
            raise
        finally:
            self._created.clear()
            self._held.discard(lock_name)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _take(self, name: str, refusal):
        """Opens and flocks lock file `name` without waiting; raises refusal() if another process holds it."""
        path = os.path.abspath(os.path.join(self.root, name))
        made, existed = _missing_dirs(os.path.dirname(path)), os.path.exists(path)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle = open(path, "a")
        except OSError as e:
            where = self.root if name == ".lock" else os.path.dirname(path)
            raise StoreError(f"cannot create '{where}' ({os.path.basename(path)} in it): {e.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise refusal() from None
        self._created.update(made + ([] if existed else [path]))
        return handle

    @contextlib.contextmanager
    def _config_lock(self):
        path = os.path.abspath(os.path.join(self.root, ".config.lock"))
        if not os.path.exists(path):
            self._created.add(path)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held for a moment: wait, rather than refuse
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _tidy(self, before: set, old_config: bytes | None = None) -> None:
        """After a failed start: removes what this Store created if nothing else appeared meanwhile, and puts
        back the config.json (`old_config`) it replaced.

        Runs while this process still holds its lock, under the config lock; another process that starts
        here creates its own lock file first, which counts as "something else", so its files are never touched.
        """
        created = set(self._created)
        self._created.clear()
        if not created and old_config is None:
            return
        with contextlib.suppress(OSError, StoreError), self._config_lock():
            inside = _listing(self.root)
            if not inside <= before | created:
                return
            path = os.path.join(self.root, "config.json")
            if old_config is not None:
                with open(path, "rb") as f:
                    if f.read() != old_config:
                        self._write(path, old_config)
            for path in sorted(created & inside, key=lambda p: -p.count(os.sep)):  # files, then inner dirs
                with contextlib.suppress(OSError):
                    os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            for path in sorted(created - inside, key=lambda p: -p.count(os.sep)):  # above the root
                with contextlib.suppress(OSError):
                    os.rmdir(path)

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
                value = json.load(f)
            if not isinstance(value, dict) or not isinstance(value.get("hash"), str):
                raise ValueError("no configuration hash in it")
            return value
        except (OSError, ValueError) as e:
            raise DamagedFileError(path, describe_error(e), "restore it from a copy, delete it if this "
                                   "directory holds results of this same configuration, or use another "
                                   "--output_dir") from None

    # ---- paths ---------------------------------------------------------------------------------------
    def trial_dir(self, trial: int) -> str:
        return os.path.join(self.root, f"trial_{trial}")

    def round_dir(self, trial: int, variant: str, round_: int) -> str:
        return os.path.join(self.trial_dir(trial), variant, f"round_{round_}")

    # ---- what to do about a damaged file -------------------------------------------------------------
    def trial_advice(self, trial: int) -> str:
        return f"restore it from a copy, or delete '{self.trial_dir(trial)}' to run trial {trial} again"

    def round_advice(self, trial: int, variant: str, round_: int) -> str:
        """Later lottery rounds were pruned from this one, and controls reuse its masks: they go with it."""
        if variant == "lottery" and round_ == 0:
            return self.trial_advice(trial)
        directory = self.round_dir(trial, variant, round_)
        if variant == "lottery":
            return (f"restore it from a copy, or delete '{directory}', the later lottery rounds and the "
                    f"control rounds from {round_} on, to train them again")
        return f"restore it from a copy, or delete '{directory}' to train that round again"

    # ---- per trial -----------------------------------------------------------------------------------
    def save_weights(self, trial: int, kind: str, weights: dict) -> None:
        """kind: "initial" or "rewind"."""
        self._write(os.path.join(self.trial_dir(trial), f"{kind}_weights.npz"), _npz_bytes(weights))

    def load_weights(self, trial: int, kind: str) -> dict | None:
        path = os.path.join(self.trial_dir(trial), f"{kind}_weights.npz")
        return load_npz(path, self.trial_advice(trial)) if os.path.exists(path) else None

    # ---- per round -----------------------------------------------------------------------------------
    def is_done(self, trial: int, variant: str, round_: int) -> bool:
        return os.path.exists(os.path.join(self.round_dir(trial, variant, round_), "result.json"))

    def save_round(self, trial, variant, round_, *, masks, curve, start_weights, weights, row) -> None:
        """Writes a finished round; result.json goes last, so a crash leaves the round unfinished, not broken."""
        directory = self.round_dir(trial, variant, round_)
        self._write(os.path.join(directory, "masks.npz"), _npz_bytes(masks))
        self._write(os.path.join(directory, "curve.csv"), _csv_bytes(curve, CURVE_COLUMNS))
        self._write(os.path.join(directory, "start_weights.npz"), _npz_bytes(start_weights))
        self._write(os.path.join(directory, "weights.npz"), _npz_bytes(weights))
        self._write(os.path.join(directory, "result.json"), json.dumps(row, sort_keys=True).encode())
        self.write_results_csv()

    def load_round(self, trial, variant, round_, what: str) -> dict:
        """what: "masks", "weights" or "start_weights". DamagedFileError if the file cannot be read whole."""
        return load_npz(os.path.join(self.round_dir(trial, variant, round_), f"{what}.npz"),
                        self.round_advice(trial, variant, round_))

    def read_result(self, trial, variant, round_) -> dict:
        """A finished round's row (result.json); DamagedFileError unless it is that round's row."""
        path = os.path.join(self.round_dir(trial, variant, round_), "result.json")
        try:
            with open(path) as f:
                row = json.load(f)
            if not isinstance(row, dict) or not {"trial", "variant", "round"} <= set(row):
                raise ValueError("not a round's row: no trial, variant and round")
            if (row["trial"], row["variant"], row["round"]) != (trial, variant, round_):
                raise ValueError(f"it holds trial {row['trial']} {row['variant']} round {row['round']}")
            return row
        except (OSError, ValueError) as e:
            raise DamagedFileError(path, describe_error(e), self.round_advice(trial, variant, round_)) from None

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
        handle = self._take(name, refusal=lambda: StoreError(
            f"trial {trial} is being run by another lth_tf process in '{self.root}' (lock {name} is held); "
            "wait for it, or run the other trials with --trial_index"))
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
        self._write(self.backup_path(trial, variant, round_, copy), buffer.getvalue())

    def load_backup(self, trial, variant, round_, copy=None) -> dict | None:
        """The round's (or instability copy's) backup, or None. A damaged one is discarded (reported to
        on_warning): the round or copy restarts; the next backup replaces the file."""
        path = self.backup_path(trial, variant, round_, copy)
        if not os.path.exists(path):
            return None
        try:
            arrays = load_npz(path)
            problem = self._backup_mismatch(trial, arrays)
            if problem:
                raise DamagedFileError(path, problem, "")
            return arrays
        except DamagedFileError as e:
            if self.on_warning is not None:
                what = f"trial {trial} {variant} round {round_}" + (f" copy {copy}" if copy is not None else "")
                self.on_warning(f"'{path}' is damaged ({e.reason}); discarded it: {what} restarts from its beginning")
            return None

    def _backup_mismatch(self, trial, arrays: dict) -> str | None:
        """How a backup's network (and late-rewind weights) differ in names, shapes or dtypes from the trial's
        stored initial weights, the model's own; None if they fit (or there is nothing to compare with)."""
        try:
            expected = npz_layout(os.path.join(self.trial_dir(trial), "initial_weights.npz"))
        except NPZ_ERRORS:
            return None  # no initial weights (yet): the start-up check and the trial find out about them
        for prefix in ("net/", "rewind/"):
            part = {k[len(prefix):]: (v.shape, v.dtype) for k, v in arrays.items() if k.startswith(prefix)}
            if part:  # a backup without a network is refused by the trainer (training.backup._Backup.unpack)
                problem = layout_mismatch(expected, part)
                if problem:
                    return f"{prefix}: {problem}"
        return None

    def backup_iteration(self, trial, variant, round_, copy=None) -> int | None:
        """The iteration the round's (or copy's) backup resumes from (None: no readable backup). Reads only
        its header."""
        try:
            with np.load(self.backup_path(trial, variant, round_, copy)) as data:
                meta = json.loads(str(data["meta"]))
            return int(meta["iteration"])
        except (*NPZ_ERRORS, TypeError):
            return None

    def clear_backup(self, trial, variant, round_, copy=None) -> None:
        """Removes the backup once the round is stored (or is found finished)."""
        directory = os.path.dirname(self.backup_path(trial, variant, round_, copy))
        refuse_links(self.root, directory)  # rmtree must never delete what a link inside points to
        if os.path.isdir(directory):
            shutil.rmtree(directory, ignore_errors=True)

    # ---- the table -----------------------------------------------------------------------------------
    def finished(self, trials=None) -> list:
        """(trial, variant, round) of every round with a result.json (of `trials`, default all)."""
        return [key for key in self._units("result.json") if trials is None or key[0] in trials]

    def _units(self, name: str) -> list:
        """(trial, variant, round) of every trial_<t>/<variant>/round_<r>/`name`, sorted."""
        out = []
        for path in glob.glob(os.path.join(self.root, "trial_*", "*", "round_*", name)):
            round_dir = path[:-len(name) - 1]
            variant_dir = os.path.dirname(round_dir)
            try:
                key = (int(os.path.basename(os.path.dirname(variant_dir))[6:]), os.path.basename(variant_dir),
                       int(os.path.basename(round_dir)[6:]))
            except ValueError:
                continue  # not a name lth_tf writes
            out.append(key)
        return sorted(out)

    def results(self) -> list:
        """Every finished round's row, sorted by (trial, variant, round); DamagedFileError for a damaged one."""
        return [self.read_result(*key) for key in self.finished()]

    def check_results_csv(self) -> str | None:
        """Raises StoreError if results.csv is not a table lth_tf wrote (edited by hand); returns its hash.

        The hashes of the last two tables written are kept beside it (.results.csv.sha256): the sidecar is
        written before the table, so a crash between the two leaves a table the sidecar still names.
        """
        path = os.path.join(self.root, "results.csv")
        try:
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            return None
        try:
            with open(os.path.join(self.root, ".results.csv.sha256")) as f:
                known = json.load(f)
        except (OSError, ValueError):
            return digest  # no record (a directory from before lth_tf kept one): nothing to compare with
        if isinstance(known, list) and digest not in known:
            raise DamagedFileError(path, "", "", message=(
                f"'{path}' was changed after lth_tf wrote it (edited by hand?); lth_tf rebuilds it from the "
                "rounds' result.json files: move it away (e.g. to results.edited.csv) and run again"))
        return digest

    def write_results_csv(self) -> None:
        # Several processes (one per trial) may regenerate the table; serialise them.
        with open(os.path.join(self.root, ".results.lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                rows = self.results()
                extra = sorted({k for r in rows for k in r} - set(COLUMNS))
                data = _csv_bytes(rows, COLUMNS + extra)
                current, new = self.check_results_csv(), hashlib.sha256(data).hexdigest()
                if current != new:
                    self._write(os.path.join(self.root, ".results.csv.sha256"),
                                 json.dumps([new] + ([current] if current else [])).encode())
                    self._write(os.path.join(self.root, "results.csv"), data)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
