"""Loading a dataset by name: the registry's loader, then the seeded validation split.

    from lth_tf.data.loading import load
    ds = load("fashion_mnist")            # IDX files, else tensorflow-datasets
    print(ds.source, ds.x_train.shape, ds.x_val.shape, ds.x_test.shape)

Features are float32 (images HxWxC scaled to [0, 1]; mnist1d standardised), labels int32.
The validation set is held out of the training split (seeded); the test set is the dataset's own.
``DATASETS`` (lth_tf.data.datasets) gives shapes and sizes without loading anything. Missing data raises
``DataError`` with a one-line message saying what was tried and how to get the data.

Any other tensorflow-datasets image-classification name prepared in ``data_dir`` loads too (lth_tf.data.tfds_info):
its images are standardised per channel, x' = (x - mean) / std, with the mean and standard deviation of the
training examples after the validation hold-out. So does ``package.module:function`` returning arrays
(lth_tf.data.arrays: used as given).
"""
from lth_tf import _env  # noqa: F401

import numpy as np

from lth_tf.data import idx, mnist1d, tfds
from lth_tf.data import arrays
from lth_tf.data.arrays import split_indices  # noqa: F401  (public here too: the split of every dataset)
from lth_tf.data.datasets import DATASETS, MNIST1D_SAMPLES, MNIST1D_SEED, DataError, DatasetSpec
from lth_tf.data.lookup import spec_for
from lth_tf.data.pipelines import Dataset


def load(name: str, data_dir: str | None = None, seed: int = 0) -> Dataset:
    """Loads ``name`` (a key of DATASETS, a prepared tfds image-classification name, or package.module:function);
    ``seed`` picks which training examples form the validation set."""
    if name not in DATASETS and ":" not in name and arrays.given(name) is None and not _tfds_name(name):
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    spec = spec_for(name, data_dir)
    if spec.loader == "arrays":
        given = arrays.given(name)
        if given is not None:
            return arrays.dataset_of(name, given, spec, f"arrays given as '{name}'", seed)
        return arrays.dataset_of(name, arrays.call_function(name), spec, f"the arrays of {name}", seed)
    (x_tr, y_tr, x_te, y_te), source = LOADERS[spec.loader](name, spec, data_dir)
    x_tr, x_te = x_tr.astype(np.float32, copy=False), x_te.astype(np.float32, copy=False)
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)
    if x_tr.shape[1:] != spec.input_shape or x_te.shape[1:] != spec.input_shape \
            or len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise DataError(f"dataset {name!r} from {source} is malformed: shapes {x_tr.shape}, {y_tr.shape}, "
                        f"{x_te.shape}, {y_te.shape}; expected N x {spec.input_shape} features with N labels")
    train_idx, val_idx = split_indices(len(x_tr), spec.validation_size, seed)
    if spec.loader == "tfds_any":  # the training split's statistics, validation excluded
        x_tr, x_te = standardise(x_tr, x_te, train_idx)
    return Dataset(name, spec.input_shape, spec.num_classes, source,
                   x_tr[train_idx], y_tr[train_idx], x_tr[val_idx], y_tr[val_idx], x_te, y_te)


def _scale_images(x: np.ndarray, shape: tuple) -> np.ndarray:
    """uint8 N x H x W [x C] -> float32 N x H x W x C in [0, 1]."""
    if x.shape[1:] == shape[:-1]:
        x = x[..., None]
    return x.astype(np.float32) / np.float32(255)


def _tfds_name(name: str) -> bool:
    """Whether tensorflow-datasets registers `name` (cheap: no TensorFlow, no download)."""
    try:
        import tensorflow_datasets as tfds
        return name in tfds.list_builders()
    except Exception:
        return False


def standardise(x_tr: np.ndarray, x_te: np.ndarray, train_idx: np.ndarray) -> tuple:
    """Per-channel (last axis) x' = (x - mean) / std, mean and std over the examples ``x_tr[train_idx]``."""
    axes = tuple(range(x_tr.ndim - 1))
    chunks = [x_tr[i] for i in np.array_split(train_idx, max(1, len(train_idx) // 5000))]  # no copy of it all
    count = sum(int(np.prod(c.shape[:-1])) for c in chunks)
    mean = sum(c.sum(axis=axes, dtype=np.float64) for c in chunks) / count
    std = np.sqrt(sum(np.square(c - mean).sum(axis=axes) for c in chunks) / count)
    std = np.where(std > 0, std, 1.0)  # a constant channel stays 0
    return tuple(((x - mean) / std).astype(np.float32) for x in (x_tr, x_te))


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
LOADERS = {"mnist1d": _from_mnist1d, "idx": _from_idx, "tfds": _from_tfds, "tfds_any": _from_tfds}
