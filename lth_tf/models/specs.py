"""The model registry: name -> ModelSpec, the paper's defaults per network, without importing TensorFlow.

A model is looked up by name here, for its defaults and its architecture (`builder`: a key of
lth_tf.models.networks.ARCHITECTURES, which builds it). Keeping these apart from the tf_keras code lets
`python -m lth_tf.main` reject bad input in a fraction of a second, before TensorFlow starts (and prints its
start-up lines).

Two versions of Frankle & Carbin's paper specify the networks differently, and lth_tf keeps both:
- arXiv v1 ("The Lottery Ticket Hypothesis: Finding Small, Trainable Neural Networks", 2018), Figure 1:
  `lenet300_100`, `conv2`, `conv4`, `resnet18`, all trained with SGD; lth_tf adds `vgg19` (Section 4 of the
  ICLR version) with the same training recipe as `resnet18`.
- ICLR 2019 ("... Finding Sparse, Trainable Neural Networks"), Figure 2: 3x3 `same` Conv-2/4/6 and Lenet
  trained with Adam, as `conv2_iclr`, `conv4_iclr`, `conv6` (ICLR only) and `lenet300_100_iclr`.
The v1 paper's "Resnet-18" is the CIFAR ResNet-20 of He et al. (2016) (19 convolutions and one dense layer);
lth_tf keeps the paper's name `resnet18` for it, with the paper's recipe.

The networks of the follow-up papers (Frankle et al., "Linear Mode Connectivity and the Lottery Ticket
Hypothesis", ICML 2020; "Pruning Neural Networks at Initialization: Why Are We Missing the Mark?", ICLR 2021),
with open_lth's recipes (facebookresearch/open_lth, models/cifar_resnet.py and models/cifar_vgg.py,
`default_hparams`: SGD 0.1, momentum 0.9, batch 128, weight decay 1e-4, 160 epochs, the learning rate dropped 10x
at epochs 80 and 120, He (kaiming_normal) initialisation, 20% of the weights pruned per round globally):
- `resnet20`, `resnet32`, `resnet44`, `resnet56`, `resnet110` (open_lth's cifar_resnet_N), and
  `resnet<N>_w<W>` of these depths at any width (cifar_resnet_N_W: widths W, 2W, 4W; default W = 16):
  lth_tf.models.cifar_resnet.
- `vgg11`, `vgg13`, `vgg16` (cifar_vgg_N; `vgg16` is the instability paper's network): lth_tf.models.cifar_vgg.
  `vgg19` stays the lottery-ticket paper's, with its own recipe (batch 64, Normal Xavier).
They are in FOLLOW_UPS, apart from MODELS (the lottery-ticket paper's own networks).
Their output layer is not pruned (as `resnet18` and `vgg19`; open_lth prunes the ResNets' 64 x 10 output with
the convolutions, and ignores the VGGs').

Your own model, `--model=package.module:function` (lth_tf.models.user), gets USER_MODEL's recipe.
"""
from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model's defaults, as the version of the paper it follows specifies them (see the table below)."""

    image_input: bool  # needs (height, width, channels) input
    batch_size: int
    learning_rate: float
    iterations: int | None = None  # the paper's training length in iterations (default epochs derive from it)
    epochs: float | None = None  # the paper's training length in epochs; when set, the default --epochs
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0  # the decay gradient is weight_decay * w (an L2 penalty of weight_decay / 2 * w^2)
    init: str = "normal"  # "normal": truncated normal, std 0.1; "glorot": Glorot (Xavier) normal, truncated at 2 std
    augment: bool = False
    lr_boundaries: tuple = ()  # iterations at which the learning rate drops 10x
    warmup_iterations: int = 0
    prune_rate_fc: float = 0.2  # the paper's per-round rates (Figure 2); the output layer gets half the fc rate
    prune_rate_conv: float = 0.1
    builder: str = ""  # which architecture; "" = the model's own name (variants share an architecture)
    global_pruning: bool = False  # Section 4: VGG-19 and ResNet-18 are pruned globally, not layer by layer
    min_image_size: int = 8  # smallest height/width the architecture can take (valid convolutions shrink it)
    stackable: bool = False  # --parallel_trials can stack it (lth_tf.training.stacked: no BatchNorm)


