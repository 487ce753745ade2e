"""Tests for lth_tf.data: splits, IDX parsing, tfds (mocked), MNIST-1D, pipelines, error messages."""
import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from lth_tf import data


def _hashes(x):
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in x}


def _take(pipeline, n):
    return [(x.numpy(), y.numpy()) for x, y in pipeline.take(n)]


def _write_idx(path: Path, array: np.ndarray):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def _tiny_dataset(n=10, shape=(1,)):
    x = np.arange(n, dtype=np.float32).reshape((n,) + (1,) * len(shape)) * np.ones(shape, np.float32)
    y = np.arange(n, dtype=np.int32)
    return data.Dataset("tiny", shape, n, "test arrays", x, y, x[:2], y[:2], x[:3], y[:3])


def test_static_specs():
    assert set(data.DATASETS) == {"mnist", "fashion_mnist", "cifar10", "mnist1d"}
    assert data.DATASETS["mnist"] == data.DatasetSpec((28, 28, 1), 10, 5000, 60_000)
    assert data.DATASETS["fashion_mnist"] == data.DatasetSpec((28, 28, 1), 10, 5000, 60_000)
    assert data.DATASETS["cifar10"] == data.DatasetSpec((32, 32, 3), 10, 5000, 50_000)
    assert data.DATASETS["mnist1d"] == data.DatasetSpec((40,), 10, 800, 8000)


def test_unknown_name_lists_known_datasets():
    with pytest.raises(data.DataError) as e:
        data.load("imagenet")
    assert str(e.value) == ("unknown dataset 'imagenet'; known datasets: cifar10, fashion_mnist, mnist, mnist1d")


