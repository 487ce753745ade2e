"""The paper's networks: shapes, prunable-weight counts, initialisers, weight decay, per-model defaults, dropout,
and ResNet's BatchNorm.

    python3 -m pytest -q tests/test_paper_models.py

Counts are checked against the table of the paper version each model follows (arXiv v1 Figure 1, or ICLR 2019
Figure 2), and against the exact count of the layer layout (so a changed layer is caught even where the paper
rounds). What is counted: the kernels of Dense and Conv2D layers, the weights lth_tf prunes; biases and
BatchNorm parameters are never pruned and not counted.
"""
import dataclasses
import glob
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.data.datasets import DATASETS
from lth_tf.data.pipelines import Dataset
from lth_tf.experiment import experiment, plan
from lth_tf.experiment import store as store_lib
from lth_tf.experiment.config import Config
from lth_tf.models import networks, specs
from lth_tf.pruning import masks as pruning

CIFAR, MNIST = (32, 32, 3), (28, 28, 1)

# model, input shape, exact prunable weights (total, in convolutions), the paper's table (total, conv) as
# (value, place of its last digit); None where the paper gives no figure (or no convolutions).
PAPER_COUNTS = [
    # arXiv v1, Figure 1
    ("lenet300_100", MNIST, 266_200, 0, (266e3, 1e3), None),
    ("conv2", CIFAR, 1_755_712, 107_200, (1.75e6, 1e4), (107e3, 1e3)),
    ("conv4", CIFAR, 1_147_072, 259_776, (1.15e6, 1e4), (260e3, 1e3)),  # `valid` 3x3: fc1 is 3200x256
    # 1x1 projection shortcuts at the two width changes included (2,560 weights): without them 267,696 conv.
    ("resnet18", CIFAR, 270_896, 270_256, (271e3, 1e3), (270e3, 1e3)),
    ("vgg19", CIFAR, 20_024_000, 20_018_880, (20.0e6, 1e5), (20.0e6, 1e5)),  # ICLR Section 4
    # ICLR 2019, Figure 2
    ("lenet300_100_iclr", MNIST, 266_200, 0, (266e3, 1e3), None),
    ("conv2_iclr", CIFAR, 4_300_992, 38_592, (4.3e6, 1e5), (38e3, 1e3)),
    ("conv4_iclr", CIFAR, 2_425_024, 259_776, (2.4e6, 1e5), (260e3, 1e3)),  # `same` 3x3: fc1 is 8192x256
    # Figure 2 says 1.7M for Conv-6, but its own layout (3 pools -> 4x4x256 -> 256) has 2.26M: the first
    # dense layer alone holds 1.05M. The convolutions match the paper's 1.1M.
    ("conv6", CIFAR, 2_261_184, 1_144_512, None, (1.1e6, 1e5)),
]


def counts(model):
    kernels = pruning.kernels(model)
    total = sum(k.size for k in kernels.values())
    conv = sum(k.size for k in kernels.values() if k.ndim == 4)
    return total, conv


def test_every_base_model_has_its_count():
    bases = {spec.builder or name for name, spec in specs.MODELS.items()} | {"lenet300_100_iclr"}
    assert bases <= {c[0] for c in PAPER_COUNTS}


@pytest.mark.parametrize("name,shape,total,conv,paper_total,paper_conv", PAPER_COUNTS,
                         ids=[c[0] for c in PAPER_COUNTS])
def test_prunable_weights_match_the_paper(name, shape, total, conv, paper_total, paper_conv):
    model = networks.build(name, shape, 10, seed=0)
    assert model.output_shape == (None, 10)
    assert counts(model) == (total, conv)
    # The paper's figures agree with the layout to the precision they are printed at (1.755M is its "1.75M").
    for exact, paper in ((total, paper_total), (conv, paper_conv)):
        if paper is not None:
            value, place = paper
            assert abs(exact - value) < place, (name, exact, value)


def test_conv4_is_valid_and_refuses_small_images():
    model = networks.build("conv4", CIFAR, 10)
    assert [l.padding for l in model.layers if isinstance(l, keras.layers.Conv2D)] == ["valid"] * 4
    assert model.get_layer("fc1").kernel.shape == (3200, 256)
    assert model.get_layer("pool2").output_shape == (None, 5, 5, 128)
    assert networks.build("conv4_iclr", CIFAR, 10).get_layer("fc1").kernel.shape == (8192, 256)
    networks.build("conv4", (16, 16, 1), 10)  # the smallest image with a pixel left after the last pool
    with pytest.raises(ValueError, match="at least 16x16 pixels"):
        networks.build("conv4", (15, 15, 1), 10)
    assert specs.fits("conv4_iclr", (15, 15, 1)) is None


