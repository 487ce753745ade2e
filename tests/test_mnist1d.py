"""lth_tf.data.mnist1d: MNIST-1D generated locally, once per process, without the network."""
import time

import numpy as np
import pytest

from lth_tf.data import loading

from test_loading import _hashes


def test_mnist1d_generated_locally_and_cached(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d must not touch the network")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    state = np.random.get_state()[1].copy()
    ds = loading.load("mnist1d", seed=0)
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG left as it was
    assert ds.source == "mnist1d generated locally (num_samples=10000, seed=42)"
    assert ds.input_shape == (40,) and ds.num_classes == 10
    assert ds.x_train.shape == (7200, 40) and ds.x_val.shape == (800, 40) and ds.x_test.shape == (2000, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert set(ds.y_train.tolist()) == set(range(10))
    assert not _hashes(ds.x_train) & _hashes(ds.x_val)

    start = time.monotonic()
    again = loading.load("mnist1d", seed=0)
    assert time.monotonic() - start < 0.5  # generated once per process
    assert np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_val, ds.y_val)
    other = loading.load("mnist1d", seed=1)
    assert not np.array_equal(other.y_val, ds.y_val)
    assert _hashes(other.x_train) | _hashes(other.x_val) == _hashes(ds.x_train) | _hashes(ds.x_val)
    with pytest.raises(ValueError, match="augment needs"):
        ds.train_pipeline(32, seed=0, augment=True)
