"""Datasets: what they are, where they come from, and their tf.data pipelines.

Lives here: datasets.py (the dataset registry: name -> DatasetSpec, shapes, sizes and which loader reads it; no
TensorFlow, so config validation refuses a bad --dataset before TensorFlow starts), loading.py (`load(name)`:
the registry's loader, the validation split), idx.py (MNIST-format IDX files, Fashion-MNIST's Debian package),
tfds.py (tensorflow-datasets), mnist1d.py (MNIST-1D, generated locally), pipelines.py (Dataset: the arrays and
their memoised tf.data pipelines), lookup.py (`spec_for`: any --dataset's spec, without TensorFlow), tfds_info.py
(any tensorflow-datasets image-classification name, from its builder's info offline), arrays.py (your own arrays,
or --dataset=package.module:function, as a Dataset), options.py (--train_subset, --random_labels).
May import: lth_tf._env, TensorFlow, numpy; nothing else of lth_tf.
"""
