"""lth_tf.keras3: lottery tickets for Keras 3 models on TensorFlow, JAX or PyTorch, without tf_keras or tfmot.

    from lth_tf import keras3 as lth
    rewind = lth.RewindCallback()              # the first fit records the initial weights
    model = lth.prune_model(model)             # next nested masks, held by the model itself

Lives here: masks.py (magnitude masks enforced through Keras' constraint hook), rewind.py (RewindCallback,
snapshot, restore); the public names below. The Keras 3 engine of the experiment (--engine=keras3): engine.py
(what the experiment loop does with models), networks.py (the paper's networks in Keras 3), trainer.py (rounds
under fixed masks), batches.py (a round's numpy batches). May import: keras, numpy and lth_tf's TensorFlow-free
modules (lth_tf.pruning.ranking and .arrays, lth_tf.models.specs and .architectures, lth_tf.training.jobs), and
TensorFlow only where it is the Keras backend; never tf_keras or tfmot, so `import lth_tf.keras3` leaves what
`tf.keras` means alone.
"""
from lth_tf.keras3.masks import (  # noqa: F401  (the public names)
    Masks,
    apply_masks,
    full_masks,
    held_masks,
    kernels,
    layer_rates,
    masks_of,
    output_layer_name,
    prunable_layers,
    prune,
    prune_model,
)
from lth_tf.keras3.rewind import RewindCallback, restore, snapshot  # noqa: F401
