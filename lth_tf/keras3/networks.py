"""The paper's networks built with Keras 3 (any backend): the same architectures, layer names and seeded
initialisers as the tf_keras engine (both built by lth_tf.models.architectures).

On the TensorFlow backend Keras 3 draws a seeded initialiser's values with the same TensorFlow op and seed as
tf_keras, so a model's initial weights equal the tf_keras engine's for the same seed, bit for bit
(tests/test_keras3_engine.py checks it). JAX and PyTorch draw from their own random number generators: the same
distributions (truncated normal of std 0.1, or truncated Glorot normal), other values. Keras 3 takes seeds
below 2**32, so a layer's seed (model seed * 1000 + layer count) is taken modulo 2**32: the same seed for the
trials' own models, another one than tf_keras's only for the large random seeds of `reinit`'s fresh draws.

    from lth_tf.keras3 import networks
    model = networks.build("lenet300_100", input_shape=(40,), num_classes=10, seed=0)
"""
from __future__ import annotations

import keras

from lth_tf.models.architectures import build_with


def build(name: str, input_shape: tuple, num_classes: int, seed: int = 0, dropout: float = 0.0,
          init: str | None = None, weight_decay: float | None = None) -> keras.Model:
    """Keras 3 model `name` with weights drawn deterministically from `seed` (the model's initialiser and
    weight decay, `lth_tf.models.specs.MODELS[name]`, unless given: --init, --weight_decay)."""
    return build_with(keras, name, input_shape, num_classes, seed=seed, dropout=dropout, init=init,
                      weight_decay=weight_decay, seed_limit=1 << 32)
