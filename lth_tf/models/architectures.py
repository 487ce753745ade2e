"""The paper's networks as plain Keras Functional models, written once for both Keras flavours.

Layer names are stable and meaningful, because masks and stored weights are keyed by them:
convolutions are ``conv1, conv2, ...``, hidden dense layers ``fc1, fc2, ...``, the last dense layer ``output``.
Models end in logits (no softmax); train them with ``from_logits=True``.

Each model's architecture, initialiser and weight decay come from its ModelSpec (lth_tf.models.specs), which says
which version of Frankle & Carbin's paper it follows (arXiv v1 Figure 1, or ICLR 2019 Figure 2). Two initialisers:
``normal`` is a normal of std 0.1 and ``glorot`` the Normal Xavier (Glorot & Bengio) of std sqrt(2 / (fan_in +
fan_out)); ``he`` (--init=he; He et al. 2015) a normal of std sqrt(2 / fan_in); all redraw values beyond two
standard deviations, as TensorFlow's truncated normal does (glorot and he are rescaled so that the truncated
distribution has that std). Weight
decay is an L2 penalty of ``weight_decay / 2 * sum(w**2)`` on every Dense and Conv2D kernel, so that its
gradient is ``weight_decay * w``, the paper's (and SGD's usual) meaning of weight decay 1e-4.

    >>> import tf_keras
    >>> model = build_with(tf_keras, "lenet300_100", input_shape=(28, 28, 1), num_classes=10, seed=0)
    >>> [layer.name for layer in model.layers][-3:]
    ['fc1', 'fc2', 'output']

The code takes the Keras module as an argument: lth_tf.models.networks builds with tf_keras, lth_tf.keras3.networks
with Keras 3 (TensorFlow, JAX or PyTorch backend); the layer names and initialisers are the same.
"""
from __future__ import annotations

import functools

from lth_tf.models import cifar_resnet, cifar_vgg
from lth_tf.models.specs import fits, known, model_spec, names, resnet_shape


class _Init:
    """Hands out a distinct seeded initialiser for each layer, so a model is a pure function of its seed."""

    def __init__(self, keras, kind: str, seed: int, seed_limit: int | None = None):
        if kind not in ("normal", "glorot", "he"):
            raise ValueError(f"unknown initialiser '{kind}'")
        self.keras, self.kind, self.seed, self.count, self.limit = keras, kind, seed, 0, seed_limit

    def __call__(self):
        self.count += 1
        seed = self.seed * 1000 + self.count
        if self.limit is not None:  # Keras 3 takes seeds below 2**32 (the identity for the trials' own seeds)
            seed %= self.limit
        if self.kind == "glorot":
            # tf_keras' GlorotNormal is a truncated normal at two standard deviations, scaled so that its
            # standard deviation after truncation is sqrt(2 / (fan_in + fan_out)).
            return self.keras.initializers.GlorotNormal(seed=seed)
        if self.kind == "he":
            # He et al. (2015) normal: tf_keras' HeNormal is likewise truncated at two standard deviations and
            # scaled to a standard deviation of sqrt(2 / fan_in) after truncation.
            return self.keras.initializers.HeNormal(seed=seed)
        # TruncatedNormal redraws values beyond two standard deviations, as the paper's TF code did.
        return self.keras.initializers.TruncatedNormal(stddev=0.1, seed=seed)


def _dense_head(layers, x, sizes, num_classes, init, reg, dropout):
    for i, size in enumerate(sizes, start=1):
        x = layers.Dense(size, activation="relu", kernel_initializer=init(), kernel_regularizer=reg,
                         name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return layers.Dense(num_classes, kernel_initializer=init(), kernel_regularizer=reg, name="output")(x)


def _conv_stack(layers, inputs, plan, kernel_size, padding, init, reg):
    """plan: filter counts and "pool" markers, e.g. (64, "pool", 64, "pool")."""
    x, conv, pool = inputs, 0, 0
    for step in plan:
        if step == "pool":
            pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool}")(x)
        else:
            conv += 1
            x = layers.Conv2D(step, kernel_size, padding=padding, activation="relu", kernel_initializer=init(),
                              kernel_regularizer=reg, name=f"conv{conv}")(x)
    return layers.Flatten(name="flatten")(x)


def _lenet300_100(layers, inputs, num_classes, init, reg, dropout):
    x = layers.Flatten(name="flatten")(inputs)
    return _dense_head(layers, x, (300, 100), num_classes, init, reg, dropout)


