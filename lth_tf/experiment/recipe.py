"""Issue 26's options, resolved: the dataset's spec, the data options, and each training hyperparameter filled from
the model's recipe (lth_tf.models.specs.ModelSpec) where left None, epochs ("80ep") turned into iterations, checked.
Config.resolve (config.py) calls these; no TensorFlow.

    recipe("resnet18")["lr_drops"]          # (20000, 25000)
    iterations_of("80ep", "--lr_drops", 352)  # 28160
"""
from __future__ import annotations

import dataclasses
import math

from lth_tf.data import datasets, lookup  # the registries only: validation must not start TensorFlow
from lth_tf.models import specs

INITS = ("normal", "glorot", "he")
MAX_ITERATIONS = 10_000_000  # training steps per round (config.MAX_ITERATIONS)


class ConfigError(ValueError):
    """An invalid configuration; str(e) is one line naming the problem."""


def dataset_spec(name: str, data_dir: str | None) -> datasets.DatasetSpec:
    """--dataset's spec (a registry name, a prepared tfds image-classification name, or module:function)."""
    try:
        return lookup.spec_for(name, data_dir)
    except datasets.DataError as e:
        message = str(e)
        if "--dataset" not in message:
            message = f"--dataset: {message}"
        raise ConfigError(message) from None


def train_examples(dspec: datasets.DatasetSpec, train_subset: int | None) -> int:
    """The examples a round trains on: the training split less validation, or --train_subset of them."""
    return train_subset if train_subset is not None else dspec.train_size - dspec.validation_size


def check_data_options(config, dspec: datasets.DatasetSpec) -> None:
    available = dspec.train_size - dspec.validation_size
    n = config.train_subset
    if n is not None and not (isinstance(n, int) and 1 <= n <= available):
        raise ConfigError(f"--train_subset must be in [1, {available}] (the training examples of "
                          f"'{config.dataset}' after validation), got {n}")
    f = config.random_labels
    if f is not None and not (isinstance(f, (int, float)) and 0.0 <= f <= 1.0):
        raise ConfigError(f"--random_labels must be in [0, 1], got {f}")
    if config.augment and len(dspec.input_shape) != 3:
        raise ConfigError(f"--augment needs images (height, width, channels); '{config.dataset}' gives shape "
                          f"{tuple(dspec.input_shape)}")


def recipe(model: str) -> dict:
    """The model's recipe (specs.ModelSpec) for the hyperparameters that have flags since issue 26."""
    if specs.is_user_model(model):  # --model=package.module:function: plain SGD, its own initialisers
        return {"augment": False, "weight_decay": 0.0, "lr_drops": (), "lr_gamma": 0.1, "warmup": 0,
                "nesterov": False, "init": None}
    spec = specs.model_spec(model)
    return {"augment": spec.augment, "weight_decay": spec.weight_decay, "lr_drops": tuple(spec.lr_boundaries),
            "lr_gamma": 0.1, "warmup": spec.warmup_iterations, "nesterov": False, "init": spec.init}


def iterations_of(value, flag: str, steps_per_epoch: int) -> int:
    """An iteration count: an int, its decimal string, or epochs written "80ep" (80 * steps per epoch, rounded;
    fractions allowed: "0.5ep"). Raises ConfigError naming `flag`."""
    text = str(value).strip()
    try:
        if text.endswith("ep"):
            epochs = float(text[:-2])
            if not math.isfinite(epochs) or epochs < 0:
                raise ValueError
            return int(round(epochs * steps_per_epoch))
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(text) if not isinstance(value, (int, float)) else int(value)
    except ValueError:
        raise ConfigError(f"{flag}: '{text}' is neither iterations (e.g. 20000) nor epochs (e.g. 80ep)") from None


def resolve_hyperparameters(config, dspec: datasets.DatasetSpec):
    """Fills the recipe's value for each hyperparameter left None, turns epochs ("80ep") into iterations, and
    checks them. A user's --lr_drops must increase and fall inside training; the recipe's are kept as the model
    defines them (a short test run of resnet18 simply never reaches its drops). Resolving twice changes nothing."""
    defaults, per_epoch, total = recipe(config.model), config.steps_per_epoch, config.round_iterations
    drops = defaults["lr_drops"]
    if config.lr_drops is not None:
        given = config.lr_drops.split(",") if isinstance(config.lr_drops, str) else config.lr_drops
        drops = tuple(iterations_of(d, "--lr_drops", per_epoch) for d in given if str(d).strip())
        if any(b <= a for a, b in zip(drops, drops[1:])) or (drops and drops[0] <= 0):
            raise ConfigError(f"--lr_drops must be positive and increasing, got {','.join(map(str, drops))} "
                              f"(iterations)")
        if drops and drops[-1] >= total and drops != defaults["lr_drops"]:  # resolving twice keeps the recipe's
            raise ConfigError(f"--lr_drops: a drop at iteration {drops[-1]} is beyond training ({total} "
                              f"iterations per round)")
    warmup = defaults["warmup"] if config.warmup is None else iterations_of(config.warmup, "--warmup", per_epoch)
    if not 0 <= warmup <= MAX_ITERATIONS:
        raise ConfigError(f"--warmup must be in [0, {MAX_ITERATIONS}] iterations, got {config.warmup}")
    resolved = dataclasses.replace(
        config, lr_drops=drops, warmup=warmup,
        augment=defaults["augment"] if config.augment is None else bool(config.augment),
        weight_decay=defaults["weight_decay"] if config.weight_decay is None else config.weight_decay,
        lr_gamma=defaults["lr_gamma"] if config.lr_gamma is None else config.lr_gamma,
        nesterov=defaults["nesterov"] if config.nesterov is None else bool(config.nesterov),
        init=defaults["init"] if config.init is None else config.init)
    if not (isinstance(resolved.weight_decay, (int, float)) and 0 <= resolved.weight_decay <= 1):
        raise ConfigError(f"--weight_decay must be in [0, 1], got {resolved.weight_decay}")
    if not (isinstance(resolved.lr_gamma, (int, float)) and 0.0 < resolved.lr_gamma <= 1.0):
        raise ConfigError(f"--lr_gamma must be in (0, 1], got {resolved.lr_gamma}")
    if resolved.init is not None and resolved.init not in INITS:
        raise ConfigError(f"--init must be one of {', '.join(INITS)}, got '{resolved.init}'")
    if resolved.nesterov and resolved.optimizer != "sgd":
        raise ConfigError(f"--nesterov needs --optimizer=sgd (the model's optimizer is {resolved.optimizer})")
    return resolved
