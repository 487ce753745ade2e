"""The Keras 3 training engine: the experiment (lth_tf.experiment.experiment) on Keras 3, on the backend
KERAS_BACKEND names (TensorFlow, JAX, PyTorch), with the methods of the tf_keras engine (lth_tf.training.engine).

Models are lth_tf.keras3.networks' (the paper's networks, the tf_keras engine's layer names and initialisers),
weights and masks plain data ({"layer/weight": ndarray}, lth_tf.keras3.rewind; {layer: bool ndarray},
lth_tf.keras3.masks), rounds lth_tf.keras3.trainer's. Nothing here imports TensorFlow, tf_keras or tfmot: with
KERAS_BACKEND=jax the whole experiment runs where TensorFlow is not installed.

    engine = Keras3Engine(config)
    model = engine.build(data, seed=0)
    trainer = engine.trainer([model], data, spec)     # Keras3RoundTrainer
"""
from __future__ import annotations

import contextlib

import keras

from lth_tf.keras3 import masks as k3masks
from lth_tf.keras3 import networks
from lth_tf.keras3.rewind import restore, snapshot
from lth_tf.keras3.trainer import Keras3RoundTrainer


class Keras3Engine:
    name = "keras3"
    strategy = None  # tf.distribute is tf_keras-only (Config refuses --strategy with keras3)

    def __init__(self, config):
        self.config = config
        self.backend = keras.backend.backend()

    def build(self, data, seed: int):
        return networks.build(self.config.model, data.input_shape, data.num_classes, seed=seed,
                              dropout=self.config.dropout, init=self.config.init,
                              weight_decay=self.config.weight_decay)

    def snapshot(self, model) -> dict:
        return snapshot(model)

    def restore(self, model, weights: dict, masks: dict) -> None:
        restore(model, weights, masks)

    def full_masks(self, model) -> dict:
        return k3masks.full_masks(model)

    def layer_rates(self, model) -> dict:
        """The rates of the tf_keras engine: fc, conv, and the output layer's; --prune_layers zeroes some."""
        c = self.config
        rates = k3masks.layer_rates(model, c.prune_rate_fc, c.prune_rate_conv, c.prune_rate_output)
        for layer in k3masks.prunable_layers(model):
            is_conv = not isinstance(layer, keras.layers.Dense)
            if (c.prune_layers == "conv" and not is_conv) or (c.prune_layers == "fc" and is_conv):
                rates[layer.name] = 0.0
        return rates

    def set_seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def precision(self):
        return contextlib.nullcontext()  # mixed precision: refused by Config with keras3

    def trainer(self, nets: list, data, spec) -> Keras3RoundTrainer:
        if len(nets) != 1:
            raise ValueError("the Keras 3 engine trains one network at a time (--parallel_trials=1)")
        return Keras3RoundTrainer(nets[0], data, spec)

    def round_callbacks(self, results_dir: str, trial: int, variant: str, round_: int) -> tuple:
        return ()  # --tensorboard: refused by Config with keras3
