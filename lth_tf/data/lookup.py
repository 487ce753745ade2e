"""--dataset=NAME -> its DatasetSpec: the registry, a tensorflow-datasets image-classification name, or a function.

    spec_for("cifar10").train_size                  # the registry (lth_tf.data.datasets)
    spec_for("kmnist", data_dir).num_classes        # tensorflow-datasets, prepared offline (lth_tf.data.tfds_info)
    spec_for("mydata.load:arrays").input_shape      # package.module:function returning arrays (lth_tf.data.arrays)
"""
from __future__ import annotations

from lth_tf.data import arrays, tfds_info
from lth_tf.data.datasets import DATASETS, DatasetSpec


def spec_for(name: str, data_dir: str | None = None) -> DatasetSpec:
    """The DatasetSpec of --dataset=`name`: a registry name, a prepared tensorflow-datasets image-classification
    name, or ``package.module:function`` returning (x_train, y_train, x_test, y_test). Raises DataError (one line).
    Registry names and tfds names start no TensorFlow; a function is called (once: its arrays are kept)."""
    if name in DATASETS:
        return DATASETS[name]
    if ":" in name or arrays.given(name) is not None:
        return arrays.function_spec(name)
    return tfds_info.spec(name, data_dir)
