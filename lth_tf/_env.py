"""Selects legacy Keras (tf_keras) before TensorFlow is imported.

tfmot only prunes Keras 2 models; TensorFlow picks Keras 3 unless this variable is set before its first import.
Every lth_tf module imports this first.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
