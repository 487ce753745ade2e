"""Any tensorflow-datasets image-classification dataset, by name: its DatasetSpec from the builder's info, offline.

    spec("kmnist", data_dir="~/tensorflow_datasets")   # DatasetSpec((28, 28, 1), 10, 5000, 60000, loader="tfds_any")

A name qualifies when tensorflow-datasets registers it, its features are an ``image`` (H x W x C, uint8) and a
``label`` ClassLabel, it has ``train`` and ``test`` splits, and it is prepared in --data_dir (or tfds' default
directory): nothing is downloaded here. The validation set is 10% of the training split, at most 5,000 examples
(lth_tf.data.arrays.default_validation_size); lth_tf.data.loading standardises each channel with the mean and
standard deviation of the training examples (validation excluded). Imports tensorflow_datasets, which does not
start TensorFlow for this.
"""
from __future__ import annotations

import functools

from lth_tf.data.arrays import default_validation_size
from lth_tf.data.datasets import DataError, DatasetSpec


def split_sizes(builder) -> dict:
    """{split: examples} of a prepared builder; {} when it is not prepared (the sizes are unknown offline)."""
    if not builder.is_prepared():
        return {}
    return {name: int(info.num_examples) for name, info in builder.info.splits.items()}


@functools.lru_cache(maxsize=32)
def spec(name: str, data_dir: str | None = None) -> DatasetSpec:
    """The DatasetSpec of tfds dataset `name` prepared in `data_dir`; DataError (one line) otherwise."""
    from absl import logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # tfds warns about unprepared folders: the DataError says it in one line
    try:
        return _spec(name, data_dir)
    finally:
        logging.set_verbosity(verbosity)


def _spec(name: str, data_dir: str | None) -> DatasetSpec:
    where = f"--dataset={name}"
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(f"{where}: not a dataset lth_tf knows, and tensorflow-datasets is not installed") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends
        raise DataError(f"unknown dataset '{name}' (--dataset): neither lth_tf's (cifar10, fashion_mnist, mnist, "
                        f"mnist1d) nor a dataset of tfds ({type(e).__name__}); or write "
                        f"package.module:function") from None
    features = builder.info.features
    image, label = (features[k] if k in features else None for k in ("image", "label"))
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)
            and len(image.shape) == 3 and None not in image.shape):
        raise DataError(f"{where}: not an image-classification dataset (lth_tf needs the features 'image' of a "
                        f"fixed HxWxC shape and 'label', a ClassLabel)")
    sizes = split_sizes(builder)
    if not sizes:
        raise DataError(f"{where}: not downloaded in {data_dir or 'the default tensorflow-datasets directory'}; "
                        f"prepare it once with network access (tfds build {name} --data_dir=DIR), then pass "
                        f"--data_dir=DIR")
    if "train" not in sizes or "test" not in sizes:
        raise DataError(f"{where}: lth_tf needs 'train' and 'test' splits; it has {', '.join(sorted(sizes))}")
    train = sizes["train"]
    return DatasetSpec(tuple(int(d) for d in image.shape), int(label.num_classes), default_validation_size(train),
                       train, loader="tfds_any")
