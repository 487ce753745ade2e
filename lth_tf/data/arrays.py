"""Your own data: arrays (x_train, y_train, x_test, y_test) as an experiment's Dataset.

From Python, give the arrays to `from_arrays`; from the command line, name a function that returns them,
``--dataset=package.module:function`` (importable from the working directory or PYTHONPATH):

    from lth_tf.data.arrays import from_arrays
    data = from_arrays(x_train, y_train, x_test, y_test, seed=0)   # an lth_tf.data.pipelines.Dataset
    data.x_train.shape, data.x_val.shape                            # the validation split is held out of train
    arrays.remember("mine", x_train, y_train, x_test, y_test)       # Config(dataset="mine") means them (this process)

The arrays are used as given (features cast to float32, labels to int32): normalise them yourself. Labels are
integers in [0, classes), classes = the largest label + 1. The validation set is held out of the training arrays
as for the named datasets (`split_indices`, seeded): `validation_size` examples, by default
10% of the training set, at most 5,000. Disagreeing lengths or shapes, non-integer or negative labels raise
DataError with one line. This module starts no TensorFlow until `from_arrays` builds the Dataset.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import os
import sys

import numpy as np

from lth_tf.data.datasets import DataError, DatasetSpec

MAX_VALIDATION = 5000


def default_validation_size(train_size: int) -> int:
    """10% of the training set, at most MAX_VALIDATION (MNIST and CIFAR-10 hold out 5,000)."""
    return max(1, min(MAX_VALIDATION, train_size // 10))


def check(x_train, y_train, x_test, y_test, where: str = "the arrays") -> tuple:
    """The four arrays as (float32, int32, float32, int32) numpy arrays, checked; raises DataError (one line)."""
    try:
        x_tr, x_te = (np.asarray(x) for x in (x_train, x_test))
        y_tr, y_te = (np.asarray(y) for y in (y_train, y_test))
    except Exception as e:  # ragged lists and the like
        raise DataError(f"{where}: cannot make arrays of them ({type(e).__name__})") from None
    for label, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{where}: {label} must be a numeric array of shape (N, ...), got {x.dtype} {x.shape}")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{where}: x_train's examples have shape {x_tr.shape[1:]}, x_test's {x_te.shape[1:]}")
    for label, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: y_{label} must hold one label per example of x_{label} "
                            f"({len(x)}), got shape {y.shape}")
        if len(y) == 0:
            raise DataError(f"{where}: x_{label} is empty")
        if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating)
                                                        and np.array_equal(y, np.round(y)))):
            raise DataError(f"{where}: y_{label} must hold integer class labels, got {y.dtype}")
        if y.min() < 0:
            raise DataError(f"{where}: labels must be in [0, classes), y_{label} holds {int(y.min())}")
    if len(x_tr) < 2:
        raise DataError(f"{where}: x_train needs at least 2 examples (one is held out for validation)")
    return (x_tr.astype(np.float32, copy=False), y_tr.astype(np.int32), x_te.astype(np.float32, copy=False),
            y_te.astype(np.int32))


def spec_of(arrays: tuple, validation_size: int | None = None) -> DatasetSpec:
    """The DatasetSpec of checked arrays (see `check`), with their fingerprint."""
    x_tr, y_tr, x_te, y_te = arrays
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(str((a.dtype.str, a.shape)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    classes = int(max(y_tr.max(), y_te.max())) + 1
    return DatasetSpec(tuple(int(d) for d in x_tr.shape[1:]), classes,
                       validation_size or default_validation_size(len(x_tr)), len(x_tr), loader="arrays",
                       fingerprint=digest.hexdigest()[:16])


@functools.lru_cache(maxsize=8)
def call_function(name: str) -> tuple:
    """Imports and calls ``package.module:function`` once (the result is kept); returns its checked arrays."""
    module_name, _, attr = name.partition(":")
    where = f"--dataset={name}"
    if not module_name or not attr:
        raise DataError(f"{where}: write a function as package.module:function")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # importable from the working directory, as `python -m` allows
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise DataError(f"{where}: cannot import it ({type(e).__name__}: {str(e).splitlines()[0][:150]})") from None
    try:
        result = function()
    except Exception as e:
        raise DataError(f"{where}: the function raised {type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}") from None
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise DataError(f"{where}: the function must return (x_train, y_train, x_test, y_test), "
                        f"got {type(result).__name__}")
    arrays = check(*result, where=where)
    for a in arrays:
        a.flags.writeable = False  # kept and shared: nobody edits them in place
    return arrays


# Arrays given from Python under a name (`remember`): --dataset=NAME then means them in this process.
_GIVEN: dict = {}


def remember(name: str, x_train, y_train, x_test, y_test) -> DatasetSpec:
    """Makes ``Config(dataset=name)`` and ``lth_tf.data.loading.load(name)`` mean these arrays in this process
    (for a Python API that takes arrays: the configuration then validates and identifies them like a dataset
    function's). Returns their DatasetSpec; DataError (one line) on bad arrays.

        arrays.remember("mine", x_train, y_train, x_test, y_test)
        cfg = Config(model="lenet300_100", dataset="mine").resolve()
    """
    checked = check(x_train, y_train, x_test, y_test, where=f"dataset '{name}'")
    for a in checked:
        a.flags.writeable = False
    _GIVEN[name] = checked
    return spec_of(checked)


def given(name: str) -> tuple | None:
    """The arrays remembered under `name`, or None."""
    return _GIVEN.get(name)


def function_spec(name: str) -> DatasetSpec:
    """The DatasetSpec of --dataset=package.module:function (calls it once; DataError on bad arrays), or of the
    arrays remembered under `name`."""
    return spec_of(_GIVEN[name] if name in _GIVEN else call_function(name))


def from_arrays(x_train, y_train, x_test, y_test, name: str = "arrays", seed: int = 0,
                validation_size: int | None = None, source: str = "arrays given in Python"):
    """The experiment's Dataset (lth_tf.data.pipelines.Dataset) of your arrays.

    x_*: numeric arrays (N, ...), used as given (cast to float32); y_*: integer labels in [0, classes) (cast to
    int32), classes = the largest label + 1. The validation set is `validation_size` training examples
    (default: 10%, at most 5,000) chosen by `seed` (`split_indices`), held out of training.
    Raises DataError (one line) where the arrays disagree in length or shape or the labels are not classes.
    """
    arrays = check(x_train, y_train, x_test, y_test)
    return dataset_of(name, arrays, spec_of(arrays, validation_size), source, seed)


def split_indices(n: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices: the last ``validation_size`` of a seeded permutation of range(n).

    Training sets smaller than twice ``validation_size`` (tiny test data) hold out 10% instead.
    """
    if n < 2 * validation_size:
        validation_size = max(1, n // 10)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:-validation_size]), np.sort(perm[-validation_size:])


def dataset_of(name: str, arrays: tuple, spec: DatasetSpec, source: str, seed: int):
    """Checked arrays -> Dataset, the validation split held out of x_train by `seed`."""
    from lth_tf.data.pipelines import Dataset  # starts TensorFlow
    x_tr, y_tr, x_te, y_te = arrays
    train_idx, val_idx = split_indices(len(x_tr), spec.validation_size, seed)
    return Dataset(name, spec.input_shape, spec.num_classes, source,
                   x_tr[train_idx], y_tr[train_idx], x_tr[val_idx], y_tr[val_idx], x_te, y_te)
