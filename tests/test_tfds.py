"""lth_tf.data.tfds: tensorflow-datasets (mocked), and the one-line error when a dataset cannot be had."""
import time

import numpy as np
import pytest

from lth_tf.data import datasets, idx, loading
from lth_tf.data import tfds as tfds_loader

from test_loading import _hashes


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_path_with_mock_data(name, shape, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=50):
        ds = loading.load(name, data_dir=str(tmp_path), seed=0)
    assert ds.source.startswith(f"tensorflow-datasets '{name}'")
    assert ds.input_shape == shape and ds.num_classes == 10
    assert ds.x_train.shape == (45,) + shape and ds.x_val.shape == (5,) + shape and ds.x_test.shape == (50,) + shape
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_val.dtype == ds.y_test.dtype == np.int32
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert set(np.concatenate([ds.y_train, ds.y_test]).tolist()) <= set(range(10))
    assert not _hashes(ds.x_train) & _hashes(ds.x_val)


def test_unavailable_dataset_error_is_one_line_and_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_loader, "_online", lambda: False)  # offline, even on a networked machine
    start = time.monotonic()
    with pytest.raises(datasets.DataError) as e:
        loading.load("cifar10", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("dataset 'cifar10' is not available: tensorflow-datasets could not load it (")
    assert "no download tried" in msg
    assert msg.endswith("run once with network access or pass --data_dir with a prepared tfds directory")

    monkeypatch.setattr(idx, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(datasets.DataError) as e:
        loading.load("fashion_mnist", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "no IDX files in " + str(tmp_path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data_dir" in msg
