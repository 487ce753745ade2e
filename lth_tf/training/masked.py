"""The masked training step: a plain model trained at dense speed, the gradients of pruned weights zeroed.

tfmot's wrapper multiplies and re-assigns every kernel on every step and updates its step counters, which
doubles the cost of a small network's step. Within a lottery-ticket round the mask never changes, so lth_tf
trains the plain model (which shares its variables with the tfmot-wrapped one) and instead zeroes the
*gradients* of pruned weights. A pruned weight starts at exactly 0 and its update is then exactly 0 under
SGD, momentum, Adam and decoupled or L2 weight decay, so it stays exactly 0 at every step; surviving weights
get the same updates as under tfmot's wrapper.
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import masks as pruning
from lth_tf.training import frozen


def make_mask_variables(net: keras.Model) -> dict:
    """One non-trainable all-ones variable per prunable layer of `net`, shaped like its kernel: the round's mask.
    Variables, so that a new round's masks (`assign_masks`) do not retrace the compiled training step."""
    return {layer.name: tf.Variable(tf.ones(layer.kernel.shape, layer.kernel.dtype), trainable=False,
                                    name=f"{layer.name}_mask")
            for layer in pruning.prunable_layers(net)}


def assign_masks(mask_variables: dict, masks: dict) -> None:
    """Sets mask variables from {layer name: 0/1 array}; a layer without an entry is left unpruned."""
    for name, variable in mask_variables.items():
        mask = masks.get(name)
        variable.assign(np.ones(variable.shape) if mask is None else mask.astype(np.float32))


def kernel_masks(net: keras.Model, mask_variables: dict) -> dict:
    """{kernel variable ref: its mask variable}, for `masked_gradients`."""
    return {layer.kernel.ref(): mask_variables[layer.name] for layer in pruning.prunable_layers(net)}


def masked_gradients(grads, variables, masks_by_ref: dict) -> list:
    """The gradients with the entries of pruned kernel weights set to exactly 0."""
    return [g * tf.cast(masks_by_ref[v.ref()], g.dtype) if v.ref() in masks_by_ref else g
            for g, v in zip(grads, variables)]


def looping_train_function(model: keras.Model):
    """A Keras training function that runs `model._steps_per_execution` steps per call and traces
    `train_step` once.

    tf_keras's own loop (`for _ in tf.range(steps): outputs = step(...)`) leaves `outputs` undefined before the
    loop, so autograph traces the step a second time just to learn its structure: for 8 stacked lenet300_100
    networks that was 1.7 s of a 9 s first round on 2 CPU cores. The steps here return nothing through the
    loop; the metrics' results are read once after it, which are the values the last step returned (a
    metric's result is a function of its state). Same steps, same updates, same step counter. Models trained
    under a distribution strategy keep Keras' loop (their per-replica outputs need its reduction).
    """
    if (model._distribution_strategy is not None or tf.distribute.has_strategy() or model._cluster_coordinator
            or model._steps_per_execution is None or model._autotune_steps_per_execution):
        return keras.Model.make_train_function(model)

    def run_step(data):
        outputs = model.train_step(data)
        with tf.control_dependencies(tf.nest.flatten(outputs)):  # count a step only once it has run
            model._train_counter.assign_add(1)

    if model.jit_compile:
        run_step = tf.function(run_step, jit_compile=True, reduce_retracing=True)

    def train_function(iterator):
        def body(i):
            run_step(next(iterator))
            return i + 1
        steps = tf.cast(model._steps_per_execution, tf.int64)
        tf.while_loop(lambda i: i < steps, body, [tf.constant(0, tf.int64)])
        return {metric.name: metric.result() for metric in model.metrics}

    if model.run_eagerly:
        return train_function
    model.train_tf_function = tf.function(train_function, reduce_retracing=True)
    return model.train_tf_function


class MaskedTrainer(keras.Model):
    """Wraps a plain Keras model; trains it with the gradients of masked kernel entries set to zero.

    Masks live in non-trainable variables, so changing them between rounds (`set_masks`) does not retrace
    the compiled training step.
    """

    def __init__(self, net: keras.Model, mask_gradients: bool = True, frozen_refs: frozenset = frozenset(),
                 **kwargs):
        super().__init__(name=f"masked_{net.name}", **kwargs)
        self.net, self.mask_gradients = net, mask_gradients
        self.mask_variables = make_mask_variables(net)
        self.frozen_refs = set(frozen_refs)  # variables whose gradients are 0 (lth_tf.training.frozen)

    def call(self, inputs, training=None):
        # Under a mixed_float16 policy the net computes in float16; the loss and metrics take float32 logits.
        return tf.cast(self.net(inputs, training=training), tf.float32)

    def set_masks(self, masks: dict) -> None:
        assign_masks(self.mask_variables, masks)

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = looping_train_function(self)
        return self.train_function

    def train_step(self, data):
        x, y = data[0], data[1]
        scaling = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred)
            scaled = self.optimizer.get_scaled_loss(loss) if scaling else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if scaling:
            grads = self.optimizer.get_unscaled_gradients(grads)
        if self.mask_gradients:  # off under tfmot's wrappers, which mask the kernels themselves at every step
            grads = masked_gradients(grads, variables, kernel_masks(self.net, self.mask_variables))
        grads = frozen.zeroed(grads, variables, self.frozen_refs)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self.compute_metrics(x, y, y_pred, None)
