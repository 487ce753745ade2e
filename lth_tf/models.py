"""The paper's networks as plain tf_keras Functional models.

Layer names are stable and meaningful, because masks and stored weights are keyed by them:
convolutions are ``conv1, conv2, ...``, hidden dense layers ``fc1, fc2, ...``, the last dense layer ``output``.
Models end in logits (no softmax); train them with ``from_logits=True``.

    >>> from lth_tf import models
    >>> model = models.build("lenet300_100", input_shape=(28, 28, 1), num_classes=10, seed=0)
    >>> [layer.name for layer in model.layers][-3:]
    ['fc1', 'fc2', 'output']
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tf_keras as keras

from lth_tf.specs import MODELS, ModelSpec, fits  # noqa: F401  (re-exported)

layers = keras.layers


def _normal(stddev: float, seed: int):
    # Keras' TruncatedNormal redraws values beyond two standard deviations, as the paper's TF code did.
    return keras.initializers.TruncatedNormal(stddev=stddev, seed=seed)


class _Init:
    """Hands out a distinct seeded initialiser for each layer, so a model is a pure function of its seed."""

    def __init__(self, kind: str, seed: int):
        self.kind, self.seed, self.count = kind, seed, 0

    def __call__(self):
        self.count += 1
        seed = self.seed * 1000 + self.count
        if self.kind == "glorot":
            return keras.initializers.GlorotNormal(seed=seed)
        if self.kind == "he":
            return keras.initializers.HeNormal(seed=seed)
        return _normal(0.1, seed)


def _dense_head(x, sizes, num_classes, init, dropout):
    for i, size in enumerate(sizes, start=1):
        x = layers.Dense(size, activation="relu", kernel_initializer=init(), name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), name="output")(x)


def _lenet300_100(inputs, num_classes, seed, dropout):
    x = layers.Flatten(name="flatten")(inputs)
    return _dense_head(x, (300, 100), num_classes, _Init("normal", seed), dropout)


def _conv_stack(inputs, plan, kernel_size, init):
    """plan: filter counts and "pool" markers, e.g. (64, "pool", 64, "pool")."""
    x, conv, pool = inputs, 0, 0
    for step in plan:
        if step == "pool":
            pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool}")(x)
        else:
            conv += 1
            x = layers.Conv2D(step, kernel_size, padding="same", activation="relu",
                              kernel_initializer=init(), name=f"conv{conv}")(x)
    return layers.Flatten(name="flatten")(x)


def _conv2(inputs, num_classes, seed, dropout):
    # lth_tf's conv2, as its specification defines it: 5x5x64 conv, pool, 5x5x64 conv, pool, dense 384-192-10,
    # truncated normal (std 0.1) initialisation.
    init = _Init("normal", seed)
    x = _conv_stack(inputs, (64, "pool", 64, "pool"), 5, init)
    return _dense_head(x, (384, 192), num_classes, init, dropout)


def _conv2_paper(inputs, num_classes, seed, dropout):
    # The paper's Conv-2 (Frankle & Carbin 2019, Figure 2): 3x3 convolutions 64, 64, pool, then dense 256, 256,
    # 10 (4.3M weights on CIFAR10), Glorot normal initialisation.
    init = _Init("glorot", seed)
    x = _conv_stack(inputs, (64, 64, "pool"), 3, init)
    return _dense_head(x, (256, 256), num_classes, init, dropout)


def _conv4(inputs, num_classes, seed, dropout):
    init = _Init("glorot", seed)
    x = _conv_stack(inputs, (64, 64, "pool", 128, 128, "pool"), 3, init)
    return _dense_head(x, (256, 256), num_classes, init, dropout)


def _conv6(inputs, num_classes, seed, dropout):
    init = _Init("glorot", seed)
    x = _conv_stack(inputs, (64, 64, "pool", 128, 128, "pool", 256, 256, "pool"), 3, init)
    return _dense_head(x, (256, 256), num_classes, init, dropout)


def _resnet18(inputs, num_classes, seed, dropout, weight_decay=1e-4):
    """The paper's "Resnet-18" for CIFAR10: 3x3x16 conv, 3 stages x 3 residual blocks (16, 32, 64), pool, dense."""
    init = _Init("he", seed)
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    names = {"conv": 0, "bn": 0}

    def conv_bn(x, filters, strides=1, kernel=3, relu=True):
        names["conv"] += 1
        names["bn"] += 1
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_initializer=init(), kernel_regularizer=reg, name=f"conv{names['conv']}")(x)
        x = layers.BatchNormalization(name=f"bn{names['bn']}")(x)
        return layers.ReLU()(x) if relu else x

    x = conv_bn(inputs, 16)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv_bn(x, filters, strides)
            y = conv_bn(y, filters, relu=False)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = conv_bn(x, filters, strides, kernel=1, relu=False)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout1")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), kernel_regularizer=reg, name="output")(x)


def _vgg19(inputs, num_classes, seed, dropout, weight_decay=1e-4):
    """VGG-19 for CIFAR10 as in the paper's Section 4: 16 convolutions with BatchNorm, average pool, one dense."""
    init = _Init("he", seed)
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    plan = (64, 64, "pool", 128, 128, "pool", 256, 256, 256, 256, "pool",
            512, 512, 512, 512, "pool", 512, 512, 512, 512)
    x, conv, pool = inputs, 0, 0
    for step in plan:
        if step == "pool":
            pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool}")(x)
            continue
        conv += 1
        x = layers.Conv2D(step, 3, padding="same", use_bias=False, kernel_initializer=init(),
                          kernel_regularizer=reg, name=f"conv{conv}")(x)
        x = layers.BatchNormalization(name=f"bn{conv}")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout1")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), kernel_regularizer=reg, name="output")(x)


_BUILDERS = {"lenet300_100": _lenet300_100, "conv2": _conv2, "conv2_paper": _conv2_paper, "conv4": _conv4, "conv6": _conv6,
             "resnet18": _resnet18, "vgg19": _vgg19}


def build(name: str, input_shape: tuple, num_classes: int, seed: int = 0, dropout: float = 0.0) -> keras.Model:
    """Builds model `name` with weights drawn deterministically from `seed`."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(MODELS))}")
    reason = fits(name, tuple(input_shape))
    if reason:
        raise ValueError(reason)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    outputs = _BUILDERS[MODELS[name].builder or name](inputs, num_classes, seed, dropout)
    return keras.Model(inputs, outputs, name=name)