# Normal Xavier: arXiv v1 Figure 1 for Conv-4 and Resnet-18, lth_tf's choice for VGG-19, ICLR Figure 2 for all.
GLOROT = ["conv4", "resnet18", "vgg19", "lenet300_100_iclr", "conv2_iclr", "conv4_iclr", "conv6"]
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated at +-2


@pytest.mark.parametrize("name", GLOROT + ["lenet300_100", "conv2"])
def test_initialisers_are_the_papers(name):
    """Glorot normal truncated at two standard deviations (or, for v1's Lenet and Conv-2, normal std 0.1)."""
    model = networks.build(name, MNIST if name.startswith("lenet") else CIFAR, 10, seed=1)
    layers = pruning.prunable_layers(model)
    assert layers
    for layer in layers:
        init, kernel = layer.kernel_initializer, layer.kernel.numpy()
        if name in GLOROT:
            assert type(init) is keras.initializers.GlorotNormal, (name, layer.name, type(init))
            assert (init.scale, init.mode, init.distribution) == (1.0, "fan_avg", "truncated_normal")
            receptive = int(np.prod(kernel.shape[:-2]))
            fan_in, fan_out = receptive * kernel.shape[-2], receptive * kernel.shape[-1]
            std = math.sqrt(2.0 / (fan_in + fan_out))  # Glorot & Bengio's standard deviation, after truncation
        else:
            assert type(init) is keras.initializers.TruncatedNormal and init.stddev == 0.1
            std = 0.1 * TRUNCATED_STD
        bound = 2 * std / TRUNCATED_STD  # two standard deviations of the normal before truncation
        assert np.abs(kernel).max() <= bound * (1 + 1e-6), (name, layer.name)
        if kernel.size >= 20_000:  # enough draws to see the distribution: it fills the range and has std `std`
            assert np.abs(kernel).max() > 0.97 * bound, (name, layer.name)
            assert abs(kernel.std() / std - 1) < 0.03, (name, layer.name, kernel.std(), std)


@pytest.mark.parametrize("name", ["resnet18", "vgg19_warmup"])
def test_weight_decay_gradient_is_the_papers(name):
    """Weight decay 1e-4 means a decay gradient of 1e-4 * w on every kernel (not Keras L2(1e-4)'s 2e-4 * w)."""
    model = networks.build(name, CIFAR, 10, seed=0)
    decay = specs.MODELS[name].weight_decay
    assert decay == 1e-4
    kernels = [layer.kernel for layer in pruning.prunable_layers(model)]
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, kernels)
    assert len(model.losses) == len(kernels)  # every Conv2D/Dense kernel, nothing else (no BatchNorm, no bias)
    for kernel, grad in zip(kernels, grads):
        np.testing.assert_allclose(grad.numpy(), decay * kernel.numpy(), rtol=1e-5, atol=1e-12)
    expected = decay / 2 * sum(float(np.sum(k.numpy().astype(np.float64) ** 2)) for k in kernels)
    assert float(penalty) == pytest.approx(expected, rel=1e-5)


def test_weight_decay_comes_from_the_spec(monkeypatch):
    assert not networks.build("lenet300_100", MNIST, 10).losses  # weight_decay 0: no penalty at all
    monkeypatch.setitem(specs.MODELS, "lenet300_100",
                        dataclasses.replace(specs.MODELS["lenet300_100"], weight_decay=3e-4))
    model = networks.build("lenet300_100", MNIST, 10)
    kernel = model.get_layer("fc2").kernel
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    np.testing.assert_allclose(tape.gradient(penalty, kernel).numpy(), 3e-4 * kernel.numpy(), rtol=1e-5)


# model, dataset, default epochs, iterations per round (epochs x ceil(45K or 55K training images / batch)).
TRAINING_LENGTHS = [
    ("lenet300_100", "mnist", 50, 50 * 917),  # arXiv v1 Figure 1: epochs
    ("conv2", "cifar10", 30, 30 * 900),
    ("conv4", "cifar10", 20, 20 * 900),
    ("resnet18", "cifar10", 85, 85 * 352),  # ~30K iterations at batch 128, after the drops at 20K and 25K
    ("resnet18_warmup", "cifar10", 85, 85 * 352),
    # The paper gives iterations: whole epochs nearest to them, as before.
    ("vgg19", "cifar10", 160, 160 * 704),  # ICLR Section 4: 160 epochs (112,480 iterations) at batch 64
    ("lenet300_100_iclr", "mnist", 55, 55 * 917),  # 50K at batch 60
    ("conv2_iclr", "cifar10", 27, 27 * 750),  # 20K
    ("conv4_iclr", "cifar10", 33, 33 * 750),  # 25K
    ("conv6", "cifar10", 40, 40 * 750),  # 30K
]


