"""The paper's networks: shapes, prunable-weight counts, per-model defaults, dropout, and ResNet's BatchNorm.

    python3 -m pytest -q tests/test_paper_models.py

Counts are checked against Frankle & Carbin (ICLR 2019), Figure 2, and against the exact count that the
paper's layer layout gives (so a changed layer is caught even where the paper rounds).
"""
import glob
import os
import re

import numpy as np
import pytest
import tf_keras as keras

from lth_tf import data as data_lib
from lth_tf import experiment, models, pruning, store as store_lib
from lth_tf.config import Config

CIFAR, MNIST = (32, 32, 3), (28, 28, 1)

# model, input shape, the paper's total, the paper's convolutional count (None: no convolutions),
# exact total of the layout (kernels of Dense/Conv2D layers; biases and BatchNorm are never pruned).
PAPER_COUNTS = [
    ("lenet300_100", MNIST, 266e3, None, 266_200),
    ("conv2", CIFAR, None, 107_200, 1_755_712),  # lth_tf's conv2 spec: 5x5 64, pool, 5x5 64, pool, 384-192-10
    ("conv2_paper", CIFAR, 4.3e6, 38e3, 4_300_992),
    ("conv4", CIFAR, 2.4e6, 260e3, 2_425_024),
    # The paper's table says 1.7M for Conv-6, but its own layout (3 pools -> 4x4x256 -> 256) has 2.26M: the
    # first dense layer alone holds 1.05M. The convolutions match the paper's 1.1M.
    ("conv6", CIFAR, None, 1.1e6, 2_261_184),
    ("resnet18", CIFAR, 271e3, 270e3, 270_896),  # the paper's 274K also counts BatchNorm and biases
    ("vgg19", CIFAR, 20.0e6, 20.0e6, 20_024_000),
]


def counts(model):
    kernels = pruning.kernels(model)
    total = sum(k.size for k in kernels.values())
    conv = sum(k.size for k in kernels.values() if k.ndim == 4)
    return total, conv


@pytest.mark.parametrize("name,shape,paper_total,paper_conv,exact", PAPER_COUNTS, ids=[c[0] for c in PAPER_COUNTS])
def test_prunable_weights_match_the_paper(name, shape, paper_total, paper_conv, exact):
    model = models.build(name, shape, 10, seed=0)
    assert model.output_shape == (None, 10)
    total, conv = counts(model)
    assert total == exact
    if paper_total is not None:
        assert abs(total - paper_total) / paper_total < 0.02, (total, paper_total)
    if paper_conv is None:
        assert conv == 0
    else:
        # The paper rounds to two digits (1.14M is its "1.1M"), hence the looser tolerance.
        assert abs(conv - paper_conv) / paper_conv < 0.05, (conv, paper_conv)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_builds_on_its_datasets(name):
    datasets = ["mnist1d", "fashion_mnist"] if name == "lenet300_100" else ["cifar10", "fashion_mnist"]
    for dataset in datasets:
        cfg = Config(model=name, dataset=dataset).resolve()
        spec = data_lib.DATASETS[dataset]
        model = models.build(name, spec.input_shape, spec.num_classes, seed=0)
        assert model.output_shape == (None, spec.num_classes)
        assert set(pruning.layer_rates(model, cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output)) \
            == {layer.name for layer in pruning.prunable_layers(model)}
    if name != "lenet300_100":  # image models refuse MNIST-1D's vectors with one clear message
        with pytest.raises(Exception, match="needs image inputs"):
            Config(model=name, dataset="mnist1d").resolve()


def test_models_are_a_function_of_their_seed():
    a, b, c = (pruning.kernels(models.build("conv4", CIFAR, 10, seed=s)) for s in (3, 3, 4))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name])


def test_paper_defaults_per_model():
    """Figure 2's pruning rates and Section 4's training settings."""
    expect = {  # model: (fc, conv, output)
        "lenet300_100": (0.2, 0.1, 0.1), "conv2": (0.2, 0.1, 0.1), "conv2_paper": (0.2, 0.1, 0.1), "conv4": (0.2, 0.1, 0.1),
        "conv6": (0.2, 0.15, 0.1), "resnet18": (0.0, 0.2, 0.0), "vgg19": (0.0, 0.2, 0.0)}
    for name, rates in expect.items():
        cfg = Config(model=name, dataset="cifar10" if name != "lenet300_100" else "mnist").resolve()
        assert (cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output) == rates, name
    # Explicit flags still win over the model's defaults.
    cfg = Config(model="conv6", dataset="cifar10", prune_rate_conv=0.3, prune_rate_fc=0.5).resolve()
    assert (cfg.prune_rate_fc, cfg.prune_rate_conv, cfg.prune_rate_output) == (0.5, 0.3, 0.25)
    # ResNet-18 and VGG-19: SGD with momentum, 10x drops, warm-up only in the *_warmup variants (Figures 7, 8).
    for name, warmup in (("resnet18", 0), ("resnet18_warmup", 20_000), ("vgg19", 0), ("vgg19_warmup", 10_000)):
        cfg = Config(model=name, dataset="cifar10").resolve()
        spec = experiment.train_spec(cfg, 0)
        assert spec.warmup_iterations == warmup
        assert (spec.optimizer, spec.momentum, spec.learning_rate) == ("sgd", 0.9, 0.1)
        assert len(spec.lr_boundaries) == 2 and spec.augment
    assert Config(model="resnet18", dataset="cifar10", learning_rate=0.01).resolve().learning_rate == 0.01
    # Variants share the architecture (and so the count) of their base model.
    assert counts(models.build("vgg19_warmup", CIFAR, 10)) == counts(models.build("vgg19", CIFAR, 10))


@pytest.mark.parametrize("name", ["conv2", "conv4", "conv6", "lenet300_100"])
def test_dropout_adds_dropout_layers(name):
    shape = MNIST
    plain = models.build(name, shape, 10, seed=0)
    dropped = models.build(name, shape, 10, seed=0, dropout=0.5)
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
    ds = data_lib.Dataset("fake_cifar", CIFAR, 10, "random arrays", x[:64], y[:64], x[64:80], y[64:80],
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
    if "warmup" in path:
        assert models.MODELS[cfg.model].warmup_iterations > 0
    elif cfg.model in ("vgg19", "resnet18"):
        assert models.MODELS[cfg.model].warmup_iterations == 0
