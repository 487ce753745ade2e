"""A round whose loss stops being finite stops at that evaluation (training.curve.Diverged): named by its job's
label and iteration, with no backup of the diverged state (issue 28). The command line's case is in
test_hostile.py."""
import json
import os

import numpy as np
import pytest
import tf_keras as keras

from lth_tf.data.pipelines import Dataset
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training.backup import BackupSlot
from lth_tf.training.curve import Diverged
from lth_tf.training.schedule import TrainSpec
from lth_tf.training.trainer import Job, RoundTrainer


def tiny_data():
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        return x, (x[:, 0] > 0).astype(np.int32)
    (xt, yt), (xv, yv), (xs, ys) = split(120), split(20), split(20)
    return Dataset("tiny", (6,), 2, "random, in memory", xt, yt, xv, yv, xs, ys)


class Poison(keras.callbacks.Callback):
    """After the first evaluation point (and after the backup saved it), sets one weight to NaN."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            kernel = self.net.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_a_nan_loss_stops_the_round_and_no_backup_of_it_is_saved():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="output")(keras.layers.Dense(8, name="fc1")(inputs)))
    trainer = RoundTrainer(model, tiny_data(), TrainSpec(batch_size=10, learning_rate=0.05, iterations=60,
                                                         eval_every=20))
    saved = []
    job = Job(rewind.snapshot(model), pruning.full_masks(model), callbacks=(Poison(model),),
              backup=BackupSlot(load=lambda: None, save=lambda arrays: saved.append(arrays)),
              label="trial 4 reinit round 2")
    with pytest.raises(Diverged) as e:
        trainer.train_many([job])
    assert (e.value.iteration, e.value.quantity) == (40, "train loss")
    assert str(e.value).startswith("trial 4 reinit round 2 diverged at iteration 40 (train loss is nan)")
    # The state at iteration 20 (finite) was backed up; the diverged one at 40 never was.
    assert [int(json.loads(str(a["meta"]))["iteration"]) for a in saved] == [20]
    assert all(np.isfinite(v).all() for k, v in saved[0].items() if k.startswith("net/"))


def test_the_experiment_removes_the_diverged_rounds_backup_and_stores_nothing(tmp_path):
    from lth_tf.experiment import experiment
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.store import Store
    cfg = Config(model="lenet300_100", dataset="mnist1d", rounds=0, iterations=60, eval_every=30,
                 learning_rate=1000.0, output_dir=str(tmp_path / "run")).resolve()
    store = Store(cfg.output_dir)
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        store.save_backup(0, "lottery", 0, {"meta": np.array("{}")})  # an earlier run's (unusable) backup
        with pytest.raises(Diverged, match=r"^trial 0 lottery round 0 diverged at iteration 30 \("):
            experiment.run(cfg, store, dataset=tiny_data())
    round_dir = store.round_dir(0, "lottery", 0)
    assert not os.path.exists(os.path.join(round_dir, "backup")) and not store.is_done(0, "lottery", 0)
    assert not os.path.exists(os.path.join(cfg.output_dir, "results.csv"))
