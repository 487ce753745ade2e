"""Test setup: legacy Keras must be chosen before TensorFlow is imported anywhere."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "multiprocess: starts several lth_tf processes (multi-worker, crash/resume)")
