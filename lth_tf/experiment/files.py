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
import re
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


def npz_layout(path: str) -> dict:
    """{name: (shape, dtype)} of an .npz's arrays, from their headers only (no data is read, nothing unpickled).

    Raises ValueError for an array of Python objects (it could only be read by unpickling it) and NPZ_ERRORS
    for a file that is not an .npz of arrays."""
    layout = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                raise ValueError(f"'{member}' is not an array")
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            if dtype.hasobject:
                raise ValueError(f"'{member[:-4]}' holds Python objects, which lth_tf never stores")
            layout[member[:-4]] = (tuple(shape), dtype)
    return layout


def layout_mismatch(expected: dict, actual: dict) -> str | None:
    """How `actual` ({name: (shape, dtype)}) differs from `expected`, in a few words, or None if it does not."""
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        parts = ([f"no '{missing[0]}'" + (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else "")]
                 if missing else []) + ([f"unexpected '{extra[0]}'"] if extra else [])
        return ", ".join(parts)
    for name in sorted(expected):
        (shape, dtype), (want_shape, want_dtype) = actual[name], expected[name]
        if tuple(shape) != tuple(want_shape):
            return f"'{name}' has shape {tuple(shape)}, the model's is {tuple(want_shape)}"
        if np.dtype(dtype) != np.dtype(want_dtype):
            return f"'{name}' has dtype {np.dtype(dtype)}, the model's is {np.dtype(want_dtype)}"
    return None


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


_LINK_ADVICE = ("lth_tf never follows a link inside a results directory, where a write or a deletion could land "
                "outside it: replace it with the directory or file itself")


def refuse_links(root: str, path: str) -> None:
    """Raises StoreError if `path`, or a directory between `root` and it, is a symbolic link (`root` itself
    may be one: a results directory on another disk is fine)."""
    root, current = os.path.abspath(root), os.path.abspath(path)
    while current != root and current.startswith(root + os.sep):
        if os.path.islink(current):
            raise StoreError(f"'{current}' is a symbolic link; {_LINK_ADVICE}")
        current = os.path.dirname(current)


# What lth_tf keeps as files in a results directory's top level and trial directories, and the directories it
# makes (by their names' beginnings, at each depth): a file where a directory belongs (or the reverse) is refused
# at start-up by its name, not blamed on the output directory or met as a traceback.
_FILES = ("config.json", "results.csv", ".results.csv.sha256", ".lock", ".config.lock", ".results.lock",
          "initial_weights.npz", "rewind_weights.npz")
_DIRECTORIES = {0: re.compile(r"trial_\d+"), 2: re.compile(r"round_\d+")}


def check_layout(root: str) -> None:
    """Raises StoreError (one line, naming the path) for a symbolic link anywhere inside `root`, a file lth_tf
    writes that is a directory, or a trial or round directory that is a file. Reads names only."""
    if not os.path.isdir(root):
        return
    for directory, dirs, files in os.walk(root):  # never descends into a linked directory
        depth = 0 if directory == root else os.path.relpath(directory, root).count(os.sep) + 1
        for name in dirs + files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                raise StoreError(f"'{path}' is a symbolic link; {_LINK_ADVICE}")
            if name in dirs and depth <= 1 and name in _FILES:
                raise StoreError(f"'{path}' is a directory where lth_tf keeps a file; move it away")
            if name in files and depth in _DIRECTORIES and _DIRECTORIES[depth].fullmatch(name):
                raise StoreError(f"'{path}' is a file where lth_tf keeps a directory; move it away")


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