MODELS: dict[str, ModelSpec] = {
    # ---- arXiv v1, Figure 1 (SGD) ----------------------------------------------------------------------
    # Lenet 300-100-10: 266K weights, 50 epochs at batch 60, truncated normal (std 0.1).
    "lenet300_100": ModelSpec(image_input=False, batch_size=60, learning_rate=0.05, epochs=50, stackable=True),
    # Conv-2: 5x5 64, pool, 5x5 64, pool (`same`), dense 384-192-10: 1.75M weights, 107K conv; 30 epochs.
    "conv2": ModelSpec(image_input=True, batch_size=50, learning_rate=0.01, epochs=30, stackable=True),
    # Conv-4: 3x3 64, 64, pool, 128, 128, pool (`valid`), dense 256-256-10: 1.15M weights, 260K conv;
    # 20 epochs, Normal Xavier initialisation.
    "conv4": ModelSpec(image_input=True, batch_size=50, learning_rate=0.003, epochs=20, init="glorot",
                       min_image_size=16, stackable=True),
    # Resnet-18 (He et al.'s CIFAR ResNet-20; `resnet20` is the same network with open_lth's recipe):
    # 3x3 16, then 3 stages x 3 residual blocks of 16, 32, 64 filters, average pool, dense 10:
    # 271K weights, 270K conv; 85 epochs at batch 128 (~30K iterations), momentum 0.9, learning rate 0.1
    # dropped 10x at 20K and 25K iterations, weight decay 1e-4, Normal Xavier; conv 20% per round, globally.
    # The paper's lower-rate setting (which finds winning tickets without warm-up) is --learning_rate=0.01.
    "resnet18": ModelSpec(image_input=True, batch_size=128, learning_rate=0.1, iterations=30_000, epochs=85,
                          momentum=0.9, weight_decay=1e-4, init="glorot", augment=True,
                          lr_boundaries=(20_000, 25_000), prune_rate_fc=0.0, prune_rate_conv=0.2,
                          global_pruning=True),
    # VGG-19 (ICLR Section 4): 16 3x3 convolutions with BatchNorm, average pool, dense 10: 20.0M weights;
    # 160 epochs = 112,480 iterations at batch 64, learning rate 0.1 dropped 10x at epochs 80 and 120 (as
    # Liu et al.'s CIFAR VGG recipe). The paper's total counts 703 iterations per epoch (45,000 training images
    # / 64 = 703.125, truncated: 160 x 703 = 112,480), so the drops are at 80 x 703 = 56,240 and
    # 120 x 703 = 84,360. The rest as resnet18 (Normal Xavier, as Figure 1 gives for Resnet-18).
    "vgg19": ModelSpec(image_input=True, batch_size=64, learning_rate=0.1, iterations=112_480,
                       momentum=0.9, weight_decay=1e-4, init="glorot", augment=True,
                       lr_boundaries=(56_240, 84_360), prune_rate_fc=0.0, prune_rate_conv=0.2,
                       global_pruning=True),
    # ---- ICLR 2019, Figure 2 (Adam, batch 60, Gaussian Glorot; conv 10%, fc 20%, output 10% per round) ---
    # Lenet 300-100-10: Adam 1.2e-3, 50K iterations; the same network as lenet300_100.
    "lenet300_100_iclr": ModelSpec(image_input=False, batch_size=60, learning_rate=1.2e-3, iterations=50_000,
                                   optimizer="adam", init="glorot", builder="lenet300_100", stackable=True),
    # Conv-2: 3x3 64, 64, pool (`same`), dense 256-256-10: 4.3M weights, 38K conv; Adam 2e-4, 20K iterations.
    "conv2_iclr": ModelSpec(image_input=True, batch_size=60, learning_rate=2e-4, iterations=20_000,
                            optimizer="adam", init="glorot", stackable=True),
    # Conv-4: 3x3 64, 64, pool, 128, 128, pool (`same`), dense 256-256-10: 2.4M weights, 260K conv;
    # Adam 3e-4, 25K iterations.
    "conv4_iclr": ModelSpec(image_input=True, batch_size=60, learning_rate=3e-4, iterations=25_000,
                            optimizer="adam", init="glorot", stackable=True),
    # Conv-6 (ICLR only): conv4_iclr's layers plus 3x3 256, 256, pool, dense 256-256-10: conv 1.1M (the table's
    # 1.7M total is not what its layout gives: 2.26M); Adam 3e-4, 30K iterations, conv 15%.
    "conv6": ModelSpec(image_input=True, batch_size=60, learning_rate=3e-4, iterations=30_000,
                       optimizer="adam", init="glorot", prune_rate_conv=0.15, stackable=True),
}
# ICLR Figures 7 and 8: the same networks and settings with linear learning-rate warm-up, 20K iterations for
# ResNet-18 (Figure 8), 10K for VGG-19 (Figure 7).
MODELS["resnet18_warmup"] = dataclasses.replace(MODELS["resnet18"], warmup_iterations=20_000, builder="resnet18")
MODELS["vgg19_warmup"] = dataclasses.replace(MODELS["vgg19"], warmup_iterations=10_000, builder="vgg19")

