"""MNIST-format IDX files: mnist and fashion_mnist from --data_dir, or from Debian's dataset-fashion-mnist package.

IDX (LeCun's MNIST format): a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values. Files may be gzipped.
"""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from lth_tf.data.datasets import DataError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Where to look for IDX files of ``name``, in order."""
    subdirs = dict.fromkeys(["", name, name.replace("_", "-")])
    dirs = [Path(data_dir) / sub for sub in subdirs] if data_dir else []
    return dirs + ([Path(FASHION_MNIST_DIR)] if name == "fashion_mnist" else [])


def _idx_files(directory: Path) -> list[Path] | None:
    """The four IDX files in ``directory`` (raw or .gz), or None if any is missing."""
    paths = []
    for stem in _IDX_NAMES:
        candidates = [directory / stem, directory / (stem + ".gz")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        paths.append(path)
    return paths


def read_idx(path) -> np.ndarray:
    """Parses one IDX file (optionally gzipped) into a numpy array."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = raw[4 + 4 * ndim:]
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise DataError(f"{path} is truncated or corrupt: header says {shape}, found {len(data)} bytes of data")
    return np.frombuffer(data, dtype).reshape(shape)


def _load_idx(directory: Path):
    return tuple(read_idx(p) for p in _idx_files(directory))
