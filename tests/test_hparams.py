"""Every training hyperparameter a flag (issue 26): each flag's effect, the recipe as default, the identity of old
directories unchanged, and one-line refusals."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.data import arrays
from lth_tf.experiment import plan
from lth_tf.experiment.config import Config, ConfigError
from lth_tf.models import networks
from lth_tf.training.schedule import TrainSpec, _Schedule, make_optimizer
from lth_tf.training.streams import train_stream
from lth_tf.training.trainer import RoundTrainer
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the identity of existing results directories ---------------------------------------------------------------
@pytest.mark.parametrize("fields, main_hash", [
    (dict(), "0263153d2345a04e"),  # computed on main before the flags existed
    (dict(model="resnet18", dataset="cifar10"), "a21fad5e6033d2b0"),
    (dict(model="conv2", dataset="cifar10", iterations=60), "6e49fcc25161a508"),
])
def test_a_config_of_the_recipe_keeps_the_hash_it_had_before_the_flags(fields, main_hash):
    assert Config(**fields).resolve().identity_hash() == main_hash


def test_the_recipe_written_out_keeps_the_hash_and_anything_else_changes_it():
    base = Config(model="resnet18", dataset="cifar10").resolve()
    same = Config(model="resnet18", dataset="cifar10", weight_decay=1e-4, lr_drops=(20_000, 25_000), lr_gamma=0.1,
                  warmup=0, nesterov=False, init="glorot", augment=True, random_labels=0.0,
                  batchnorm_frozen=False, output_frozen=False).resolve()
    assert same.identity_hash() == base.identity_hash()
    for change in [dict(weight_decay=5e-4), dict(lr_drops=(10_000,)), dict(lr_gamma=0.2), dict(warmup=100),
                   dict(nesterov=True), dict(init="he"), dict(augment=False), dict(train_subset=1000),
                   dict(random_labels=0.1), dict(batchnorm_frozen=True), dict(output_frozen=True)]:
        cfg = Config(model="resnet18", dataset="cifar10", **change).resolve()
        assert cfg.identity_hash() != base.identity_hash(), change
    resolved = base.to_dict()  # config.json shows the resolved values
    assert (resolved["weight_decay"], resolved["lr_drops"], resolved["lr_gamma"], resolved["warmup"],
            resolved["nesterov"], resolved["init"], resolved["augment"]) == (1e-4, [20_000, 25_000], 0.1, 0, False,
                                                                               "glorot", True)
    assert Config(model="resnet18_warmup", dataset="cifar10").resolve().warmup == 20_000


def test_epochs_are_written_ep_and_resolved_to_iterations():
    cfg = Config(model="vgg19", dataset="cifar10", lr_drops=("80ep", "120ep"), warmup="0.5ep").resolve()
    assert cfg.steps_per_epoch == 704  # 45,000 / 64, rounded up
    assert (cfg.lr_drops, cfg.warmup) == ((80 * 704, 120 * 704), 352)
    assert cfg.resolve() == cfg  # resolving twice changes nothing
    spec = plan.train_spec(cfg, trial_seed=0)
    assert (spec.lr_boundaries, spec.warmup_iterations, spec.lr_gamma, spec.augment) == ((56_320, 84_480), 352,
                                                                                         0.1, True)


@pytest.mark.parametrize("fields, message", [
    (dict(lr_drops=(30, 20), iterations=100), "--lr_drops must be positive and increasing, got 30,20"),
    (dict(lr_drops=(0,), iterations=100), "--lr_drops must be positive and increasing"),
    (dict(lr_drops=(100,), iterations=100), "--lr_drops: a drop at iteration 100 is beyond training (100"),
    (dict(lr_drops=("2ep",), epochs=1), "--lr_drops: a drop at iteration 240 is beyond training"),
    (dict(lr_drops=("8x",)), "--lr_drops: '8x' is neither iterations"),
    (dict(lr_drops=("ep",)), "--lr_drops: 'ep' is neither iterations"),
    (dict(warmup="-1ep"), "--warmup: '-1ep' is neither"),
    (dict(warmup=-5), "--warmup must be >= 0"),
    (dict(weight_decay=-1e-4), "--weight_decay must be >= 0"),
    (dict(lr_gamma=0.0), r"--lr_gamma must be in (0, 1]"),
    (dict(lr_gamma=1.5), r"--lr_gamma must be in (0, 1]"),
    (dict(init="xavier"), "--init must be one of normal, glorot, he"),
    (dict(model="lenet300_100_iclr", nesterov=True), "--nesterov needs --optimizer=sgd"),
])
def test_bad_hyperparameters_are_refused_in_one_line(fields, message):
    with pytest.raises(ConfigError) as e:
        Config(**fields).resolve()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_short_run_of_a_model_keeps_its_recipe_drops():  # resnet18's drops at 20K, 25K are not the user's
    assert Config(model="resnet18", dataset="cifar10", iterations=60).resolve().lr_drops == (20_000, 25_000)


# ---- the learning rate actually used ----------------------------------------------------------------------------
def applied_rates(spec, steps, offset=0):
    """The learning rate of each SGD step, read from the update of a weight whose gradient is 1."""
    optimizer, w = make_optimizer(spec), tf.Variable(0.0)
    if offset:
        optimizer._learning_rate.offset.assign(offset)  # as RoundTrainer does for a late-rewound round
    rates = []
    for _ in range(steps):
        before = float(w.numpy())
        optimizer.apply_gradients([(tf.constant(1.0), w)])
        rates.append(before - float(w.numpy()))
    return np.array(rates)


def test_the_learning_rate_drops_by_gamma_after_a_linear_warmup():
    spec = TrainSpec(batch_size=1, learning_rate=0.1, iterations=20, lr_boundaries=(6, 9), lr_gamma=0.5,
                     warmup_iterations=4)
    expected = [0.1 * min(1, (t + 1) / 4) * 0.5 ** ((t >= 6) + (t >= 9)) for t in range(12)]
    np.testing.assert_allclose(applied_rates(spec, 12), expected, rtol=1e-5)
    # a late-rewound round (offset k = 5) continues the schedule from iteration 5
    np.testing.assert_allclose(applied_rates(spec, 5, offset=5), expected[5:10], rtol=1e-5)
    plain = TrainSpec(batch_size=1, learning_rate=0.1, iterations=20, lr_boundaries=(3,))  # the default gamma 0.1
    np.testing.assert_allclose(applied_rates(plain, 5), [0.1, 0.1, 0.1, 0.01, 0.01], rtol=1e-5)


def test_nesterov_momentum_takes_the_look_ahead_step():
    def updates(nesterov):
        spec = TrainSpec(batch_size=1, learning_rate=0.1, iterations=3, momentum=0.9, nesterov=nesterov)
        return applied_rates(spec, 3)
    # heavy ball: v = 0.9 v - 0.1 g, w += v; Nesterov: w += 0.9 v - 0.1 g (the gradient is 1 throughout)
    np.testing.assert_allclose(updates(False), [0.1, 0.19, 0.271], rtol=1e-5)
    np.testing.assert_allclose(updates(True), [0.19, 0.271, 0.3439], rtol=1e-5)
    cfg = Config(momentum=0.9, nesterov=True, iterations=60).resolve()
    assert plan.train_spec(cfg, 0).nesterov and make_optimizer(plan.train_spec(cfg, 0)).nesterov


# ---- weight decay and initialisation -----------------------------------------------------------------------------
def test_weight_decay_adds_exactly_wd_times_w_to_each_kernel_gradient():
    model = networks.build("lenet300_100", (40,), 10, seed=0, weight_decay=0.01)
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    kernels = [layer.kernel for layer in pruning.prunable_layers(model)]
    for grad, kernel in zip(tape.gradient(penalty, kernels), kernels):
        np.testing.assert_allclose(grad.numpy(), 0.01 * kernel.numpy(), rtol=1e-6)
    assert networks.build("resnet18", (32, 32, 3), 10, weight_decay=0.0).losses == []  # the recipe's 1e-4 is off
    assert len(networks.build("resnet18", (32, 32, 3), 10).losses) == 22  # ... and on by default


@pytest.mark.parametrize("init", ["normal", "glorot", "he"])
def test_each_initialisation_has_its_standard_deviation_truncated_at_two(init):
    model = networks.build("lenet300_100", (784,), 10, seed=1, init=init)
    for layer in pruning.prunable_layers(model)[:2]:  # 784x300 and 300x100: enough draws for 2% accuracy
        w = layer.kernel.numpy()
        fan_in, fan_out = w.shape
        # A normal truncated at 2 sigma has std 0.8796 sigma. "normal" is the paper's TF truncated normal with
        # sigma 0.1; glorot and he are rescaled (sigma = std / 0.8796) so that the drawn weights have their std.
        std = {"normal": 0.1 * 0.87962566, "glorot": np.sqrt(2 / (fan_in + fan_out)), "he": np.sqrt(2 / fan_in)}[init]
        assert abs(w.std() / std - 1) < 0.02, (init, layer.name, w.std(), std)
        bound = 0.2 if init == "normal" else 2 * std / 0.87962566  # 2 sigma
        assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.9 * bound


# ---- frozen BatchNorm and output layer; augmentation -------------------------------------------------------------
def conv_bn_net(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv1", kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    outputs = keras.layers.Dense(3, name="output", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, size=80)
    return arrays.from_arrays(x[:60], y[:60], x[60:], y[60:])


@pytest.mark.parametrize("optimizer, trainer", [("sgd", "masked"), ("adam", "masked"), ("sgd", "tfmot")])
def test_frozen_batchnorm_and_output_keep_their_start_values(images, optimizer, trainer):
    model = conv_bn_net()
    start = rewind.snapshot(model)
    spec = TrainSpec(batch_size=10, learning_rate=0.05, iterations=12, eval_every=6, momentum=0.9,
                     optimizer=optimizer, batchnorm_frozen=True, output_frozen=True, trainer=trainer)
    after = RoundTrainer(model, images, spec).train(start, pruning.full_masks(model)).weights
    for key in ("bn1/gamma", "bn1/beta", "output/kernel", "output/bias"):
        assert np.array_equal(after[key], start[key]), key  # exactly: weight decay and momentum included
    assert not np.array_equal(after["conv1/kernel"], start["conv1/kernel"])  # the rest trains
    assert not np.array_equal(after["bn1/moving_mean"], start["bn1/moving_mean"])  # batch statistics still used
    unfrozen = RoundTrainer(model, images, TrainSpec(batch_size=10, learning_rate=0.05, iterations=12,
                                                     eval_every=6, optimizer=optimizer)).train(start, {}).weights
    assert not np.array_equal(unfrozen["bn1/gamma"], start["bn1/gamma"])
    assert not np.array_equal(unfrozen["output/kernel"], start["output/kernel"])


def test_augment_follows_the_recipe_and_the_flag(images):
    assert plan.train_spec(Config(model="resnet18", dataset="cifar10").resolve(), 0).augment
    assert not plan.train_spec(Config(model="resnet18", dataset="cifar10", augment=False).resolve(), 0).augment
    assert plan.train_spec(Config(model="conv2", dataset="cifar10", augment=True).resolve(), 0).augment
    assert not plan.train_spec(Config(model="conv2", dataset="cifar10").resolve(), 0).augment
    x, y = tf.constant(images.x_train), tf.constant(images.y_train)
    plain = next(iter(train_stream(x, y, 60, key=3)))
    augmented = next(iter(train_stream(x, y, 60, key=3, augment=True)))
    assert np.array_equal(plain[1].numpy(), augmented[1].numpy())  # the same examples in the same order ...
    rows = {row.tobytes() for row in images.x_train}
    assert all(row.tobytes() in rows for row in plain[0].numpy())  # ... as stored without augmentation,
    assert sum(row.tobytes() not in rows for row in augmented[0].numpy()) > 30  # flipped or shifted with it


# ---- the command line ------------------------------------------------------------------------------------------
def test_every_flag_reaches_the_run_and_config_json(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=0", "--iterations=30", "--eval_every=30",
            "--weight_decay=1e-3", "--lr_drops=20", "--lr_gamma=0.5", "--warmup=0.1ep", "--nesterov", "--momentum=0.9",
            "--init=he", "--output_frozen", "--train_subset=1200", "--random_labels=0.1", f"--output_dir={out}"]
    result = subprocess.run([sys.executable, "-m", "lth_tf.main", *args], capture_output=True, text=True, env=env,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "; training subset of 1200; 0.1 of the training labels random)" in result.stdout
    config = json.loads((out / "config.json").read_text())["config"]
    assert {k: config[k] for k in ("weight_decay", "lr_drops", "lr_gamma", "warmup", "nesterov", "init",
                                   "output_frozen", "train_subset", "random_labels", "augment")} == dict(
        weight_decay=1e-3, lr_drops=[20], lr_gamma=0.5, warmup=2, nesterov=True, init="he", output_frozen=True,
        train_subset=1200, random_labels=0.1, augment=False)  # 0.1 epoch of 1200 examples at batch 60: 2 steps
    with open(out / "results.csv") as f:
        assert [int(r["round"]) for r in csv.DictReader(f)] == [0]
    from lth_tf.experiment.store import Store
    store = Store(str(out))
    initial, trained = store.load_weights(0, "initial"), store.load_round(0, "lottery", 0, "weights")
    for key in ("output/kernel", "output/bias"):  # --output_frozen
        assert np.array_equal(initial[key], trained[key]), key
    assert not np.array_equal(initial["fc1/kernel"], trained["fc1/kernel"])
