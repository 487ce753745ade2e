"""The tf_keras training engine: what the experiment loop does with models, behind one small object.

The experiment (lth_tf.experiment.experiment) handles weights and masks as plain data, {"layer/weight": ndarray}
and {layer: bool ndarray}; an engine turns them into models and trained rounds. Two engines have the same
methods: this one (tf_keras, tfmot's Keras 2: today's code, unchanged) and lth_tf.keras3.engine (Keras 3 on
TensorFlow, JAX or PyTorch). lth_tf.experiment.engines picks one from Config.engine.

    engine = TfKerasEngine(config, strategy=None)
    model = engine.build(data, seed=0)
    engine.snapshot(model)               # {"fc1/kernel": ndarray, ...}
    trainer = engine.trainer([model], data, spec)   # RoundTrainer: train_many(jobs) -> [RoundResult]
"""
from __future__ import annotations

import contextlib

from lth_tf import _env  # noqa: F401
import tf_keras as keras

from lth_tf.models import networks, specs, user
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training import summaries
from lth_tf.training.schedule import precision_policy
from lth_tf.training.trainer import RoundTrainer


class TfKerasEngine:
    """tf_keras models, tfmot masks, lth_tf.training's RoundTrainer; `strategy`: a tf.distribute strategy or None."""

    name = "tf_keras"

    def __init__(self, config, strategy=None):
        self.config, self.strategy = config, strategy
        self.scope = strategy.scope if strategy is not None else contextlib.nullcontext

    def build(self, data, seed: int):
        with self.scope():
            if specs.is_user_model(self.config.model):  # --model=package.module:function
                return user.build(self.config.model, seed=seed, weight_decay=self.config.weight_decay or 0.0)
            return networks.build(self.config.model, data.input_shape, data.num_classes, seed=seed,
                                  dropout=self.config.dropout, init=self.config.init,
                                  weight_decay=self.config.weight_decay)

    def snapshot(self, model) -> dict:
        return rewind.snapshot(model)

    def restore(self, model, weights: dict, masks: dict) -> None:
        rewind.restore(model, weights, masks=masks)

    def full_masks(self, model) -> dict:
        return pruning.full_masks(model)

    def layer_rates(self, model) -> dict:
        c = self.config
        return pruning.layer_rates(model, c.prune_rate_fc, c.prune_rate_conv, c.prune_rate_output, c.prune_layers)

    def set_seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def precision(self):
        """Models are built inside: Keras reads the mixed-precision policy when a layer is made."""
        return precision_policy(self.config.mixed_precision)

    def trainer(self, nets: list, data, spec) -> RoundTrainer:
        with self.scope():
            return RoundTrainer(nets if len(nets) > 1 else nets[0], data, spec)

    def round_callbacks(self, results_dir: str, trial: int, variant: str, round_: int) -> tuple:
        """One TensorBoard run per round with --tensorboard."""
        if not self.config.tensorboard:
            return ()
        return (summaries.RoundSummaries(summaries.round_log_dir(results_dir, trial, variant, round_)),)