@pytest.mark.parametrize("name,dataset,epochs,iterations", TRAINING_LENGTHS, ids=[t[0] for t in TRAINING_LENGTHS])
def test_default_training_length(name, dataset, epochs, iterations):
    cfg = Config(model=name, dataset=dataset).resolve()
    assert (cfg.epochs, cfg.round_iterations) == (epochs, iterations)
    spec = specs.MODELS[name]
    if spec.lr_boundaries:
        assert spec.lr_boundaries[-1] < iterations
    # Flags still win.
    assert Config(model=name, dataset=dataset, epochs=2).resolve().epochs == 2
    assert Config(model=name, dataset=dataset, iterations=7).resolve().round_iterations == 7


def test_every_spec_has_a_training_length():
    assert {n for n, s in specs.MODELS.items() if s.epochs is None and s.iterations is None} == set()
    assert {t[0] for t in TRAINING_LENGTHS} | {"vgg19_warmup"} == set(specs.MODELS)
    # Figure 1 of arXiv v1 gives epochs; everything else (ICLR Figure 2, VGG-19) gives iterations.
    assert {n: s.epochs for n, s in specs.MODELS.items() if s.epochs is not None} == {
        "lenet300_100": 50, "conv2": 30, "conv4": 20, "resnet18": 85, "resnet18_warmup": 85}


@pytest.mark.parametrize("name", sorted(specs.MODELS))
def test_every_model_builds_on_its_datasets(name):
    lenet = name.startswith("lenet")
    datasets = ["mnist1d", "fashion_mnist"] if lenet else ["cifar10", "fashion_mnist"]
    for dataset in datasets:
        cfg = Config(model=name, dataset=dataset).resolve()
        spec = DATASETS[dataset]
        model = networks.build(name, spec.input_shape, spec.num_classes, seed=0)
        assert model.output_shape == (None, spec.num_classes)
        assert set(pruning.layer_rates(model, cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output)) \
            == {layer.name for layer in pruning.prunable_layers(model)}
    if not lenet:  # image models refuse MNIST-1D's vectors with one clear message
        with pytest.raises(Exception, match="needs image inputs"):
            Config(model=name, dataset="mnist1d").resolve()


def test_models_are_a_function_of_their_seed():
    a, b, c = (pruning.kernels(networks.build("conv4", CIFAR, 10, seed=s)) for s in (3, 3, 4))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name])


def test_paper_defaults_per_model():
    """Figure 2's pruning rates and Section 4's training settings."""
    expect = {  # model: (fc, conv, output)
        "lenet300_100": (0.2, 0.1, 0.1), "conv2": (0.2, 0.1, 0.1), "conv4": (0.2, 0.1, 0.1),
        "lenet300_100_iclr": (0.2, 0.1, 0.1), "conv2_iclr": (0.2, 0.1, 0.1), "conv4_iclr": (0.2, 0.1, 0.1),
        "conv6": (0.2, 0.15, 0.1), "resnet18": (0.0, 0.2, 0.0), "vgg19": (0.0, 0.2, 0.0)}
    for name, rates in expect.items():
        cfg = Config(model=name, dataset="cifar10" if not name.startswith("lenet") else "mnist").resolve()
        assert (cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output) == rates, name
    # Explicit flags still win over the model's defaults.
    cfg = Config(model="conv6", dataset="cifar10", prune_rate_conv=0.3, prune_rate_fc=0.5).resolve()
    assert (cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output) == (0.5, 0.3, 0.25)
    # ICLR Figure 2: Adam at batch 60, with each network's learning rate and iterations.
    iclr = {"lenet300_100_iclr": (1.2e-3, 50_000), "conv2_iclr": (2e-4, 20_000), "conv4_iclr": (3e-4, 25_000),
            "conv6": (3e-4, 30_000)}
    for name, (rate, iterations) in iclr.items():
        spec = specs.MODELS[name]
        assert (spec.optimizer, spec.batch_size, spec.learning_rate, spec.iterations) == ("adam", 60, rate, iterations)
        assert (spec.init, spec.weight_decay, spec.momentum) == ("glorot", 0.0, 0.0)
        cfg = Config(model=name, dataset="mnist" if name.startswith("lenet") else "cifar10").resolve()
        assert (cfg.optimizer, cfg.batch_size, cfg.learning_rate) == ("adam", 60, rate)
    # arXiv v1 Figure 1: SGD.
    for name in ("lenet300_100", "conv2", "conv4", "resnet18", "vgg19"):
        assert Config(model=name, dataset="cifar10" if name != "lenet300_100" else "mnist").resolve().optimizer \
            == "sgd"
    assert specs.MODELS["lenet300_100_iclr"].builder == "lenet300_100"  # the same network as v1's Lenet
    # ResNet-18 and VGG-19: SGD with momentum, 10x drops, warm-up only in the *_warmup variants (Figures 7, 8).
    for name, warmup in (("resnet18", 0), ("resnet18_warmup", 20_000), ("vgg19", 0), ("vgg19_warmup", 10_000)):
        cfg = Config(model=name, dataset="cifar10").resolve()
        spec = plan.train_spec(cfg, 0)
        assert spec.warmup_iterations == warmup
        assert (spec.optimizer, spec.momentum, spec.learning_rate) == ("sgd", 0.9, 0.1)
        assert len(spec.lr_boundaries) == 2 and spec.augment
    assert Config(model="resnet18", dataset="cifar10", learning_rate=0.01).resolve().learning_rate == 0.01
    # Variants share the architecture (and so the count) of their base model.
    assert counts(networks.build("vgg19_warmup", CIFAR, 10)) == counts(networks.build("vgg19", CIFAR, 10))


