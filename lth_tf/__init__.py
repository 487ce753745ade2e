"""lth_tf: lottery tickets (Frankle & Carbin, ICLR 2019) for Keras models, with tfmot pruning wrappers.

Public API:
  RewindCallback   Keras callback: rewinds to saved early weights under the learned masks when training starts.
  prune_model      from a trained model, a tfmot-wrapped model with the next nested magnitude masks.
  snapshot / restore   weights as {"layer/weight": array}.
  Config, run      the experiment behind `python -m lth_tf.main`.
  lth_tf.keras3    the same recipe for Keras 3 models on TensorFlow, JAX or PyTorch, without tf_keras or tfmot.

Nothing is imported here: each tf_keras module selects legacy Keras itself (lth_tf._env) when first used, so
`import lth_tf.keras3` leaves TF_USE_LEGACY_KERAS, and so what `tf.keras` means, alone.
"""

__version__ = "0.1.0"

__all__ = ["RewindCallback", "prune_model", "snapshot", "restore", "__version__"]

_LAZY = {"RewindCallback": "lth_tf.rewind", "restore": "lth_tf.rewind", "snapshot": "lth_tf.rewind",
         "prune_model": "lth_tf.pruning"}


def __getattr__(name):
    # Lazy, so that `python -m lth_tf.main --bad_flag` answers before TensorFlow is imported, and so that
    # Keras 3 users of lth_tf.keras3 never load tf_keras.
    if name in _LAZY:
        import importlib

        from lth_tf import _env  # noqa: F401  (before the module's TensorFlow import)

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lth_tf' has no attribute {name!r}")