def _conv2(layers, inputs, num_classes, init, reg, dropout):
    # arXiv v1 Figure 1's Conv-2: 5x5x64 conv, pool, 5x5x64 conv, pool (`same`), dense 384-192-10.
    x = _conv_stack(layers, inputs, (64, "pool", 64, "pool"), 5, "same", init, reg)
    return _dense_head(layers, x, (384, 192), num_classes, init, reg, dropout)


def _conv2_iclr(layers, inputs, num_classes, init, reg, dropout):
    # ICLR Figure 2's Conv-2: 3x3 convolutions 64, 64, pool (`same`), dense 256, 256, 10 (4.3M weights on CIFAR10).
    x = _conv_stack(layers, inputs, (64, 64, "pool"), 3, "same", init, reg)
    return _dense_head(layers, x, (256, 256), num_classes, init, reg, dropout)


_CONV4 = (64, 64, "pool", 128, 128, "pool")


def _conv4(layers, inputs, num_classes, init, reg, dropout):
    # arXiv v1 Figure 1's Conv-4: `valid` 3x3 convolutions, so CIFAR10's 32x32 ends at 5x5x128 and fc1 is
    # 3200x256 (1.15M weights, 260K in convolutions).
    x = _conv_stack(layers, inputs, _CONV4, 3, "valid", init, reg)
    return _dense_head(layers, x, (256, 256), num_classes, init, reg, dropout)


def _conv4_iclr(layers, inputs, num_classes, init, reg, dropout):
    # ICLR Figure 2's Conv-4: the same layers with `same` padding: 8x8x128 into fc1, 2.4M weights.
    x = _conv_stack(layers, inputs, _CONV4, 3, "same", init, reg)
    return _dense_head(layers, x, (256, 256), num_classes, init, reg, dropout)


def _conv6(layers, inputs, num_classes, init, reg, dropout):
    x = _conv_stack(layers, inputs, (*_CONV4, 256, 256, "pool"), 3, "same", init, reg)
    return _dense_head(layers, x, (256, 256), num_classes, init, reg, dropout)


# The architecture registry: ModelSpec.builder (or the model's own name) -> its builder,
# builder(layers, inputs, num_classes, init, reg, dropout) -> logits, `layers` being the Keras flavour's layers module.
# The CIFAR ResNets and VGGs live in cifar_resnet.py and cifar_vgg.py; `resnet18` is ResNet-20 at width 16, and
# any resnet<N>_w<W> name is ResNet-N at width W (specs.resnet_shape).
ARCHITECTURES = {"lenet300_100": _lenet300_100, "conv2": _conv2, "conv2_iclr": _conv2_iclr, "conv4": _conv4,
                 "conv4_iclr": _conv4_iclr, "conv6": _conv6,
                 **{f"vgg{depth}": functools.partial(cifar_vgg.vgg, depth=depth) for depth in cifar_vgg.PLANS}}


def architecture(name: str):
    """The builder of architecture `name` (a key of ARCHITECTURES, or a CIFAR ResNet name)."""
    shape = resnet_shape(name)
    if shape is not None:
        return functools.partial(cifar_resnet.resnet, depth=shape[0], width=shape[1])
    return ARCHITECTURES[name]


def build_with(keras, name: str, input_shape: tuple, num_classes: int, seed: int = 0, dropout: float = 0.0,
               init: str | None = None, weight_decay: float | None = None, seed_limit: int | None = None):
    """Model `name` built with the Keras module `keras` (tf_keras, or Keras 3 on any backend), its weights drawn
    from `seed`. Both flavours take the same seeded initialisers, so on TensorFlow they draw the same values.
    The initialiser and weight decay are the model's (`MODELS[name].init`, `.weight_decay`) unless given
    (--init, --weight_decay). seed_limit: the layers' seeds are taken modulo it (Keras 3: 2**32)."""
    if not known(name):
        raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(names()))}")
    reason = fits(name, tuple(input_shape))
    if reason:
        raise ValueError(reason)
    spec = model_spec(name)
    weight_decay = spec.weight_decay if weight_decay is None else weight_decay
    # Keras' L2(c) adds c * sum(w**2), whose gradient is 2c * w: halve the decay to get weight_decay * w.
    reg = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    init = _Init(keras, init or spec.init, seed, seed_limit)
    outputs = architecture(spec.builder or name)(keras.layers, inputs, num_classes, init, reg, dropout)
    return keras.Model(inputs, outputs, name=name)
