"""A round's training batches as numpy arrays, for the Keras 3 engine: no tf.data, so no TensorFlow on JAX.

The order is a pure function of (data key, batch position), like the tf_keras engine's (lth_tf.training.streams),
so a resumed round, or one run in a fresh process, sees exactly the batches an uninterrupted run would: data
epochs one after the other, batches running across epoch boundaries, epoch e a permutation of the training
examples drawn from (key, e):

  on the TensorFlow backend   argsort(tf.random.stateless_uniform([n], seed=(key, e))): the tf_keras engine's
                              order, so that both engines train the same network on the same batches;
  on JAX and PyTorch          numpy.random.default_rng([key, e]).permutation(n) (no TensorFlow there).

augment (HxWxC images, resnet18/vgg19): a random horizontal flip and a translation by up to 4 pixels (zero-pad 4,
crop at a random offset), as lth_tf.data.pipelines does, drawn from `default_rng([key, 1, batch position])`.

    batches = Batches(x_train, y_train, batch_size=60, key=123)
    x, y = batches.take(first_batch=0, steps=100)     # 100 batches, concatenated: 6000 examples
"""
from __future__ import annotations

import numpy as np


class Batches:
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, key: int, augment: bool = False,
                 tensorflow_order: bool = False):
        self.x, self.y, self.batch_size, self.key, self.augment = x, y, int(batch_size), int(key), augment
        self.tensorflow_order = tensorflow_order
        self._perms = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            if self.tensorflow_order:  # lth_tf.training.streams.example_order's permutation, op for op
                import tensorflow as tf
                seed = tf.constant([self.key, epoch], tf.int64)
                perm = tf.argsort(tf.random.stateless_uniform([len(self.x)], seed=seed)).numpy()
            else:
                perm = np.random.default_rng([self.key, epoch]).permutation(len(self.x))
            self._perms[epoch] = perm
        return self._perms[epoch]

    def indices(self, first_batch: int, steps: int) -> np.ndarray:
        """The example indices of batches first_batch .. first_batch + steps - 1, in order."""
        n = len(self.x)
        positions = np.arange(first_batch * self.batch_size, (first_batch + steps) * self.batch_size)
        epochs, within = np.divmod(positions, n)
        out = np.empty(positions.size, np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            out[where] = self._perm(int(epoch))[within[where]]
        return out

    def take(self, first_batch: int, steps: int) -> tuple:
        """(x, y) of `steps` batches from batch position `first_batch` on, concatenated (fit with shuffle=False)."""
        index = self.indices(first_batch, steps)
        x, y = self.x[index], self.y[index]
        if self.augment:
            x = np.concatenate([_augment(x[i:i + self.batch_size], np.random.default_rng([self.key, 1, first_batch + b]))
                                for b, i in enumerate(range(0, len(x), self.batch_size))])
        return x, y


def _augment(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Random flip left-right and translation by up to `pad` pixels of a batch of HxWxC images."""
    count, height, width = images.shape[:3]
    flip = rng.random(count) < 0.5
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, count))
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return np.stack([padded[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(count)])
