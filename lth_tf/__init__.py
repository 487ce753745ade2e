"""lth_tf: lottery tickets (Frankle & Carbin, ICLR 2019) for Keras models, with tfmot pruning wrappers.

Public API:
  RewindCallback   Keras callback: rewinds to saved early weights under the learned masks when training starts.
  prune_model      from a trained model, a tfmot-wrapped model with the next nested magnitude masks.
  snapshot / restore   weights as {"layer/weight": array}.
  Config, run      the experiment behind `python -m lth_tf.main`.
"""
from lth_tf import _env  # noqa: F401  (must precede any TensorFlow import)

__version__ = "0.1.0"

__all__ = ["RewindCallback", "prune_model", "snapshot", "restore", "__version__"]

_LAZY = {"RewindCallback": "lth_tf.rewind", "restore": "lth_tf.rewind", "snapshot": "lth_tf.rewind",
         "prune_model": "lth_tf.pruning"}


def __getattr__(name):
    # Lazy, so that `python -m lth_tf.main --bad_flag` answers before TensorFlow is imported.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lth_tf' has no attribute {name!r}")
