"""What an experiment trains, derived from its Config: each round's TrainSpec (and whether XLA pays), the seeds of
its data orders, the instability pairs' PairSpec; and the events it reports to its caller. No TensorFlow: both
engines (tf_keras, keras3) use it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lth_tf.experiment.config import Config
from lth_tf.models import specs
from lth_tf.training.jobs import TrainSpec


@dataclasses.dataclass(frozen=True)
class Event:
    """Progress reported to the caller (main.py prints it; the library prints nothing)."""

    kind: str  # "start", "resume", "eval", "round", "skip", "done"
    trial: int = 0
    variant: str = ""
    round: int = 0
    info: dict = dataclasses.field(default_factory=dict)


def train_spec(config: Config, trial_seed: int, distributed: bool = False) -> TrainSpec:
    """distributed: the trainer is built under a tf.distribute strategy (given to `run`)."""
    xla = config.xla == "on" or (config.xla == "auto" and xla_pays(config, distributed))
    # The schedule, augmentation and frozen parameters are the resolved config's (the model's recipe by default).
    return TrainSpec(
        batch_size=config.batch_size, learning_rate=config.learning_rate, iterations=config.round_iterations,
        eval_every=config.eval_every, optimizer=config.optimizer, momentum=config.momentum,
        lr_boundaries=tuple(config.lr_drops), warmup_iterations=int(config.warmup), augment=bool(config.augment),
        seed=trial_seed, mixed_precision=config.mixed_precision, trainer=config.trainer, jit_compile=xla,
        lr_gamma=config.lr_gamma, nesterov=bool(config.nesterov), batchnorm_frozen=config.batchnorm_frozen,
        output_frozen=config.output_frozen)


# XLA compiles a trainer's step once (a few seconds on 2 CPU cores) and then saves about a fifth of each step
# of a network without convolutions: it pays for trials that train at least this many steps.
XLA_MIN_TRIAL_STEPS = 50_000


def xla_pays(config: Config, distributed: bool = False) -> bool:
    """--xla=auto: XLA-compile the training step where it was measured to be faster (BENCHMARKS.md, 2 CPU
    cores): lenet300_100's step ran 1.26x faster per CPU-second, conv2's 0.73x, and the compilation costs
    seconds per trainer. So: networks without convolutions whose trial trains at least XLA_MIN_TRIAL_STEPS
    steps (the paper's lenet300_100 does, the quickstart does not), with lth_tf's masked trainer (tfmot's is the
    unchanged reference) in full precision on one device. On a GPU, measure (benchmarks/gpu_check.sh) and pass
    --xla=on or off."""
    steps = (config.rounds + 1) * config.round_iterations
    return (not specs.model_spec(config.model).image_input and steps >= XLA_MIN_TRIAL_STEPS
            and config.trainer == "masked" and not config.mixed_precision and config.strategy == "default"
            and not distributed)


PAIR_VARIANTS = ("lottery", "reinit", "random")


@dataclasses.dataclass(frozen=True)
class PairSpec:
    """The instability analysis of each trial's rounds (Frankle et al., ICML 2020).

    variants: `lottery` (the IMP subnetwork at W_k; round 0 is the dense network), `reinit` (the round's mask, a
        fresh draw of the initialiser) and `random` (random masks with the round's per-layer counts, at W_k).
    alphas: points on the path (int: evenly spaced in [0, 1]) ; bn: "interpolate" or "recompute" (see
    lth_tf.experiment.interpolation); train_subset: the first n training examples are the fixed training split of
    the path;
    noise_seeds: the two copies' SGD-noise seeds (equal seeds give identical copies). They are part of a stored
        pair's identity (`matches`): other seeds train new copies and measure a new path.
    """

    variants: tuple = ("lottery",)
    alphas: int = 30
    bn: str = "interpolate"
    bn_batches: int = 20
    train_subset: int = 10_000
    noise_seeds: tuple = (1, 2)

    def path_identity(self) -> dict:
        """What a stored path's numbers depend on beyond the trained copies."""
        from lth_tf.experiment import interpolation  # TensorFlow: only the instability analysis needs it
        return {"alphas": interpolation.alpha_grid(self.alphas), "bn": self.bn,
                "bn_batches": self.bn_batches if self.bn == "recompute" else 0, "train_subset": self.train_subset}

    def matches(self, stored: dict) -> bool:
        """Whether a stored pair result is this spec's: the same path and the same noise seeds. A result that
        records no seeds was written before they were recorded, with the default (1, 2): the only seeds the
        command line has ever used."""
        return (stored.get("path") == self.path_identity()
                and stored.get("noise_seeds", [1, 2]) == [int(s) for s in self.noise_seeds])


def pair_key(trial_seed: int, round_: int, noise_seed: int) -> int:
    """The data order of one copy of a pair: a pure function of (trial seed, round, noise seed), apart from the
    rounds' own `data_key`s."""
    return int(np.random.SeedSequence([trial_seed & 0xFFFFFFFF, round_, 7919, noise_seed]).generate_state(1)[0])


def data_key(trial_seed: int, round_: int) -> int:
    """The seed of a round's data order: a pure function of (trial seed, round), the same in any process."""
    return int(np.random.SeedSequence([trial_seed & 0xFFFFFFFF, round_]).generate_state(1)[0])
