"""lth_tf.keras3: lottery tickets for Keras 3 models on TensorFlow, JAX or PyTorch, without tf_keras or tfmot.

    from lth_tf import keras3 as lth
    rewind = lth.RewindCallback()              # the first fit records the initial weights
    model = lth.prune_model(model)             # next nested masks, held by the model itself

Lives here: masks.py (magnitude masks enforced through Keras' constraint hook), rewind.py (RewindCallback,
snapshot, restore); the public names below. May import: keras, numpy and lth_tf.pruning.ranking (numpy only),
never tf_keras or tfmot, so `import lth_tf.keras3` leaves what `tf.keras` means alone.
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