# open_lth's CIFAR recipe (see the module docstring). 160 epochs; the drops at epochs 80 and 120 are iterations
# here: 45,000 training images (CIFAR-10 less lth_tf's 5,000 validation images) / 128 = 352 steps per epoch.
_OPEN_LTH_CIFAR = ModelSpec(image_input=True, batch_size=128, learning_rate=0.1, epochs=160, momentum=0.9,
                            weight_decay=1e-4, init="he", augment=True, lr_boundaries=(80 * 352, 120 * 352),
                            prune_rate_fc=0.0, prune_rate_conv=0.2, global_pruning=True)
# The follow-ups' networks, apart from MODELS (the lottery-ticket paper's own networks).
FOLLOW_UPS: dict[str, ModelSpec] = {
    **{f"resnet{depth}": _OPEN_LTH_CIFAR for depth in (20, 32, 44, 56, 110)},
    **{f"vgg{depth}": _OPEN_LTH_CIFAR for depth in (11, 13, 16)},
}

# Your own model (lth_tf.models.user): SGD with momentum 0.9 at 0.01, batch 128, 10 epochs, no weight decay (give
# your layers a kernel_regularizer), no augmentation; conv 10%, fc 20% (the output layer 10%) per round,
# layer by layer, as the paper's Conv networks. Every value is a flag.
USER_MODEL = ModelSpec(image_input=True, batch_size=128, learning_rate=0.01, epochs=10, momentum=0.9)

_RESNET = re.compile(r"resnet(\d+)(?:_w(\d+))?")


def is_user_model(name: str) -> bool:
    """Whether `name` names the user's own model, `package.module:function`."""
    return ":" in name


def resnet_shape(name: str) -> tuple | None:
    """(depth, width) of a CIFAR ResNet name (`resnet20`, `resnet56_w32`; `resnet18` is ResNet-20), else None."""
    if name == "resnet18":  # the v1 paper's name for ResNet-20
        return (20, 16)
    match = _RESNET.fullmatch(name)
    if match is None:
        return None
    depth, width = int(match.group(1)), int(match.group(2) or 16)
    # The depths registered above only: `resnet50` would read as ImageNet's bottleneck ResNet-50.
    return (depth, width) if f"resnet{depth}" in FOLLOW_UPS and width > 0 else None


def known(name: str) -> bool:
    """Whether `name` is a built-in network: a key of MODELS or FOLLOW_UPS, or a CIFAR ResNet of any width."""
    return name in MODELS or name in FOLLOW_UPS or resnet_shape(name) is not None


def names() -> list:
    """The built-in networks' names: the paper's, then the follow-ups'."""
    return list(MODELS) + list(FOLLOW_UPS)


def model_spec(name: str) -> ModelSpec:
    """The ModelSpec of a built-in network, a `resnet<N>_w<W>`, or USER_MODEL for `package.module:function`."""
    if name in MODELS or name in FOLLOW_UPS:
        return MODELS.get(name) or FOLLOW_UPS[name]
    if is_user_model(name):
        return USER_MODEL
    if resnet_shape(name) is not None:
        return FOLLOW_UPS["resnet20"]
    raise KeyError(name)


def fits(name: str, input_shape: tuple) -> str | None:
    """Why `name` cannot take inputs of `input_shape`, or None when it can."""
    spec = model_spec(name)
    if spec.image_input and len(input_shape) != 3:
        return f"model '{name}' needs image inputs (height, width, channels), but the dataset gives shape {input_shape}"
    size = spec.min_image_size
    if spec.image_input and min(input_shape[:2]) < size:
        return f"model '{name}' needs images of at least {size}x{size} pixels, the dataset gives {input_shape}"
    return None


def stackable(model: str) -> bool:
    """Whether --parallel_trials can stack the model (lth_tf.training.stacked: no BatchNorm)."""
    return model_spec(model).stackable
