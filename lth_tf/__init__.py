"""lth_tf: lottery tickets (Frankle & Carbin, ICLR 2019) for Keras models, with tfmot pruning wrappers.

Public API:
  RewindCallback   Keras callback: rewinds to saved early weights under the learned masks when training starts.
  prune_model      from a trained model, a tfmot-wrapped model with the next nested magnitude masks.
  snapshot / restore   weights as {"layer/weight": array}.
  Config, run      the experiment behind `python -m lth_tf.main`.
"""
from lth_tf import _env  # noqa: F401  (must precede any TensorFlow import)

__version__ = "0.1.0"

from lth_tf.pruning import prune_model  # noqa: E402
from lth_tf.rewind import RewindCallback, restore, snapshot  # noqa: E402

__all__ = ["RewindCallback", "prune_model", "snapshot", "restore", "__version__"]
