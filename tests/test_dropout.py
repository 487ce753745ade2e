"""Positional dropout: the units dropped are a function of (round key, step, layer) only, so a round resumed
from its backup by a fresh trainer (a new process, in effect) drops exactly what the uninterrupted one did."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.data.pipelines import Dataset
from lth_tf.models import networks
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training import dropout
from lth_tf.training.backup import BackupSlot
from lth_tf.training.schedule import TrainSpec
from lth_tf.training.trainer import RoundTrainer


def dropped(model, key, step, x, variables):
    variables["key"].assign(key)
    variables["step"].assign(step)
    return model(x, training=True).numpy()


def positional_model(rate=0.5):
    inputs = keras.Input((200,))
    model = keras.Model(inputs, keras.layers.Dropout(rate, name="b")(keras.layers.Dropout(rate, name="a")(inputs)))
    step = tf.Variable(0, dtype=tf.int64)
    return model, {"key": dropout.make_positional(model, step), "step": step}


def test_draws_depend_on_key_step_and_layer_only():
    x = np.ones((4, 200), np.float32)
    one, v1 = positional_model()
    out = dropped(one, 7, 3, x, v1)
    assert set(np.unique(out)) == {0.0, 4.0}  # two layers at rate 0.5: kept units scaled by 2 twice
    assert 0.15 < (out != 0).mean() < 0.35  # a unit survives both layers with probability 1/4
    other, v2 = positional_model()  # another model, same (key, step): the same units, whatever the global state
    keras.utils.set_random_seed(123)
    np.testing.assert_array_equal(dropped(other, 7, 3, x, v2), out)
    assert not np.array_equal(dropped(other, 7, 4, x, v2), out)  # the next step
    assert not np.array_equal(dropped(other, 8, 3, x, v2), out)  # another round
    np.testing.assert_array_equal(other(x, training=False).numpy(), x)  # inference drops nothing
    lone = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    assert dropout.make_positional(lone, v1["step"]) is None


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 40)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int32)
    return Dataset("tiny", (40,), 10, "synthetic", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:])


def train_round(dataset, spec, load=None, start_iteration=0):
    """One round of lenet300_100 with dropout 0.3 by a trainer built from scratch; returns (weights, curve, saved)."""
    saved = []
    model = networks.build("lenet300_100", dataset.input_shape, 10, seed=0, dropout=0.3)
    trainer = RoundTrainer(model, dataset, spec)
    start = rewind.snapshot(model)
    result = trainer.train(start, pruning.full_masks(model), data_key=99, start_iteration=start_iteration,
                           backup=BackupSlot(load=lambda: load, save=saved.append))
    return rewind.snapshot(model), result, saved


@pytest.mark.parametrize("start_iteration", [0, 10])  # 10: a late-rewound round (iterations 10..40)
def test_a_round_resumed_by_a_fresh_trainer_equals_the_uninterrupted_round(start_iteration):
    dataset = tiny_data()
    spec = TrainSpec(batch_size=20, learning_rate=0.05, iterations=40, eval_every=10, momentum=0.9, seed=1)
    whole, result, saved = train_round(dataset, spec, start_iteration=start_iteration)
    assert len(saved) == 3 - start_iteration // 10  # after every evaluation but the last
    keras.utils.set_random_seed(1234)  # whatever global random state the resuming process has
    resumed, again, _ = train_round(dataset, spec, load=saved[1], start_iteration=start_iteration)
    assert again.resumed_from == 20 + start_iteration
    assert [p["val_loss"] for p in again.curve] == [p["val_loss"] for p in result.curve]
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)


if __name__ == "__main__":
    pytest.main([__file__])
