"""Which training engine runs an experiment: Config.engine, and for keras3 the Keras backend KERAS_BACKEND names.

    tf_keras   lth_tf.training.engine.TfKerasEngine: tf_keras models, tfmot masks (the default)
    keras3     lth_tf.keras3.engine.Keras3Engine: Keras 3 on TensorFlow, JAX or PyTorch, no tf_keras or tfmot

Importing this module imports no TensorFlow, no Keras: `keras_backend()` checks the backend before Keras starts,
so an unknown or uninstalled one is refused in one line.

    engine = engines.make(config)             # after engines.keras_backend() said which backend
"""
from __future__ import annotations

import importlib.util
import os

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # KERAS_BACKEND -> the module it needs


class EngineError(ValueError):
    """An engine that cannot run here; str(e) is one line."""


def keras_backend() -> str:
    """The Keras 3 backend KERAS_BACKEND names (when unset: keras.json's, else tensorflow), checked to be known and
    installed (and Keras 3 too). Raises EngineError. Reads the environment only: no import of Keras."""
    backend = os.environ.get("KERAS_BACKEND", "").strip() or _configured_backend()
    if backend not in BACKENDS:
        raise EngineError(f"KERAS_BACKEND={backend} is not a backend the keras3 engine runs on; choose one of: "
                          f"{', '.join(BACKENDS)}")
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        raise EngineError(f"KERAS_BACKEND={backend}, but {BACKENDS[backend]} is not installed; install it or "
                          f"choose another backend ({', '.join(BACKENDS)})")
    if importlib.util.find_spec("keras") is None:
        raise EngineError("--engine=keras3 needs Keras 3 (pip install keras), which is not installed")
    return backend


def _configured_backend() -> str:
    """Where KERAS_BACKEND is unset, Keras reads its keras.json (in KERAS_HOME, else ~/.keras), else tensorflow."""
    import json
    path = os.path.join(os.environ.get("KERAS_HOME") or os.path.expanduser(os.path.join("~", ".keras")), "keras.json")
    try:
        with open(path) as f:
            return str(json.load(f).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def make(config, strategy=None):
    """The engine of `config` (strategy: tf_keras only)."""
    if config.engine == "keras3":
        from lth_tf.keras3.engine import Keras3Engine
        return Keras3Engine(config)
    from lth_tf.training.engine import TfKerasEngine
    return TfKerasEngine(config, strategy)
