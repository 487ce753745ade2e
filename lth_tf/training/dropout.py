"""Dropout whose draws are a function of (round key, training step, layer), so a resumed round is exact.

Keras' Dropout draws from a random-op state that lives in the process: a round resumed from its backup in
a new process drops other units than the uninterrupted run did. `make_positional` gives each Dropout layer
of a model a stateless generator instead: at training step s (the optimizer's iteration count, restored
with the optimizer by a backup) of a round with data key k, layer number l of L drops the units where

    stateless_uniform(seed=(k, (s * R + replica) * L + l)) < rate        (kept units are scaled by 1/(1-rate))

with R replicas in sync (each replica gets its own draw for its share of the batch). The round's data
order is the same kind of function of (key, position) (training.train_stream), so with op determinism a
round resumed in another process equals the uninterrupted one. Inference (training=False) drops nothing.

    key = dropout.make_positional(model, optimizer.iterations)   # None when the model has no Dropout
    key.assign(round_key)                                          # before each round's fit
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras


class _PositionalGenerator:
    """Stands in for a Dropout layer's `_random_generator` (the object its call() asks for a dropout)."""

    def __init__(self, key: tf.Variable, step: tf.Variable, index: int, count: int):
        self.key, self.step, self.index, self.count = key, step, index, count

    def dropout(self, inputs, rate, noise_shape=None):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        replica = tf.cast(context.replica_id_in_sync_group, tf.int64) if context is not None else 0
        position = (tf.cast(self.step, tf.int64) * replicas + replica) * self.count + self.index
        seed = tf.stack([tf.cast(self.key, tf.int64), position])
        return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=seed, noise_shape=noise_shape)


def dropout_layers(model) -> list:
    """The model's Dropout layers (nested models included), in a fixed order."""
    return [layer for layer in model.submodules if isinstance(layer, keras.layers.Dropout)]


def make_positional(model, step: tf.Variable) -> tf.Variable | None:
    """Makes every Dropout layer of `model` draw from (key, `step`, layer); returns the key variable.

    Call where the model's variables are made (inside a strategy scope, if any), before the training
    step is traced. Returns None, and changes nothing, when the model has no Dropout layer.
    """
    layers = dropout_layers(model)
    if not layers:
        return None
    key = tf.Variable(0, dtype=tf.int64, trainable=False, name="dropout_key")
    for index, layer in enumerate(layers):
        # object.__setattr__: not tracked as the layer's checkpoint dependency (saved models stay as they were)
        object.__setattr__(layer, "_random_generator", _PositionalGenerator(key, step, index, len(layers)))
    return key
