"""Datasets: what they are, where they come from, and their tf.data pipelines.

Lives here: datasets.py (the dataset registry: name -> DatasetSpec, shapes, sizes and which loader reads it; no
TensorFlow, so config validation refuses a bad --dataset before TensorFlow starts), loading.py (`load(name)`:
the registry's loader, the validation split), idx.py (MNIST-format IDX files, Fashion-MNIST's Debian package),
tfds.py (tensorflow-datasets), mnist1d.py (MNIST-1D, generated locally), pipelines.py (Dataset: the arrays and
their memoised tf.data pipelines).
May import: lth_tf._env, TensorFlow, numpy; nothing else of lth_tf.
"""
