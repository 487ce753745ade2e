"""The dataset registry: name -> DatasetSpec (input shape, classes, split sizes, loader), without TensorFlow.

Config validation reads it, so a bad --dataset is refused before TensorFlow starts; `lth_tf.data.loading.load`
looks a name up here and reads the data with the spec's loader:

    mnist, fashion_mnist   "idx": IDX files in --data_dir (Fashion-MNIST also in its Debian package's
                           directory), else tensorflow-datasets
    cifar10                "tfds": tensorflow-datasets
    mnist1d                "mnist1d": generated locally (Greydanus's MNIST-1D), never downloaded

Beyond the registry, `lth_tf.data.lookup.spec_for` also takes any tensorflow-datasets image-classification name prepared in
--data_dir (lth_tf.data.tfds_info: its builder's info, read offline) and ``package.module:function`` returning
arrays (lth_tf.data.arrays: the function is called once, its arrays checked and kept in memory).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class DataError(Exception):
    """A dataset that cannot be had; str(e) is one clear line: what was tried and how to get it."""


@dataclass(frozen=True)
class DatasetSpec:
    input_shape: tuple
    num_classes: int
    validation_size: int
    train_size: int  # the dataset's training split, validation included
    # How `lth_tf.data.loading.load` gets the arrays: a key of loading.LOADERS. It says where the data comes from,
    # not what it is, so two specs of the same data compare equal whatever reads them.
    loader: str = dataclasses.field(default="tfds", compare=False)
    # A digest of a --dataset=module:function's arrays (lth_tf.data.arrays): the configuration's identity covers
    # it, so edited arrays never share a results directory with the old ones. None for named datasets.
    fingerprint: str | None = dataclasses.field(default=None, compare=False)


MNIST1D_SAMPLES = 10_000  # 8000 train (800 of them validation) / 2000 test; ~5 s to generate
MNIST1D_SEED = 42         # generation seed: the same data in every run

DATASETS = {
    "mnist": DatasetSpec((28, 28, 1), 10, 5000, 60_000, loader="idx"),
    "fashion_mnist": DatasetSpec((28, 28, 1), 10, 5000, 60_000, loader="idx"),
    "cifar10": DatasetSpec((32, 32, 3), 10, 5000, 50_000, loader="tfds"),
    "mnist1d": DatasetSpec((40,), 10, MNIST1D_SAMPLES * 8 // 10 // 10, MNIST1D_SAMPLES * 8 // 10, loader="mnist1d"),
}

