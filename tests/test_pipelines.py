"""lth_tf.data.pipelines: Dataset's memoised tf.data pipelines (seeded shuffles, finite evaluation passes,
augmentation)."""
import numpy as np
import pytest

from lth_tf.data import pipelines


def _take(pipeline, n):
    return [(x.numpy(), y.numpy()) for x, y in pipeline.take(n)]


def _tiny_dataset(n=10, shape=(1,)):
    x = np.arange(n, dtype=np.float32).reshape((n,) + (1,) * len(shape)) * np.ones(shape, np.float32)
    y = np.arange(n, dtype=np.int32)
    return pipelines.Dataset("tiny", shape, n, "test arrays", x, y, x[:2], y[:2], x[:3], y[:3])


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
    ds = pipelines.Dataset("tiny", shape, n, "test arrays", x, y, x, y, x, y)
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
    return pipelines.Dataset(ds.name, ds.input_shape, ds.num_classes, ds.source, ds.x_train, ds.y_train,
                        ds.x_val, ds.y_val, ds.x_test, ds.y_test)
