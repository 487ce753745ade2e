"""A loaded dataset: its arrays, and tf.data pipelines over them built once per arguments and reused.

The arrays need no TensorFlow (the Keras 3 engine reads them on JAX where TensorFlow is not installed): it is
imported only when a pipeline is first asked for.

    train = ds.train_pipeline(batch_size=60, seed=0)   # infinite, shuffled, deterministic per seed
    model.fit(train, steps_per_epoch=ds.steps_per_epoch(60), epochs=1,
              validation_data=ds.eval_pipeline("validation"))
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401

import functools
import math
from dataclasses import dataclass, field

import numpy as np

@dataclass(frozen=True, eq=False)
class Dataset:
    """Loaded splits plus tf.data pipelines built once per (arguments) and reused."""
    name: str
    input_shape: tuple
    num_classes: int
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    _pipelines: dict = field(default_factory=dict, init=False, repr=False)

    def train_pipeline(self, batch_size: int, seed: int, augment: bool = False) -> tf.data.Dataset:
        """Infinite shuffled (reshuffled every epoch) batches of (x, y), deterministic for a seed.

        Memoised: the same object comes back for the same arguments. A new iterator over it (e.g. a
        later ``fit`` call) continues the seeded reshuffle sequence rather than replaying the first order.

        ``augment`` (images only): random horizontal flip and translation by up to 4 px
        (zero-pad 4, random crop), from stateless ops seeded by (seed, element index).
        """
        import tensorflow as tf
        key = ("train", batch_size, seed, bool(augment))
        if key not in self._pipelines:
            ds = tf.data.Dataset.from_tensor_slices((self.x_train, self.y_train)).cache()
            ds = ds.shuffle(len(self.x_train), seed=seed, reshuffle_each_iteration=True).repeat()
            if augment:
                if len(self.input_shape) != 3:
                    raise ValueError(f"augment needs HxWxC images; {self.name} has shape {self.input_shape}")
                ds = ds.enumerate().map(functools.partial(_augment, seed=seed),
                                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            self._pipelines[key] = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return self._pipelines[key]

    def eval_pipeline(self, split: str, batch_size: int = 1000) -> tf.data.Dataset:
        """One finite, cached, batched pass over split "validation", "test" or "train"."""
        arrays = {"validation": (self.x_val, self.y_val), "test": (self.x_test, self.y_test),
                  "train": (self.x_train, self.y_train)}
        if split not in arrays:
            raise ValueError(f"split must be one of {sorted(arrays)}, not {split!r}")
        import tensorflow as tf
        key = ("eval", split, batch_size)
        if key not in self._pipelines:
            ds = tf.data.Dataset.from_tensor_slices(arrays[split]).batch(batch_size).cache()
            self._pipelines[key] = ds.prefetch(tf.data.AUTOTUNE)
        return self._pipelines[key]

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.x_train) / batch_size)


def _augment(index, example, seed):
    import tensorflow as tf
    image, label = example
    shape = image.shape
    flip_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index])
    crop_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index + 1])
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    return tf.image.stateless_random_crop(image, shape, seed=crop_seed), label
