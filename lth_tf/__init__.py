"""lth_tf: lottery tickets (Frankle & Carbin, ICLR 2019) for Keras models, with tfmot pruning wrappers.

Public API:
  RewindCallback   Keras callback: rewinds to saved early weights under the learned masks when training starts.
  prune_model      from a trained model, a tfmot-wrapped model with the next nested magnitude masks.
  snapshot / restore   weights as {"layer/weight": array}.
  lth_tf.keras3    the same recipe for Keras 3 models on TensorFlow, JAX or PyTorch, without tf_keras or tfmot.
  run_experiment   the experiment of `python -m lth_tf.main` from Python, on a model function and arrays of your
                   own if you like; writes the same results directory, returns the results table (list of dicts).
  Config           its configuration (lth_tf.experiment.config.Config).
  lth_tf.experiment.experiment.run   the experiment loop itself, on an open Store.

Nothing is imported here: each tf_keras module selects legacy Keras itself (lth_tf._env) when first used, so
`import lth_tf.keras3` leaves TF_USE_LEGACY_KERAS, and so what `tf.keras` means, alone.

Layout: one folder per concept; a folder imports only the folders listed before it (and lth_tf._env), never a
later one, so there are no import circles:

  models/       the paper's networks: the model registry and architectures (no TensorFlow), tf_keras builds
  data/         the dataset registry (no TensorFlow), loaders, tf.data pipelines
  pruning/      magnitude masks (numpy: pruning.arrays) and tfmot wrapping, pruning at initialization, rewinding
  training/     one round under a fixed mask: the masked trainer, stacked trials, the tf_keras engine
                (imports models, data, pruning)
  keras3/       the Keras 3 path: the recipe, and the Keras 3 engine of the experiment (imports the TensorFlow-free
                models.specs/architectures, pruning.ranking/arrays, training.jobs; never tf_keras or tfmot)
  experiment/   config, the experiment loop, its engines, the results store, instability pairs (imports the above)
  analysis/     tables and figures from results directories, without TensorFlow   (imports training.convergence)
  xor/          the XOR appendix, numpy only                   (imports nothing else of lth_tf)

The command lines stay at the top, each `python -m lth_tf.<name>`: main.py, instability.py, report.py, export.py,
launch.py (and xor/__main__.py); they may import any folder.
"""

__version__ = "0.1.0"

__all__ = ["RewindCallback", "prune_model", "snapshot", "restore", "run_experiment", "Config", "__version__"]

_LAZY = {"RewindCallback": "lth_tf.pruning.rewind", "restore": "lth_tf.pruning.rewind",
         "snapshot": "lth_tf.pruning.rewind", "prune_model": "lth_tf.pruning.masks",
         "run_experiment": "lth_tf.experiment.api", "Config": "lth_tf.experiment.config"}


def __getattr__(name):
    # Lazy, so that `python -m lth_tf.main --bad_flag` answers before TensorFlow is imported, and so that
    # Keras 3 users of lth_tf.keras3 never load tf_keras.
    if name in _LAZY:
        import importlib

        from lth_tf import _env  # noqa: F401  (before the module's TensorFlow import)

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lth_tf' has no attribute {name!r}")
