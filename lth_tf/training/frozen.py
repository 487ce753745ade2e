"""Parameters that do not train (open_lth's --batchnorm_frozen and --output_frozen): their gradients are set to
exactly 0, so they keep their start values under SGD, momentum, Nesterov and Adam (whose update of a zero
gradient with zero slots is exactly 0). A BatchNorm layer with frozen gamma and beta still normalises with the
batch's statistics in training and still updates its moving mean and variance (Keras' `trainable=False` would
switch it to inference mode instead, which is another method).

    refs = frozen.refs(net, batchnorm=True, output=False)   # {variable ref}: every BatchNorm gamma and beta
    grads = frozen.zeroed(grads, variables, refs)
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import masks as pruning


def variables(net: keras.Model, batchnorm: bool = False, output: bool = False) -> list:
    """The trainable variables of `net` that stay frozen: BatchNorm gammas and betas, the output layer's weights."""
    out = []
    if batchnorm:
        out += [v for layer in _all_layers(net) if isinstance(layer, keras.layers.BatchNormalization)
                for v in layer.trainable_weights]
    if output:
        name = pruning.output_layer_name(net)
        out += [v for layer in pruning.prunable_layers(net) if layer.name == name for v in layer.trainable_weights]
    return out


def refs(net: keras.Model, batchnorm: bool = False, output: bool = False) -> set:
    return {v.ref() for v in variables(net, batchnorm, output)}


def zeroed(grads, variables_, frozen_refs: set) -> list:
    """The gradients with those of frozen variables set to exactly 0."""
    if not frozen_refs:
        return list(grads)
    return [tf.zeros_like(g) if g is not None and v.ref() in frozen_refs else g for g, v in zip(grads, variables_)]


def _all_layers(net):
    for layer in net.layers:
        inner = getattr(layer, "layer", None)  # tfmot's wrappers hold the layer
        yield inner if isinstance(inner, keras.layers.Layer) else layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