@pytest.mark.parametrize("name", ["vgg19", "vgg19_warmup"])
def test_vgg19_trains_the_iclr_schedule(name):
    """ICLR Section 4: VGG-19 trains 160 epochs = 112,480 iterations at batch 64 (703 iterations per epoch of
    45,000 images), the learning rate dropped 10x at epochs 80 and 120, i.e. at iterations 56,240 and 84,360."""
    from lth_tf.training.schedule import make_optimizer

    epoch = 45_000 // 64
    assert (epoch, 160 * epoch) == (703, 112_480)
    spec = specs.MODELS[name]
    assert (spec.iterations, spec.lr_boundaries, spec.batch_size) == (160 * epoch, (80 * epoch, 120 * epoch), 64)
    cfg = Config(model=name, dataset="cifar10", iterations=112_480, eval_every=epoch).resolve()
    train = plan.train_spec(cfg, 0)
    assert train.total_iterations == 112_480
    schedule = make_optimizer(train)._learning_rate  # the schedule the optimizer reads at each step
    steps = (spec.warmup_iterations, 56_239, 56_240, 84_359, 84_360, 112_479)
    rates = [float(schedule(tf.constant(step, tf.int64))) for step in steps]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


@pytest.mark.parametrize("name", ["conv2", "conv4", "lenet300_100", "conv2_iclr", "conv4_iclr", "conv6"])
def test_dropout_adds_dropout_layers(name):
    shape = MNIST
    plain = networks.build(name, shape, 10, seed=0)
    dropped = networks.build(name, shape, 10, seed=0, dropout=0.5)
    assert not [l for l in plain.layers if isinstance(l, keras.layers.Dropout)]
    drops = [l for l in dropped.layers if isinstance(l, keras.layers.Dropout)]
    assert len(drops) == 2 and all(l.rate == 0.5 for l in drops)  # after each hidden dense layer
    x = np.ones((4, *shape), np.float32)
    # Inference ignores dropout; training drops units, so the outputs change.
    np.testing.assert_allclose(dropped(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5)
    assert not np.allclose(dropped(x, training=True).numpy(), dropped(x, training=False).numpy())


def test_resnet18_prunes_convolutions_and_leaves_batchnorm(tmp_path):
    """One pruning round of resnet18 through the experiment on random CIFAR-shaped data."""
    rng = np.random.default_rng(0)
    x = rng.random((96, *CIFAR), dtype=np.float32)
    y = rng.integers(0, 10, 96).astype(np.int32)
    ds = Dataset("fake_cifar", CIFAR, 10, "random arrays", x[:64], y[:64], x[64:80], y[64:80],
                          x[80:], y[80:])
    cfg = Config(model="resnet18", dataset="cifar10", rounds=1, iterations=3, eval_every=3, batch_size=16,
                 output_dir=str(tmp_path / "resnet")).resolve()
    store = store_lib.Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, dataset=ds)
    masks = store.load_round(0, "lottery", 1, "masks")
    start = store.load_round(0, "lottery", 1, "start_weights")
    trained = store.load_round(0, "lottery", 1, "weights")
    assert masks and all(name.startswith("conv") or name == "output" for name in masks)
    assert masks["output"].all()  # fc 0%: the output layer stays dense
    convs = [m for name, m in masks.items() if name != "output"]
    # Global pruning (Section 4): 20% of all convolution weights by one threshold, so layers lose unequal shares.
    assert sum(int(m.sum()) for m in convs) == round(sum(m.size for m in convs) * 0.8)
    assert len({round(float(m.mean()), 3) for m in convs}) > 3
    bn = [k for k in start if k.startswith("bn")]
    assert len(bn) == 4 * 21  # gamma, beta, moving mean and variance of all 21 BatchNorm layers
    initial = store.load_weights(0, "initial")
    for key in bn:  # round 1 starts from the initial BatchNorm parameters, untouched by any mask
        np.testing.assert_array_equal(start[key], initial[key])
    gammas = [k for k in bn if k.endswith("gamma")]
    assert all(np.all(start[k] == 1.0) for k in gammas)
    assert all(np.all(trained[k] != 0) for k in gammas)
    assert any(not np.allclose(trained[k], start[k]) for k in gammas)  # trained, not masked