def test_split_indices_disjoint_seeded():
    train, val = data.split_indices(60000, 5000, seed=0)
    assert len(train) == 55000 and len(val) == 5000
    assert not set(train) & set(val) and set(train) | set(val) == set(range(60000))
    train1, val1 = data.split_indices(60000, 5000, seed=0)
    _, val2 = data.split_indices(60000, 5000, seed=1)
    assert np.array_equal(val, val1) and np.array_equal(train, train1)
    assert not np.array_equal(val, val2)
    # tiny training sets hold out 10% instead of more than half of the data
    assert [len(a) for a in data.split_indices(40, 5000, seed=0)] == [36, 4]


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
    assert np.array_equal(data.read_idx(tmp_path / "train-images-idx3-ubyte.gz"), x_train)
    assert np.array_equal(data.read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz"), y_test)
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    _write_idx(tmp_path / "ints", big)
    assert np.array_equal(data.read_idx(tmp_path / "ints"), big)

    ds = data.load("mnist", data_dir=str(tmp_path), seed=3)
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
    _, expected_val = data.split_indices(40, 5000, seed=3)
    assert np.array_equal(val_ids, expected_val)


def test_corrupt_idx_is_a_data_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + np.array([5], ">u4").tobytes() + b"abc")
    with pytest.raises(data.DataError, match="truncated or corrupt"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(tmp_path / "junk")


@pytest.mark.skipif(not Path(data.FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_idx_files():
    ds = data.load("fashion_mnist")
    assert ds.source == f"IDX files in {data.FASHION_MNIST_DIR}"
    assert ds.x_train.shape == (55000, 28, 28, 1) and ds.x_val.shape == (5000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.y_train.shape == (55000,) and ds.y_val.shape == (5000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_test).tolist() == [1000] * 10  # the real test split is balanced
    assert np.bincount(np.concatenate([ds.y_train, ds.y_val])).tolist() == [6000] * 10


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_path_with_mock_data(name, shape, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=50):
        ds = data.load(name, data_dir=str(tmp_path), seed=0)
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
    monkeypatch.setattr(data, "_online", lambda: False)  # offline, even on a networked machine
    start = time.monotonic()
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("dataset 'cifar10' is not available: tensorflow-datasets could not load it (")
    assert "no download tried" in msg
    assert msg.endswith("run once with network access or pass --data_dir with a prepared tfds directory")

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(data.DataError) as e:
        data.load("fashion_mnist", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "no IDX files in " + str(tmp_path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data_dir" in msg


def test_mnist1d_generated_locally_and_cached(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d must not touch the network")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    state = np.random.get_state()[1].copy()
    ds = data.load("mnist1d", seed=0)
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG left as it was
    assert ds.source == "mnist1d generated locally (num_samples=10000, seed=42)"
    assert ds.input_shape == (40,) and ds.num_classes == 10
    assert ds.x_train.shape == (7200, 40) and ds.x_val.shape == (800, 40) and ds.x_test.shape == (2000, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert set(ds.y_train.tolist()) == set(range(10))
    assert not _hashes(ds.x_train) & _hashes(ds.x_val)

    start = time.monotonic()
    again = data.load("mnist1d", seed=0)
    assert time.monotonic() - start < 0.5  # generated once per process
    assert np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_val, ds.y_val)
    other = data.load("mnist1d", seed=1)
    assert not np.array_equal(other.y_val, ds.y_val)
    assert _hashes(other.x_train) | _hashes(other.x_val) == _hashes(ds.x_train) | _hashes(ds.x_val)
    with pytest.raises(ValueError, match="augment needs"):
        ds.train_pipeline(32, seed=0, augment=True)


def test_train_pipeline_deterministic_per_seed_and_memoised():
    a, b = _tiny_dataset(), _tiny_dataset()
    pipe = a.train_pipeline(batch_size=4, seed=7)
    assert a.train_pipeline(batch_size=4, seed=7) is pipe
    assert a.train_pipeline(batch_size=4, seed=8) is not pipe
    first = _take(pipe, 6)  # 24 examples: crosses epoch boundaries (infinite)
    assert all(x.shape == (4, 1) and x.dtype == np.float32 and y.dtype == np.int32 for x, y in first)
    ys = np.concatenate([y for _, y in first])
    assert sorted(ys[:10].tolist()) == list(range(10)) and sorted(ys[10:20].tolist()) == list(range(10))
    assert not np.array_equal(ys[:10], ys[10:20])  # reshuffled each epoch
    same = _take(b.train_pipeline(batch_size=4, seed=7), 6)
    assert all(np.array_equal(y1, y2) and np.array_equal(x1, x2) for (x1, y1), (x2, y2) in zip(first, same))
    other = np.concatenate([y for _, y in _take(b.train_pipeline(batch_size=4, seed=8), 6)])
    assert not np.array_equal(ys, other)
    assert a.steps_per_epoch(4) == 3 and a.steps_per_epoch(10) == 1 and a.steps_per_epoch(3) == 4


def test_eval_pipeline_finite_ordered_memoised():
    ds = _tiny_dataset()
    batches = _take(ds.eval_pipeline("train", batch_size=4), 100)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(10))
    assert np.concatenate([y for _, y in ds.eval_pipeline("validation")]).tolist() == [0, 1]
    assert np.concatenate([y for _, y in ds.eval_pipeline("test")]).tolist() == [0, 1, 2]
    assert ds.eval_pipeline("test") is ds.eval_pipeline("test", batch_size=1000)
    with pytest.raises(ValueError, match="split must be one of"):
        ds.eval_pipeline("val")


def test_augment_flips_and_translates_deterministically():
    n, shape = 4, (32, 32, 3)
    x = np.random.default_rng(0).uniform(0.1, 1.0, (n,) + shape).astype(np.float32)
    y = np.arange(n, dtype=np.int32)
    ds = data.Dataset("tiny", shape, n, "test arrays", x, y, x, y, x, y)
    # every flip x shift in [-4, 4]^2 of every image, zero-filled
    padded = np.pad(np.stack([x, x[:, :, ::-1]], 1), [(0, 0), (0, 0), (4, 4), (4, 4), (0, 0)])
    candidates = {(i, f, dy, dx): padded[i, f, 4 + dy:36 + dy, 4 + dx:36 + dx]
                  for i in range(n) for f in (0, 1) for dy in range(-4, 5) for dx in range(-4, 5)}
    batches = _take(ds.train_pipeline(batch_size=8, seed=1, augment=True), 8)
    seen = set()
    for xb, yb in batches:
        assert xb.shape == (8,) + shape and xb.dtype == np.float32 and yb.dtype == np.int32
        for image, label in zip(xb, yb):
            match = [k for k, c in candidates.items() if k[0] == label and np.array_equal(c, image)]
            assert match, "augmented image is not a flip/shift of its source"
            seen.add(match[0][1:])
    assert {f for f, _, _ in seen} == {0, 1} and len(seen) > 20  # both flips, many offsets
    again = _take(_tiny_like(ds).train_pipeline(batch_size=8, seed=1, augment=True), 8)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again))
    other = _take(_tiny_like(ds).train_pipeline(batch_size=8, seed=2, augment=True), 8)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other))


def _tiny_like(ds):
    return data.Dataset(ds.name, ds.input_shape, ds.num_classes, ds.source, ds.x_train, ds.y_train,
                        ds.x_val, ds.y_val, ds.x_test, ds.y_test)
