"""A round's training data: batches whose order is a pure function of (data key, position).

So a resumed round, or a round run in a fresh process, sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tensorflow as tf


INFINITY = 1 << 62  # "forever" for tf.data ranges


def train_stream(x, y, batch_size: int, key: int, start_batch: int = 0, augment: bool = False) -> tf.data.Dataset:
    """Infinite batches of (x, y) whose order is a pure function of (key, batch position).

    Data epoch e is the permutation argsort(stateless_uniform(seed=(key, e))) of the training examples;
    batches run across epoch boundaries (as shuffle().repeat().batch() does). Starting at `start_batch`
    costs one permutation plus skipping less than one epoch of indices, so a resumed round, or a round
    run in a fresh process, sees exactly the batches an uninterrupted run would. Only indices are
    shuffled; `x` and `y` (tensors, built once per trainer) are gathered per batch, so no per-round copy
    or cache of the data is made. Every stream has the same element spec: fitting on a new stream reuses
    the traced training step.

    augment (HxWxC images): random flip and 4-px translation, seeded by (key, position of the example).
    """
    n = int(x.shape[0])
    # Tensors or ints alike: RoundTrainer builds streams through one traced function (see there).
    key = tf.cast(key, tf.int64)
    first = tf.cast(start_batch, tf.int64) * tf.cast(batch_size, tf.int64)
    indices = example_order(n, key, first)
    if augment:
        from lth_tf.data.pipelines import _augment  # the pipeline's own augmentation, keyed by the example's position
        examples = tf.data.Dataset.zip(tf.data.Dataset.range(first, INFINITY), indices).map(
            lambda position, i: _augment(position, (tf.gather(x, i), tf.gather(y, i)), seed=key),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        batches = examples.batch(batch_size)
    else:
        batches = indices.batch(batch_size).map(lambda i: (tf.gather(x, i), tf.gather(y, i)))
    return batches.with_options(in_memory_options()).prefetch(PREFETCH)


def example_order(n: int, key, first) -> tf.data.Dataset:
    """The training example indices of data key `key` from position `first` on: epoch e is the permutation
    argsort(stateless_uniform([n], seed=(key, e))), epochs one after the other (see `train_stream`).
    A vector of keys gives vectors: element j holds each key's j-th index (stacked trials' orders in one
    stream; their epochs end at the same positions)."""
    key, first = tf.cast(key, tf.int64), tf.cast(first, tf.int64)

    def one(k, epoch):
        return tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([k, epoch])))

    def permutation(epoch):
        if key.shape.rank == 0:
            return tf.data.Dataset.from_tensor_slices(one(key, epoch))
        return tf.data.Dataset.from_tensor_slices(tf.stack([one(key[i], epoch) for i in range(key.shape[0])], 1))

    return tf.data.Dataset.range(first // n, INFINITY).flat_map(permutation).skip(first % n)


# Batches prepared ahead of the training step: a gather of one batch takes far less than a step, so two suffice.
PREFETCH = 2


def in_memory_options() -> tf.data.Options:
    """The options of every pipeline over in-memory arrays (training streams, evaluation passes).

    Autotuning is off. With it on, each iterator starts a model thread that sleeps 10 ms, 20 ms, 40 ms, ...
    between optimisations, and deleting the iterator (the end of every Keras `fit`) could wait for the sleep in
    progress to end: a round stopped at 13 s was held to 20.47 s (10 ms x (2^11 - 1)), one at 7 s to 10.23 s,
    which made round times bimodal (issue 29; BENCHMARKS.md, "Round times"). These pipelines only gather from
    tensors in memory, so fixed prefetch buffers lose nothing; AUTOTUNE map parallelism falls back to the cores.
    In-memory data has no files to shard either: say so, rather than have multi-worker runs try and warn.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
