"""lth_tf.data.idx: IDX parsing, IDX files from --data_dir, Fashion-MNIST from its Debian package."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from lth_tf.data import datasets, idx, loading


def _write_idx(path: Path, array: np.ndarray):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def test_idx_round_trip_and_load_from_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    x_train[:, 0, 0] = np.arange(40)  # first pixel identifies the example
    y_train = (np.arange(40) % 10).astype(np.uint8)
    x_test = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    y_test = np.arange(10, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x_train)  # gzipped and raw files both work
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y_train)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", x_test)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_test)
    assert np.array_equal(idx.read_idx(tmp_path / "train-images-idx3-ubyte.gz"), x_train)
    assert np.array_equal(idx.read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz"), y_test)
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    _write_idx(tmp_path / "ints", big)
    assert np.array_equal(idx.read_idx(tmp_path / "ints"), big)

    ds = loading.load("mnist", data_dir=str(tmp_path), seed=3)
    assert ds.source == f"IDX files in {tmp_path}"
    assert (ds.name, ds.input_shape, ds.num_classes) == ("mnist", (28, 28, 1), 10)
    assert ds.x_train.shape == (36, 28, 28, 1) and ds.x_val.shape == (4, 28, 28, 1)
    assert ds.x_test.shape == (10, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_allclose(ds.x_test[..., 0], x_test / 255.0, rtol=1e-6)
    assert np.array_equal(ds.y_test, y_test)
    train_ids = np.rint(ds.x_train[:, 0, 0, 0] * 255).astype(int)
    val_ids = np.rint(ds.x_val[:, 0, 0, 0] * 255).astype(int)
    assert sorted(train_ids.tolist() + val_ids.tolist()) == list(range(40))  # disjoint and complete
    assert np.array_equal(ds.y_val, y_train[val_ids]) and np.array_equal(ds.y_train, y_train[train_ids])
    _, expected_val = loading.split_indices(40, 5000, seed=3)
    assert np.array_equal(val_ids, expected_val)


def test_corrupt_idx_is_a_data_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + np.array([5], ">u4").tobytes() + b"abc")
    with pytest.raises(datasets.DataError, match="truncated or corrupt"):
        idx.read_idx(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04")
    with pytest.raises(datasets.DataError, match="not an IDX file"):
        idx.read_idx(tmp_path / "junk")


@pytest.mark.skipif(not Path(idx.FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_idx_files():
    ds = loading.load("fashion_mnist")
    assert ds.source == f"IDX files in {idx.FASHION_MNIST_DIR}"
    assert ds.x_train.shape == (55000, 28, 28, 1) and ds.x_val.shape == (5000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.y_train.shape == (55000,) and ds.y_val.shape == (5000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_test).tolist() == [1000] * 10  # the real test split is balanced
    assert np.bincount(np.concatenate([ds.y_train, ds.y_val])).tolist() == [6000] * 10
