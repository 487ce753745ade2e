"""Datasets for lottery-ticket experiments: in-memory arrays plus memoised tf.data pipelines.

    from lth_tf import data
    ds = data.load("fashion_mnist")            # IDX files, else tensorflow-datasets
    print(ds.source, ds.x_train.shape, ds.x_val.shape, ds.x_test.shape)
    train = ds.train_pipeline(batch_size=60, seed=0)   # infinite, shuffled, deterministic per seed
    model.fit(train, steps_per_epoch=ds.steps_per_epoch(60), epochs=1,
              validation_data=ds.eval_pipeline("validation"))

Features are float32 (images HxWxC scaled to [0, 1]; mnist1d standardised), labels int32.
The validation set is held out of the training split (seeded); the test set is the dataset's own.
``DATASETS`` gives shapes and sizes without loading anything. Missing data raises ``DataError``
with a one-line message saying what was tried and how to get the data.
"""
from lth_tf import _env  # noqa: F401

import functools
import gzip
import math
import os
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf


class DataError(Exception):
    """A dataset that cannot be had; str(e) is one clear line: what was tried and how to get it."""


from lth_tf.specs import DATASETS, MNIST1D_SAMPLES, MNIST1D_SEED, DatasetSpec  # noqa: E402,F401  (re-exported)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
_TFDS_HOST = "storage.googleapis.com"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Loaded splits plus tf.data pipelines built once per (arguments) and reused."""
    name: str
    input_shape: tuple
    num_classes: int
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    _pipelines: dict = field(default_factory=dict, init=False, repr=False)

    def train_pipeline(self, batch_size: int, seed: int, augment: bool = False) -> tf.data.Dataset:
        """Infinite shuffled (reshuffled every epoch) batches of (x, y), deterministic for a seed.

        Memoised: the same object comes back for the same arguments. A new iterator over it (e.g. a
        later ``fit`` call) continues the seeded reshuffle sequence rather than replaying the first order.

        ``augment`` (images only): random horizontal flip and translation by up to 4 px
        (zero-pad 4, random crop), from stateless ops seeded by (seed, element index).
        """
        key = ("train", batch_size, seed, bool(augment))
        if key not in self._pipelines:
            ds = tf.data.Dataset.from_tensor_slices((self.x_train, self.y_train)).cache()
            ds = ds.shuffle(len(self.x_train), seed=seed, reshuffle_each_iteration=True).repeat()
            if augment:
                if len(self.input_shape) != 3:
                    raise ValueError(f"augment needs HxWxC images; {self.name} has shape {self.input_shape}")
                ds = ds.enumerate().map(functools.partial(_augment, seed=seed),
                                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            self._pipelines[key] = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return self._pipelines[key]

    def eval_pipeline(self, split: str, batch_size: int = 1000) -> tf.data.Dataset:
        """One finite, cached, batched pass over split "validation", "test" or "train"."""
        arrays = {"validation": (self.x_val, self.y_val), "test": (self.x_test, self.y_test),
                  "train": (self.x_train, self.y_train)}
        if split not in arrays:
            raise ValueError(f"split must be one of {sorted(arrays)}, not {split!r}")
        key = ("eval", split, batch_size)
        if key not in self._pipelines:
            ds = tf.data.Dataset.from_tensor_slices(arrays[split]).batch(batch_size).cache()
            self._pipelines[key] = ds.prefetch(tf.data.AUTOTUNE)
        return self._pipelines[key]

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.x_train) / batch_size)


def _augment(index, example, seed):
    image, label = example
    shape = image.shape
    flip_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index])
    crop_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index + 1])
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    return tf.image.stateless_random_crop(image, shape, seed=crop_seed), label


def load(name: str, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Loads ``name`` (a key of DATASETS); ``seed`` picks which training examples form the validation set."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    if name == "mnist1d":
        (x_tr, y_tr, x_te, y_te), source = _mnist1d(), (
            f"mnist1d generated locally (num_samples={MNIST1D_SAMPLES}, seed={MNIST1D_SEED})")
    else:
        dirs = _idx_dirs(name, data_dir)
        found = next((d for d in dirs if _idx_files(d)), None)
        if found is not None:
            (x_tr, y_tr, x_te, y_te), source = _load_idx(found), f"IDX files in {found}"
        else:
            (x_tr, y_tr, x_te, y_te), source = _load_tfds(name, data_dir, tried=dirs)
        x_tr, x_te = (_scale_images(x, spec.input_shape) for x in (x_tr, x_te))
    x_tr, x_te = x_tr.astype(np.float32, copy=False), x_te.astype(np.float32, copy=False)
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)
    if x_tr.shape[1:] != spec.input_shape or x_te.shape[1:] != spec.input_shape \
            or len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise DataError(f"dataset {name!r} from {source} is malformed: shapes {x_tr.shape}, {y_tr.shape}, "
                        f"{x_te.shape}, {y_te.shape}; expected N x {spec.input_shape} features with N labels")
    train_idx, val_idx = split_indices(len(x_tr), spec.validation_size, seed)
    return Dataset(name, spec.input_shape, spec.num_classes, source,
                   x_tr[train_idx], y_tr[train_idx], x_tr[val_idx], y_tr[val_idx], x_te, y_te)


def _scale_images(x: np.ndarray, shape: tuple) -> np.ndarray:
    """uint8 N x H x W [x C] -> float32 N x H x W x C in [0, 1]."""
    if x.shape[1:] == shape[:-1]:
        x = x[..., None]
    return x.astype(np.float32) / np.float32(255)


def split_indices(n: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices: the last ``validation_size`` of a seeded permutation of range(n).

    Training sets smaller than twice ``validation_size`` (tiny test data) hold out 10% instead.
    """
    if n < 2 * validation_size:
        validation_size = max(1, n // 10)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:-validation_size]), np.sort(perm[-validation_size:])


# ---- IDX files (MNIST / Fashion-MNIST format) -------------------------------------------------

_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Where to look for IDX files of ``name``, in order."""
    if name not in ("mnist", "fashion_mnist"):
        return []
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


# ---- tensorflow-datasets ------------------------------------------------------------------------

def _online(host: str = _TFDS_HOST, timeout: float = 3.0) -> bool:
    """Whether a download could work: a proxy is configured or ``host`` accepts a connection."""
    if any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text.split(". ")[0]
    return f"{type(e).__name__}: {text}"[:200]


def _load_tfds(name: str, data_dir: str | None, tried: list[Path]):
    hint = "run once with network access or pass --data_dir with a prepared tfds directory"
    prefix = f"dataset {name!r} is not available: "
    if tried:
        prefix += f"no IDX files in {', '.join(str(d) for d in tried)}, and "
    if name == "fashion_mnist":
        hint = "apt-get install dataset-fashion-mnist, " + hint.replace("directory", "directory or IDX files")
    try:
        import tensorflow_datasets as tfds

        def fetch(download):
            return tfds.load(name, split=["train", "test"], as_supervised=True, data_dir=data_dir, download=download)
        try:
            splits = fetch(download=False)
        except Exception as e:  # not prepared in data_dir: download only if that can work
            if not _online():
                raise DataError(f"{prefix}tensorflow-datasets could not load it ({_short(e)}; "
                                f"no download tried: {_TFDS_HOST} is unreachable); {hint}") from None
            splits = fetch(download=True)
        # Batched reads rather than batch_size=-1, which asks for one giant batch when split sizes are unknown.
        arrays = []
        for split in splits:
            xs, ys = zip(*tfds.as_numpy(split.batch(10_000)))
            arrays += [np.concatenate(xs), np.concatenate(ys)]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{prefix}tensorflow-datasets could not load it ({_short(e)}); {hint}") from None
    return tuple(arrays), f"tensorflow-datasets {name!r} (data_dir={data_dir or 'default'})"


# ---- MNIST-1D --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _mnist1d():
    """Generates MNIST-1D locally (never downloads), restoring the global RNG state it reseeds."""
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.num_samples, args.seed = MNIST1D_SAMPLES, MNIST1D_SEED
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (d["x"], d["y"], d["x_test"], d["y_test"])
    for a in arrays:
        a.flags.writeable = False
    return arrays
