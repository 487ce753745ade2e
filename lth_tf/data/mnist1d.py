"""MNIST-1D (Greydanus, 2020), generated locally by its own package: never downloaded, the same data in every run."""
from __future__ import annotations

import functools
import random

import numpy as np

from lth_tf.data.datasets import MNIST1D_SAMPLES, MNIST1D_SEED


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
