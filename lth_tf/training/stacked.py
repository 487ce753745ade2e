"""Several trials' rounds trained as one Keras model (--parallel_trials=N).

An IMP experiment is rounds x trials x variants of small networks, each of whose training steps costs little
compute and a fixed overhead (a call into TensorFlow, the input pipeline, op dispatch). `StackedTrainer` holds
N networks of one architecture side by side and trains them with one step: network i takes its own batch x_i,
its own mask m_i and its own loss, and the step minimises

    L = sum_i a_i * (CE(f_i(x_i), y_i) + R_i)        (a_i = 1 for a network with a job, 0 for an idle one)

Because the networks share no variable, dL/dw_i = a_i * d(CE_i + R_i)/dw_i: each network gets exactly the
gradient it would get alone, masked as alone (pruned entries' gradients are 0), with its own optimizer slots.
So a stacked trial is the sequential trial computed in one graph (same ops per network, same data order,
same initialisation), and its results are stored per trial as before.

The networks are stacked as side-by-side towers rather than as one stacked kernel per layer (an einsum over a
trial axis): measured on 2 CPU cores, a stacked einsum step of 8 lenet300_100 networks on MNIST-1D took 1.6 ms
per network-step against 0.9 for towers, and towers keep every network a plain Keras model (snapshot,
restore, pruning and scoring work on it unchanged). See BENCHMARKS.md ("Many trials in one model").

Networks made of Dense, Conv2D, pooling, Flatten and Dropout layers stack; others (BatchNormalization, whose
moving statistics are not weights the masks and rewinds handle per network here) raise a one-line error.

    trainer = RoundTrainer([build(seed) for seed in seeds], data, spec)    # N networks (lth_tf.training.trainer)
    results = trainer.train_many([Job(start, masks, data_key=k) for start, masks, k in jobs])
"""
from __future__ import annotations

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from lth_tf.training import frozen, masked

_STACKABLE = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.Conv2D, keras.layers.MaxPooling2D,
              keras.layers.AveragePooling2D, keras.layers.Flatten, keras.layers.Dropout, keras.layers.ReLU,
              keras.layers.Activation)


class StackError(ValueError):
    """A network --parallel_trials cannot stack; str(e) is one line."""


def check_stackable(net: keras.Model) -> None:
    """Raises StackError naming the first layer that stacking does not support."""
    for layer in net.layers:
        if not isinstance(layer, _STACKABLE):
            raise StackError(f"--parallel_trials cannot stack {net.name}: its layer '{layer.name}' "
                             f"({type(layer).__name__}) is not supported; run its trials one at a time")


class StackedTrainer(keras.Model):
    """N networks trained by one step: network i on batch i, under mask i (see the module docstring).

    Training data: ((x_0, ..., x_n-1), (y_0, ..., y_n-1)); evaluation data: one (x, y) for all networks.
    Metrics are per network: accuracy_i, cross_entropy_i.
    """

    def __init__(self, nets, frozen_refs: frozenset = frozenset(), **kwargs):
        super().__init__(name="stacked", **kwargs)
        self.frozen_refs = set(frozen_refs)  # every network's frozen variables (lth_tf.training.frozen)
        for net in nets:
            check_stackable(net)
        self.nets = list(nets)
        self.mask_variables = [masked.make_mask_variables(net) for net in self.nets]
        self._kernel_masks = {}  # every network's {kernel ref: mask variable}, for masked_gradients
        for net, mask_variables in zip(self.nets, self.mask_variables):
            self._kernel_masks.update(masked.kernel_masks(net, mask_variables))
        # a_i: 1 for a network with a job this round, 0 for an idle one (its weights then take no update)
        self.active = tf.Variable(tf.ones([len(self.nets)]), trainable=False, name="active")
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._per_net = [(keras.metrics.SparseCategoricalAccuracy(name=f"accuracy_{i}"),
                          keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name=f"cross_entropy_{i}"))
                         for i in range(len(self.nets))]

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = masked.looping_train_function(self)
        return self.train_function

    @property
    def metrics(self):
        return [metric for pair in self._per_net for metric in pair]  # Keras resets these every epoch

    def set_masks(self, masks: list) -> None:
        """masks[i] for network i; networks beyond the list are idle this round."""
        for variables, mask in zip(self.mask_variables, masks):
            masked.assign_masks(variables, mask)
        self.active.assign([1.0 if i < len(masks) else 0.0 for i in range(len(self.nets))])

    def call(self, inputs, training=None):
        if not isinstance(inputs, (tuple, list)):
            inputs = [inputs] * len(self.nets)  # evaluation: every network on the same batch
        return [tf.cast(net(x, training=training), tf.float32) for net, x in zip(self.nets, inputs)]

    def train_step(self, data):
        xs, ys = data
        with tf.GradientTape() as tape:
            logits = self(xs, training=True)
            losses = [self._loss(y, out) + (tf.add_n(net.losses) if net.losses else 0.0)
                      for net, y, out in zip(self.nets, ys, logits)]
            total = tf.add_n([a * loss for a, loss in zip(tf.unstack(self.active), losses)])
        variables = self.trainable_variables
        grads = tape.gradient(total, variables)
        grads = frozen.zeroed(masked.masked_gradients(grads, variables, self._kernel_masks), variables, self.frozen_refs)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._update_metrics(ys, logits)

    def test_step(self, data):
        x, y = data[0], data[1]
        return self._update_metrics([y] * len(self.nets), self(x, training=False))

    def _update_metrics(self, ys, logits) -> dict:
        for (accuracy, cross_entropy), y, out in zip(self._per_net, ys, logits):
            accuracy.update_state(y, out)
            cross_entropy.update_state(y, out)
        return {metric.name: metric.result() for metric in self.metrics}
