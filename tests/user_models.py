"""Models of "your own", for the tests of --model=package.module:function (tests/test_user_model.py)."""
from lth_tf import _env  # noqa: F401
import tf_keras as keras


def small_cnn():
    """A Functional model on MNIST-1D's (40,) inputs: Conv1D + BatchNorm + Dense, unnamed layers."""
    return _cnn(filters=8)


def small_cnn_wider():
    """small_cnn with 12 filters: another architecture under the same kind of name."""
    return _cnn(filters=12)


def _cnn(filters: int):
    inputs = keras.Input(shape=(40,))
    x = keras.layers.Reshape((40, 1))(inputs)
    x = keras.layers.Conv1D(filters, 5, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def mlp():
    """Dense only (stackable): its logits pass through a linear Activation after the output layer."""
    return keras.Sequential([keras.Input(shape=(40,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10), keras.layers.Activation("linear")])


def raises():
    raise ValueError("no GPU here")


def returns_none():
    return None


def no_prunable():
    inputs = keras.Input(shape=(40,))
    return keras.Model(inputs, keras.layers.BatchNormalization()(inputs))


def five_outputs():
    inputs = keras.Input(shape=(40,))
    return keras.Model(inputs, keras.layers.Dense(5)(inputs))


def softmax_output():
    inputs = keras.Input(shape=(40,))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))


def image_input():
    inputs = keras.Input(shape=(28, 28, 1))
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


not_a_function = 3
