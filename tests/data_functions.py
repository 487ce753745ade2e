"""Dataset functions for --dataset=data_functions:NAME (tests/test_user_data.py): a user's own arrays."""
import numpy as np


def blobs():
    """Three Gaussian blobs in 8 dimensions: 600 training and 150 test examples, labels 0..2."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 3

    def draw(n):
        y = rng.integers(0, 3, size=n)
        return (centres[y] + rng.normal(size=(n, 8))).astype(np.float32), y
    x_train, y_train = draw(600)
    x_test, y_test = draw(150)
    return x_train, y_train, x_test, y_test


def bad_lengths():
    x_train, y_train, x_test, y_test = blobs()
    return x_train, y_train[:-1], x_test, y_test


def bad_shapes():
    x_train, y_train, x_test, y_test = blobs()
    return x_train, y_train, x_test[:, :7], y_test


def negative_labels():
    x_train, y_train, x_test, y_test = blobs()
    return x_train, y_train, x_test, y_test - 1


def not_arrays():
    return "not", "four arrays"


def raises():
    raise RuntimeError("the data server is down")
