"""lth_tf.data.loading: load() by name (errors, the seeded validation split)."""
import hashlib

import numpy as np
import pytest

from lth_tf.data import datasets, loading


def _hashes(x):
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in x}


def test_unknown_name_lists_known_datasets():
    with pytest.raises(datasets.DataError) as e:
        loading.load("imagenet")
    assert str(e.value) == ("unknown dataset 'imagenet'; known datasets: cifar10, fashion_mnist, mnist, mnist1d")


def test_split_indices_disjoint_seeded():
    train, val = loading.split_indices(60000, 5000, seed=0)
    assert len(train) == 55000 and len(val) == 5000
    assert not set(train) & set(val) and set(train) | set(val) == set(range(60000))
    train1, val1 = loading.split_indices(60000, 5000, seed=0)
    _, val2 = loading.split_indices(60000, 5000, seed=1)
    assert np.array_equal(val, val1) and np.array_equal(train, train1)
    assert not np.array_equal(val, val2)
    # tiny training sets hold out 10% instead of more than half of the data
    assert [len(a) for a in loading.split_indices(40, 5000, seed=0)] == [36, 4]
