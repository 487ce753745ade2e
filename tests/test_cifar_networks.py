"""The CIFAR ResNets and VGGs (lth_tf.models.cifar_resnet, cifar_vgg): exact weight counts from the layer
formulas, computed here by hand and compared with the built models, and their registry entries."""
import pytest

from lth_tf.models import specs


def resnet_counts(depth, width, classes=10, channels=3):
    """(conv kernel weights, BatchNorm weights, dense weights) of ResNet-depth at width: a first 3x3 conv, three
    stages of (depth - 2) / 6 blocks of two 3x3 convs, a 1x1 shortcut where the width changes, one dense layer."""
    blocks = (depth - 2) // 6
    conv, bn, f_in = 3 * 3 * channels * width, 4 * width, width
    for stage in range(3):
        f = width * 2 ** stage
        for _ in range(blocks):
            conv += 3 * 3 * f_in * f + 3 * 3 * f * f
            bn += 2 * 4 * f
            if f_in != f:
                conv += f_in * f
                bn += 4 * f
            f_in = f
    return conv, bn, 4 * width * classes + classes


# open_lth's plans (models/cifar_vgg.py), written out again: "M" is a max pool.
VGG_PLANS = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
             13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
             16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
             19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]}


def vgg_counts(depth, classes=10, channels=3):
    conv, bn, f_in = 0, 0, channels
    for f in VGG_PLANS[depth]:
        if f != "M":
            conv, bn, f_in = conv + 3 * 3 * f_in * f, bn + 4 * f, f
    return conv, bn, 512 * classes + classes


def built_counts(model):
    from lth_tf import _env  # noqa: F401
    import tf_keras as keras
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return (sum(layer.kernel.shape.num_elements() + (layer.bias.shape[0] if layer.use_bias else 0)
                for layer in convs),
            sum(layer.count_params() for layer in bns), sum(layer.count_params() for layer in dense)), convs


@pytest.mark.parametrize("name,depth,width,classes", [
    ("resnet20", 20, 16, 10), ("resnet32", 32, 16, 10), ("resnet56", 56, 16, 100), ("resnet110", 110, 16, 10),
    ("resnet20_w32", 20, 32, 10), ("resnet18", 20, 16, 10)])
def test_resnet_weight_counts(name, depth, width, classes):
    from lth_tf.models import networks
    model = networks.build(name, (32, 32, 3), classes, seed=0)
    expected = resnet_counts(depth, width, classes)
    counts, convs = built_counts(model)
    assert counts == expected
    assert model.count_params() == sum(expected)
    # depth weighted layers: depth - 1 3x3 convolutions (the 1x1 shortcuts are extra) and the output layer
    assert sum(layer.kernel_size == (3, 3) for layer in convs) == depth - 1
    assert [layer.name for layer in model.layers if hasattr(layer, "kernel")][-1] == "output"


def test_resnet20_is_the_papers_resnet18():
    """arXiv v1 Figure 1's Resnet-18: 270,256 convolution weights (271K with the output's 650 weights)."""
    assert resnet_counts(20, 16) == (270_256, 4 * (16 * 7 + 32 * 7 + 64 * 7), 650)
    assert specs.resnet_shape("resnet18") == specs.resnet_shape("resnet20") == (20, 16)


@pytest.mark.parametrize("depth,classes", [(11, 10), (13, 10), (16, 100), (19, 10)])
def test_vgg_weight_counts(depth, classes):
    from lth_tf.models import networks
    model = networks.build(f"vgg{depth}", (32, 32, 3), classes, seed=0)
    expected = vgg_counts(depth, classes)
    counts, convs = built_counts(model)
    assert counts == expected
    assert model.count_params() == sum(expected)
    assert len(convs) == depth - 3  # VGG-N: N - 3 convolutions and (in the ImageNet original) 3 dense layers


def test_vgg16_count_by_hand():
    # 64: 3*64, 64*64 | 128: 64*128, 128*128 | 256: 128*256, 2x 256*256 | 512: 256*512, 2x 512*512 | 3x 512*512
    conv = 9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 2 * 256 * 256 + 256 * 512
                + 2 * 512 * 512 + 3 * 512 * 512)
    assert conv == 14_710_464 == vgg_counts(16)[0]


def test_registry_recipes():
    """open_lth's default_hparams for cifar_resnet / cifar_vgg: SGD 0.1, momentum 0.9, batch 128, weight decay
    1e-4, 160 epochs, drops at epochs 80 and 120, global pruning of 20% of the convolutions per round."""
    for name in ("resnet20", "resnet32", "resnet56", "resnet110", "resnet20_w32", "vgg11", "vgg13", "vgg16"):
        assert specs.known(name)
        spec = specs.model_spec(name)
        assert (spec.optimizer, spec.learning_rate, spec.momentum, spec.batch_size, spec.weight_decay,
                spec.epochs, spec.init) == ("sgd", 0.1, 0.9, 128, 1e-4, 160, "he")
        assert spec.lr_boundaries == (80 * 352, 120 * 352)  # 45,000 / 128 = 352 steps per epoch
        assert spec.global_pruning and spec.prune_rate_conv == 0.2 and not spec.stackable
    # vgg19 and resnet18 keep the lottery-ticket paper's recipes
    assert specs.model_spec("vgg19").batch_size == 64 and specs.model_spec("vgg19").init == "glorot"
    assert specs.model_spec("resnet18").iterations == 30_000
    from lth_tf.experiment.config import Config, ConfigError
    cfg = Config(model="resnet20_w32", dataset="cifar10").resolve()
    assert (cfg.epochs, cfg.round_iterations, cfg.pruning_scope, cfg.batch_size) == (160, 160 * 352, "global", 128)
    with pytest.raises(ConfigError, match="needs image inputs"):
        Config(model="vgg16", dataset="mnist1d").resolve()
    for bad in ("resnet18_w32", "resnet21", "resnet20_w0", "vgg12", "resnet50", "resnet50_w16"):
        assert not specs.known(bad)