def test_global_pruning_ranks_layers_together():
    rng = np.random.default_rng(0)
    kernels = {"small": rng.normal(0, 0.1, (10, 10)), "large": rng.normal(0, 1.0, (10, 10)),
               "output": rng.normal(0, 0.01, (10, 2))}
    rates = {"small": 0.2, "large": 0.2, "output": 0.0}
    masks = {n: np.ones(k.shape, bool) for n, k in kernels.items()}
    one = pruning.prune_global(kernels, masks, rates)
    assert one["output"].all()  # rate 0: not in the pool, even with the smallest weights
    assert one["small"].sum() + one["large"].sum() == 160
    assert one["small"].sum() < 80 < one["large"].sum()  # the small-magnitude layer loses more
    two = pruning.prune_global(kernels, one, rates)
    assert two["small"].sum() + two["large"].sum() == 128
    assert not any((two[n] & ~one[n]).any() for n in kernels)  # nested
    # One-shot global to round 2 ranks the same weights at once: here the same masks as two iterative steps.
    shot = pruning.prune_oneshot_global(kernels, rates, 2)
    assert all(np.array_equal(shot[n], two[n]) for n in kernels)


FLAGFILES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags",
                                          "fig*.flags")))


@pytest.mark.parametrize("path", FLAGFILES, ids=[os.path.basename(p) for p in FLAGFILES])
def test_figure_flagfiles_resolve(path):
    """Each figure's flagfile names its figure in its header and parses into a valid configuration."""
    from lth_tf import main as cli

    text = open(path).read()
    figure = re.match(r"fig(\d+)_", os.path.basename(path)).group(1)
    assert re.search(rf"^# .*Figure {figure}\b", text, re.M), "the header must say which figure it reproduces"
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["lth_tf.main", f"--flagfile={path}"])
        cfg = cli.config_from_flags()
    finally:
        cli.FLAGS.unparse_flags()
    assert cfg.output_dir == f"results/{os.path.basename(path)[:-len('.flags')]}"
    assert cfg.rounds >= 15 and cfg.trials >= 3 and "lottery" in cfg.variants
    if "dropout" in path:
        assert cfg.dropout == 0.5
    if "oneshot" in path:
        assert cfg.pruning == "oneshot"
    # Each round trains exactly the stated length (TrainSpec rounds it up to a multiple of eval_every).
    assert cfg.round_iterations % cfg.eval_every == 0
    if cfg.model.startswith(("vgg19", "resnet18")):  # Section 4 states their training length in iterations
        assert cfg.round_iterations == specs.MODELS[cfg.model].iterations
    if "warmup" in path:
        assert specs.MODELS[cfg.model].warmup_iterations > 0
    elif cfg.model in ("vgg19", "resnet18"):
        assert specs.MODELS[cfg.model].warmup_iterations == 0
    if int(figure) <= 6:  # the ICLR version's Lenet and Conv-2/4/6 figures, with its Figure 2's settings
        assert cfg.model in ("lenet300_100_iclr", "conv2_iclr", "conv4_iclr", "conv6"), cfg.model
        assert re.search(r"ICLR.*Figure 2", text.replace("\n#", "")), "the header must say it follows ICLR Figure 2"
        spec = specs.MODELS[cfg.model]
        assert (cfg.optimizer, cfg.batch_size, cfg.round_iterations) == (spec.optimizer, spec.batch_size,
                                                                         spec.iterations)
        assert (cfg.prune_rate_conv, cfg.prune_rate_fc, cfg.prune_rate_output) == \
            (spec.prune_rate_conv, spec.prune_rate_fc, spec.prune_rate_fc / 2)
        if "dropout" not in path:  # Figure 6 trains with dropout at its own learning rates
            assert cfg.learning_rate == spec.learning_rate
