"""lth_tf.experiment.interpolation: the path between two networks and its error barrier, against hand computations."""
import numpy as np
import pytest

from lth_tf.experiment import interpolation
from lth_tf.pruning import rewind

import tf_keras as keras


def mlp(seed, bn=False):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.BatchNormalization(name="bn")(inputs) if bn else inputs
    x = keras.layers.Dense(8, activation="relu", name="h")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="o")(x))


def numpy_error(w, x, y, masks=None):
    masks = masks or {}
    k_h = w["h/kernel"] * masks.get("h", 1)
    k_o = w["o/kernel"] * masks.get("o", 1)
    hidden = np.maximum(x @ k_h + w["h/bias"], 0)
    return float(np.mean(np.argmax(hidden @ k_o + w["o/bias"], axis=1) != y))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return mlp(0), rewind.snapshot(mlp(1)), rewind.snapshot(mlp(2)), x, y


def test_barrier_is_max_minus_mean_of_end_points():
    assert interpolation.barrier([0.1, 0.3, 0.2]) == pytest.approx(0.3 - 0.15)
    assert interpolation.barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)  # max at the end points: no barrier
    with pytest.raises(ValueError):
        interpolation.barrier([0.1])


def test_grid_has_evenly_spaced_points_with_both_end_points():
    grid = interpolation.alpha_grid(30)
    assert len(grid) == 30 and grid[0] == 0.0 and grid[-1] == 1.0
    assert np.allclose(np.diff(grid), 1 / 29)
    with pytest.raises(ValueError):
        interpolation.alpha_grid([0.0, 0.5])


def test_path_of_a_hand_built_pair_equals_the_formula(pair):
    model, w1, w2, x, y = pair
    path = interpolation.linear_path(model, w1, w2, {"test": (x, y)}, alphas=7)
    expected = [numpy_error({k: (1 - a) * w1[k] + a * w2[k] for k in w1}, x, y) for a in path.alphas]
    assert path.errors["test"] == pytest.approx(expected, abs=1e-12)
    assert path.instability["test"] == pytest.approx(max(expected) - (expected[0] + expected[-1]) / 2)
    assert path.bn == "interpolate"


def test_end_points_are_the_two_networks_own_errors_and_the_model_is_restored(pair):
    model, w1, w2, x, y = pair
    before = rewind.snapshot(model)
    path = interpolation.linear_path(model, w1, w2, {"test": (x, y), "train": (x[:100], y[:100])}, alphas=4)
    for split, (xs, ys) in {"test": (x, y), "train": (x[:100], y[:100])}.items():
        rewind.restore(model, w1, masks={})
        assert path.errors[split][0] == interpolation.error(model, (xs, ys))
        rewind.restore(model, w2, masks={})
        assert path.errors[split][-1] == interpolation.error(model, (xs, ys))
    rewind.restore(model, before, masks={})
    path = interpolation.linear_path(model, w1, w2, {"test": (x, y)}, alphas=3)
    after = rewind.snapshot(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_same_network_twice_has_a_flat_path_and_no_barrier(pair):
    model, w1, _, x, y = pair
    path = interpolation.linear_path(model, w1, w1, {"test": (x, y)}, alphas=5)
    assert len(set(path.errors["test"])) == 1 and path.instability["test"] == 0.0


def test_pruned_weights_are_exactly_zero_at_every_alpha(pair):
    model, w1, w2, x, y = pair
    rng = np.random.default_rng(1)
    masks = {"h": rng.random((3, 8)) < 0.5, "o": rng.random((8, 3)) < 0.5}
    for alpha in interpolation.alpha_grid(30):
        w = interpolation.interpolate(w1, w2, alpha, masks)
        for name, mask in masks.items():
            assert np.all(w[f"{name}/kernel"][~mask] == 0.0)
            assert np.allclose(w[f"{name}/kernel"][mask], ((1 - alpha) * w1[f"{name}/kernel"]
                                                          + alpha * w2[f"{name}/kernel"])[mask], atol=1e-6)
    path = interpolation.linear_path(model, w1, w2, {"test": (x, y)}, masks=masks, alphas=5)
    expected = [numpy_error({k: (1 - a) * w1[k] + a * w2[k] for k in w1}, x, y, masks) for a in path.alphas]
    assert path.errors["test"] == pytest.approx(expected, abs=1e-12)


def test_batchnorm_moving_statistics_are_interpolated_or_recomputed():
    a, b = mlp(3, bn=True), mlp(4, bn=True)
    w1, w2 = rewind.snapshot(a), rewind.snapshot(b)
    w1["bn/moving_mean"] = np.full(3, 2.0, np.float32)
    w2["bn/moving_mean"] = np.full(3, -2.0, np.float32)
    assert np.allclose(interpolation.interpolate(w1, w2, 0.25)["bn/moving_mean"], 1.0)  # 0.75 * 2 - 0.25 * 2

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(256, 3)) * 3 + 5).astype(np.float32)
    rewind.restore(a, w1, masks={})
    used = interpolation.recompute_bn_statistics(a, (x, np.zeros(256)), batches=4, batch_size=64)
    assert used == 4
    batch_means = x.reshape(4, 64, 3).mean(axis=1)
    assert np.allclose(a.get_layer("bn").moving_mean.numpy(), batch_means.mean(axis=0), atol=1e-4)
    assert a.get_layer("bn").momentum == 0.99  # put back

    path = interpolation.linear_path(a, w1, w2, {"test": (x, np.zeros(256, np.int64))}, alphas=3,
                                     bn="recompute", bn_data=(x, np.zeros(256)), bn_batches=2)
    assert path.bn == "recompute"
    with pytest.raises(ValueError):
        interpolation.linear_path(a, w1, w2, {"test": (x, np.zeros(256))}, bn="recompute")
