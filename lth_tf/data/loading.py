"""Loading a dataset by name: the registry's loader, then the seeded validation split.

    from lth_tf.data.loading import load
    ds = load("fashion_mnist")            # IDX files, else tensorflow-datasets
    print(ds.source, ds.x_train.shape, ds.x_val.shape, ds.x_test.shape)

Features are float32 (images HxWxC scaled to [0, 1]; mnist1d standardised), labels int32.
The validation set is held out of the training split (seeded); the test set is the dataset's own.
``DATASETS`` (lth_tf.data.datasets) gives shapes and sizes without loading anything. Missing data raises
``DataError`` with a one-line message saying what was tried and how to get the data.
"""
from lth_tf import _env  # noqa: F401

import numpy as np

from lth_tf.data import idx, mnist1d, tfds
from lth_tf.data.datasets import DATASETS, MNIST1D_SAMPLES, MNIST1D_SEED, DataError, DatasetSpec
from lth_tf.data.pipelines import Dataset


def load(name: str, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Loads ``name`` (a key of DATASETS); ``seed`` picks which training examples form the validation set."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    (x_tr, y_tr, x_te, y_te), source = LOADERS[spec.loader](name, spec, data_dir)
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


# ---- the loaders: (name, spec, data_dir) -> ((x_train, y_train, x_test, y_test), source) ----------------------


def _from_mnist1d(name: str, spec: DatasetSpec, data_dir: str | None):
    """MNIST-1D, generated here (never downloaded), already standardised."""
    return mnist1d._mnist1d(), f"mnist1d generated locally (num_samples={MNIST1D_SAMPLES}, seed={MNIST1D_SEED})"


def _from_idx(name: str, spec: DatasetSpec, data_dir: str | None):
    """IDX files where there are some (--data_dir, Fashion-MNIST's Debian package), else tensorflow-datasets;
    images scaled to [0, 1]."""
    dirs = idx._idx_dirs(name, data_dir)
    found = next((d for d in dirs if idx._idx_files(d)), None)
    if found is not None:
        (x_tr, y_tr, x_te, y_te), source = idx._load_idx(found), f"IDX files in {found}"
    else:
        (x_tr, y_tr, x_te, y_te), source = tfds._load_tfds(name, data_dir, tried=dirs)
    x_tr, x_te = (_scale_images(x, spec.input_shape) for x in (x_tr, x_te))
    return (x_tr, y_tr, x_te, y_te), source


def _from_tfds(name: str, spec: DatasetSpec, data_dir: str | None):
    """tensorflow-datasets; images scaled to [0, 1]."""
    (x_tr, y_tr, x_te, y_te), source = tfds._load_tfds(name, data_dir, tried=[])
    x_tr, x_te = (_scale_images(x, spec.input_shape) for x in (x_tr, x_te))
    return (x_tr, y_tr, x_te, y_te), source


# DatasetSpec.loader -> loader.
LOADERS = {"mnist1d": _from_mnist1d, "idx": _from_idx, "tfds": _from_tfds}
