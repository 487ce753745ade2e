"""Files that a crash can never leave half-written, and the errors of files damaged from outside.

`atomic_write` writes to a temporary name and renames it into place (atomic on POSIX): the path holds the old
bytes or the new. A file that cannot be read raises DamagedFileError naming it and what to do; a full disk
raises DiskFullError. No TensorFlow: the command lines check a results directory before TensorFlow starts.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import tempfile
import zipfile
import zlib

import numpy as np


class StoreError(Exception):
    """The results directory cannot be used as asked; str(e) says why in one line."""


class DamagedFileError(StoreError):
    """A stored file cannot be read (truncated, corrupt, edited); str(e) names it and says what to do."""

    def __init__(self, path: str, reason: str, advice: str, message: str | None = None):
        super().__init__(message or f"'{path}' is damaged ({reason}): {advice}")
        self.path, self.reason = path, reason


class DiskFullError(StoreError):
    """A write failed for lack of space; the file it was replacing, and every other, is unchanged."""


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# What reading a damaged .npz raises: no zip directory, bad CRC or deflate data, short reads, pickled junk.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def atomic_write(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename: `path` holds the old bytes or the new.

    Raises DiskFullError (no space, quota) or StoreError (any other OSError), one line each.
    """
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            raise DiskFullError(f"no space left on the device writing '{path}'; everything stored before is "
                                "intact: free some space and run the same command again to resume") from None
        if isinstance(e, OSError):
            raise StoreError(f"cannot write '{path}': {e.strerror or e}") from None
        raise


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_npz(path: str, advice: str = "restore it from a copy") -> dict:
    """The arrays of `path`; DamagedFileError (with `advice`) if it cannot be read completely."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}  # reading a member whole checks its CRC
    except FileNotFoundError:
        raise DamagedFileError(path, "missing", advice) from None
    except NPZ_ERRORS as e:
        raise DamagedFileError(path, describe_error(e), advice) from None


def describe_error(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) < 120 else text[:117] + "..."


# The columns of curve.csv, a round's (Store.save_round) or an instability copy's (PairStore.save_copy).
CURVE_COLUMNS = ["iteration", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]


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


def _listing(root: str) -> set:
    """Every path under `root`, absolute, root included; empty when root does not exist."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        return set()
    out = {root}
    for directory, dirs, files in os.walk(root):
        out.update(os.path.join(directory, name) for name in dirs + files)
    return out


def _missing_dirs(directory: str) -> list:
    """The directories that creating `directory` would make, deepest first (absolute paths)."""
    out, current = [], os.path.abspath(directory)
    while not os.path.exists(current):
        out.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return out
