"""Static facts about the models and datasets: what config validation needs, without importing TensorFlow.

Keeping these apart lets `python -m lth_tf.main` reject bad input in a fraction of a second, before
TensorFlow starts (and prints its start-up lines).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Paper defaults for a model (Frankle & Carbin 2019, Figure 1, as specified for lth_tf)."""

    image_input: bool  # needs (height, width, channels) input
    batch_size: int
    learning_rate: float
    iterations: int  # the paper's training length; default epochs are derived from it
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    augment: bool = False
    lr_boundaries: tuple = ()  # iterations at which the learning rate drops 10x
    warmup_iterations: int = 0
    prune_rate_fc: float = 0.2  # the paper's per-round rates (Figure 2); the output layer gets half the fc rate
    prune_rate_conv: float = 0.1
    builder: str = ""  # which architecture; "" = the model's own name (variants share an architecture)
    global_pruning: bool = False  # Section 4: VGG-19 and ResNet-18 are pruned globally, not layer by layer


MODELS: dict[str, ModelSpec] = {
    "lenet300_100": ModelSpec(image_input=False, batch_size=60, learning_rate=0.05, iterations=50_000),
    "conv2": ModelSpec(image_input=True, batch_size=50, learning_rate=0.01, iterations=20_000),
    # The paper's own Conv-2 architecture (3x3 64-64-pool, dense 256-256-10); lth_tf's conv2 follows its spec.
    "conv2_paper": ModelSpec(image_input=True, batch_size=60, learning_rate=0.01, iterations=20_000),
    "conv4": ModelSpec(image_input=True, batch_size=50, learning_rate=0.003, iterations=25_000),
    "conv6": ModelSpec(image_input=True, batch_size=60, learning_rate=0.003, iterations=30_000,
                       prune_rate_conv=0.15),
    # Section 4: SGD with momentum 0.9, learning rate 0.1 dropped 10x twice; conv 20% per round, fc not pruned.
    # The paper's lower-rate setting (which finds winning tickets without warm-up) is --learning_rate=0.01.
    "resnet18": ModelSpec(image_input=True, batch_size=128, learning_rate=0.1, iterations=30_000,
                          momentum=0.9, weight_decay=1e-4, augment=True, lr_boundaries=(20_000, 25_000),
                          prune_rate_fc=0.0, prune_rate_conv=0.2, global_pruning=True),
    "vgg19": ModelSpec(image_input=True, batch_size=64, learning_rate=0.1, iterations=112_000,
                       momentum=0.9, weight_decay=1e-4, augment=True, lr_boundaries=(80_000, 100_000),
                       prune_rate_fc=0.0, prune_rate_conv=0.2, global_pruning=True),
}
# The same networks and settings with linear learning-rate warm-up: 20K iterations for ResNet-18 (Figure 8),
# 10K for VGG-19 (Figure 7).
MODELS["resnet18_warmup"] = dataclasses.replace(MODELS["resnet18"], warmup_iterations=20_000, builder="resnet18")
MODELS["vgg19_warmup"] = dataclasses.replace(MODELS["vgg19"], warmup_iterations=10_000, builder="vgg19")


def fits(name: str, input_shape: tuple) -> str | None:
    """Why `name` cannot take inputs of `input_shape`, or None when it can."""
    spec = MODELS[name]
    if spec.image_input and len(input_shape) != 3:
        return f"model '{name}' needs image inputs (height, width, channels), but the dataset gives shape {input_shape}"
    if spec.image_input and min(input_shape[:2]) < 8:
        return f"model '{name}' needs images of at least 8x8 pixels, the dataset gives {input_shape}"
    return None



@dataclass(frozen=True)
class DatasetSpec:
    input_shape: tuple
    num_classes: int
    validation_size: int
    train_size: int  # the dataset's training split, validation included


MNIST1D_SAMPLES = 10_000  # 8000 train (800 of them validation) / 2000 test; ~5 s to generate
MNIST1D_SEED = 42         # generation seed: the same data in every run

DATASETS = {
    "mnist": DatasetSpec((28, 28, 1), 10, 5000, 60_000),
    "fashion_mnist": DatasetSpec((28, 28, 1), 10, 5000, 60_000),
    "cifar10": DatasetSpec((32, 32, 3), 10, 5000, 50_000),
    "mnist1d": DatasetSpec((40,), 10, MNIST1D_SAMPLES * 8 // 10 // 10, MNIST1D_SAMPLES * 8 // 10),
}

