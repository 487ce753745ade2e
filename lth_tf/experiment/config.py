"""The experiment's configuration: a frozen dataclass, validated, with a stable hash.

`Config` holds what the user asked for (None = the paper's default for the model); `resolve()` fills the
defaults and checks everything, raising ConfigError with one clear line. The hash covers only the fields
that change what a finished round contains, so raising --rounds or --trials continues an experiment,
while changing, say, the learning rate is refused in the same directory.
Fields added after results directories existed enter the identity only where they differ from what was done
before (None, or the model's recipe for the training hyperparameters of issue 26), so those directories keep
their hash.

    cfg = Config(model="lenet300_100", dataset="mnist1d", rounds=3).resolve()
    cfg.batch_size, cfg.identity_hash()
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import sys

from lth_tf.models import specs
# Issue 26's data options and hyperparameters are resolved in recipe.py; ConfigError lives there too (both modules
# raise it) and is imported from here.
from lth_tf.experiment.recipe import (INITS, MAX_ITERATIONS, ConfigError,  # noqa: F401  (re-exported)
                                      check_data_options as _check_data_options, dataset_spec as _dataset_spec,
                                      iterations_of, recipe as _recipe, resolve_hyperparameters,
                                      train_examples as _train_examples)

VARIANTS = ("lottery", "reinit", "rearrange", "shuffle", "invert")
# Pruning at initialization (Frankle et al., ICLR 2021): one-shot scores at W_0 (or W_k), see init_scores.
AT_INIT = ("random", "magnitude_init", "snip", "grasp", "synflow")
PRUNING = ("iterative", "oneshot") + AT_INIT
# --ablation: the sanity checks of Frankle et al. (2021), each stored as a variant; none is the method itself.
ABLATIONS = {"none": "lottery", "shuffle": "shuffle", "reinit": "reinit", "invert": "invert"}
PRUNE_LAYERS = ("all", "conv", "fc")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("sgd", "adam")
TRAINERS = ("masked", "tfmot")
PRUNING_SCOPES = ("layerwise", "global")
XLA = ("auto", "on", "off")
# The training engine: tf_keras (tfmot's Keras 2; lth_tf.training) or keras3 (Keras 3 on the backend KERAS_BACKEND
# names: TensorFlow, JAX or PyTorch; lth_tf.keras3.engine).
ENGINES = ("tf_keras", "keras3")

# Fields that do not change the contents of a finished round: they may differ between runs in one directory.
_NOT_IDENTITY = {"rounds", "trials", "trial_index", "variants", "output_dir", "data_dir", "strategy",
                 "tensorboard", "deterministic", "verbose", "ablation", "control_rounds",
                 # How the rounds are computed, not what they are: stacked trials train each network exactly as
                 # alone; XLA changes float rounding only.
                 "parallel_trials", "xla"}
# Identity fields added later: left out of the identity while None, so older directories keep their hash.
_OPTIONAL_IDENTITY = {"score_examples_per_class", "synflow_iterations", "model_architecture"}
# Training hyperparameters with a flag since issue 26 (the model's recipe before): left out of the identity while
# they equal the model's recipe (`_recipe`), so a directory of the recipe keeps the hash it had before the flags.
_RECIPE_IDENTITY = ("augment", "weight_decay", "lr_drops", "lr_gamma", "warmup", "nesterov", "init")
# Data and training options since issue 26, and the engine (issue 27): left out of the identity at these values
# (what was done before).
_DEFAULT_IDENTITY = {"train_subset": None, "random_labels": 0.0, "batchnorm_frozen": False, "output_frozen": False,
                     "dataset_fingerprint": None, "engine": "tf_keras"}


# The stated range of every numeric flag (finite, and small enough that nothing overflows or allocates without
# bound before a step runs): each trial's seed is seed * 1000 + trial (plan.data_key folds it to 32 bits).
MAX_SEED = 2_000_000
MAX_TRIALS = 1000
MAX_ROUNDS = 1000  # MAX_ITERATIONS (training steps per round): recipe.py
MAX_EVALUATIONS = 100_000  # evaluation points per round (round iterations / eval_every)
MAX_EPOCHS = 100_000
MAX_LEARNING_RATE = 1000.0
MAX_SCORE_EXAMPLES = 10_000
MAX_SYNFLOW_ITERATIONS = 100_000
MAX_PARALLEL_TRIALS = 64


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "lenet300_100"
    dataset: str = "mnist1d"
    data_dir: str | None = None
    output_dir: str | None = None  # None: results/<model>_<dataset>_<hash>
    rounds: int = 5
    trials: int = 1
    trial_index: int | None = None  # run only this trial
    variants: tuple = ("lottery",)
    pruning: str = "iterative"
    epochs: float | None = None
    iterations: int | None = None  # overrides epochs
    batch_size: int | None = None
    learning_rate: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    prune_rate_fc: float | None = None  # None: the paper's rate for the model (models.ModelSpec)
    prune_rate_conv: float | None = None
    prune_rate_output: float | None = None  # None: half the fc rate
    prune_layers: str = "all"
    pruning_scope: str | None = None  # None: the model's (global for resnet18/vgg19, Section 4)
    rewind_iteration: int = 0
    dropout: float = 0.0
    eval_every: int = 100
    seed: int = 0
    mixed_precision: bool = False
    strategy: str = "default"
    deterministic: bool = False
    tensorboard: bool = False
    trainer: str = "masked"  # masked (fast) | tfmot (the reference: tfmot's wrappers train the round)
    ablation: tuple = ()  # names in ABLATIONS; resolve() adds their variants to `variants`
    control_rounds: tuple = ()  # the rounds the controls/ablations train at; () = every round 1..rounds
    score_examples_per_class: int | None = None  # SNIP/GraSP batch (None: 10 for those methods)
    synflow_iterations: int | None = None  # None: 100 with --pruning=synflow
    parallel_trials: int = 1  # train up to this many trials' rounds side by side as one stacked model
    xla: str = "auto"  # XLA-compile the training step: auto (where it pays, experiment.xla_pays), on, off
    # ---- data options and training hyperparameters (issue 26; None: the model's recipe, ModelSpec) -------------
    train_subset: int | None = None  # train on a fixed, seeded subset of this many examples (after validation)
    random_labels: float | None = None  # this fraction of the training labels redrawn (seeded); resolved: 0.0
    augment: bool | None = None  # random flips and 4-px translations of the training images
    weight_decay: float | None = None  # decay gradient weight_decay * w on every Dense and Conv kernel
    lr_drops: tuple | None = None  # iterations (int) or epochs ("80ep") where the rate drops; resolved: iterations
    lr_gamma: float | None = None  # the factor of each drop (the recipe's: 0.1)
    warmup: int | str | None = None  # linear warm-up over this many iterations (int) or epochs ("5ep")
    nesterov: bool | None = None  # Nesterov momentum (SGD)
    init: str | None = None  # normal (std 0.1) | glorot | he, each a normal truncated at 2 std (models.networks)
    batchnorm_frozen: bool = False  # BatchNorm's gamma and beta keep their initial values (not trained)
    output_frozen: bool = False  # the output layer keeps its initial weights (not trained)
    dataset_fingerprint: str | None = None  # resolve(): a digest of a --dataset=module:function's arrays
    engine: str = "tf_keras"  # tf_keras | keras3 (ENGINES; issue 27)
    # --model=package.module:function: resolve() sets it to the built model's architecture digest
    # (lth_tf.models.user), so that two models, or an edited one, never share a results directory.
    model_architecture: str | None = None

    # ---- resolution ----------------------------------------------------------------------------------
    def resolve(self) -> "Config":
        """Fills the paper's defaults for the model and dataset, then validates. Raises ConfigError."""
        user = specs.is_user_model(self.model)
        if not user and not specs.known(self.model):
            raise ConfigError(f"unknown model '{self.model}'; choose one of: {', '.join(specs.names())}, "
                              f"resnet<N>_w<W>, or your own as --model=package.module:function")
        if user and self.engine == "keras3":  # before the model function is called (it builds a tf_keras model)
            self._validate_keras3()
        dspec = _dataset_spec(self.dataset, self.data_dir)
        _check_data_options(self, dspec)
        spec = specs.model_spec(self.model)
        reason = None if user else specs.fits(self.model, tuple(dspec.input_shape))
        if reason:
            raise ConfigError(f"{reason} ('{self.dataset}')")
        batch = self.batch_size if self.batch_size is not None else spec.batch_size
        fc_rate = self.prune_rate_fc if self.prune_rate_fc is not None else spec.prune_rate_fc
        filled = dataclasses.replace(
            self,
            batch_size=batch,
            learning_rate=self.learning_rate if self.learning_rate is not None else spec.learning_rate,
            optimizer=self.optimizer or spec.optimizer,
            momentum=self.momentum if self.momentum is not None else spec.momentum,
            prune_rate_fc=fc_rate,
            prune_rate_conv=self.prune_rate_conv if self.prune_rate_conv is not None else spec.prune_rate_conv,
            prune_rate_output=(self.prune_rate_output if self.prune_rate_output is not None
                               else fc_rate / 2),
            variants=tuple(self.variants),
            pruning_scope=self.pruning_scope or ("global" if spec.global_pruning else "layerwise"),
            model_architecture=_user_architecture(self, dspec) if user else None,
        )
        unknown = [a for a in self.ablation if a not in ABLATIONS]
        if unknown:
            raise ConfigError(f"unknown ablation '{','.join(unknown)}'; choose from: {', '.join(ABLATIONS)}")
        variants = list(filled.variants)
        variants += [ABLATIONS[a] for a in self.ablation if ABLATIONS[a] not in variants]
        filled = dataclasses.replace(
            filled, ablation=tuple(self.ablation), variants=tuple(variants),
            score_examples_per_class=(self.score_examples_per_class if self.score_examples_per_class is not None
                                      else 10 if self.pruning in ("snip", "grasp") else None),
            synflow_iterations=(self.synflow_iterations if self.synflow_iterations is not None
                                else 100 if self.pruning == "synflow" else None))
        if filled.epochs is None and filled.iterations is None and spec.epochs is not None:
            filled = dataclasses.replace(filled, epochs=spec.epochs)  # the paper gives epochs (arXiv v1, Figure 1)
        elif filled.epochs is None and filled.iterations is None and isinstance(batch, int) and batch > 0:
            # The paper trains for a fixed number of iterations; express it in epochs of this dataset.
            train_size = _train_examples(dspec, self.train_subset)
            filled = dataclasses.replace(filled, epochs=max(1, round(spec.iterations * batch / train_size)))
        filled = dataclasses.replace(filled, random_labels=self.random_labels or 0.0,
                                     dataset_fingerprint=dspec.fingerprint)
        filled._validate()
        return resolve_hyperparameters(filled, dspec)

    def _validate(self) -> None:
        def need(condition, message):
            if not condition:
                raise ConfigError(message)

        for name in ("prune_rate_fc", "prune_rate_conv", "prune_rate_output"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and 0.0 <= value < 1.0,
                 f"--{name} must be in [0, 1), got {value}")
        self._check_ranges(need)
        need(self.rounds >= 0, f"--rounds must be >= 0, got {self.rounds}")
        need(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        need(self.trials >= 1, f"--trials must be >= 1, got {self.trials}")
        need(self.trial_index is None or 0 <= self.trial_index < self.trials,
             f"--trial_index must be in [0, trials), got {self.trial_index}")
        need(self.batch_size > 0, f"--batch_size must be positive, got {self.batch_size}")
        need(self.iterations is not None or (self.epochs is not None and self.epochs > 0),
             f"--epochs must be positive, got {self.epochs}")
        need(self.iterations is None or self.iterations > 0, f"--iterations must be positive, got {self.iterations}")
        need(self.eval_every > 0, f"--eval_every must be positive, got {self.eval_every}")
        need(self.learning_rate > 0, f"--learning_rate must be positive, got {self.learning_rate}")
        need(0.0 <= self.momentum < 1.0, f"--momentum must be in [0, 1), got {self.momentum}")
        need(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")
        need(self.rewind_iteration >= 0, f"--rewind_iteration must be >= 0, got {self.rewind_iteration}")
        need(self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(self.pruning in PRUNING, f"--pruning must be one of {', '.join(PRUNING)}, got '{self.pruning}'")
        need(self.prune_layers in PRUNE_LAYERS,
             f"--prune_layers must be one of {', '.join(PRUNE_LAYERS)}, got '{self.prune_layers}'")
        need(self.pruning_scope in PRUNING_SCOPES,
             f"--pruning_scope must be one of {', '.join(PRUNING_SCOPES)}, got '{self.pruning_scope}'")
        need(self.score_examples_per_class is None or self.score_examples_per_class > 0,
             f"--score_examples_per_class must be positive, got {self.score_examples_per_class}")
        need(self.synflow_iterations is None or self.synflow_iterations > 0,
             f"--synflow_iterations must be positive, got {self.synflow_iterations}")
        need(self.trainer in TRAINERS, f"--trainer must be one of {', '.join(TRAINERS)}, got '{self.trainer}'")
        need(self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}")
        need(all(isinstance(r, int) and 1 <= r <= self.rounds for r in self.control_rounds),
             f"--control_rounds must be rounds in [1, {self.rounds}], got "
             f"{','.join(map(str, self.control_rounds))}")
        need(self.xla in XLA, f"--xla must be one of {', '.join(XLA)}, got '{self.xla}'")
        need(self.parallel_trials >= 1, f"--parallel_trials must be >= 1, got {self.parallel_trials}")
        if self.parallel_trials > 1 and specs.is_user_model(self.model):
            _check_user_stackable(self.model)
        elif self.parallel_trials > 1:
            need(specs.stackable(self.model), f"--parallel_trials cannot stack {self.model} (BatchNorm); stackable: "
                 f"{', '.join(m for m in specs.MODELS if specs.stackable(m))}")
            for clash, name in ((self.trainer != "masked", "--trainer=tfmot"),
                                (self.mixed_precision, "--mixed_precision"),
                                (self.strategy != "default", f"--strategy={self.strategy}"),
                                (self.tensorboard, "--tensorboard")):
                need(not clash, f"--parallel_trials={self.parallel_trials} does not combine with {name}; "
                     f"use --parallel_trials=1 for it")
        need(self.engine in ENGINES, f"--engine must be one of {', '.join(ENGINES)}, got '{self.engine}'")
        if self.engine == "keras3":
            self._validate_keras3()
        need(len(self.variants) > 0, "--variants must name at least one variant")
        unknown = [v for v in self.variants if v not in VARIANTS]
        need(not unknown, f"unknown variant '{','.join(unknown)}'; choose from: {', '.join(VARIANTS)}")
        need(self.rewind_iteration < self.round_iterations,
             f"--rewind_iteration ({self.rewind_iteration}) must be below the iterations per round "
             f"({self.round_iterations})")

    def _check_ranges(self, need) -> None:
        """Every numeric flag finite and within its stated range (the MAX_* above), before anything derived from
        it is computed: an infinite --epochs would overflow round_iterations, a huge --batch_size would allocate
        without bound when the pipeline is built, a huge --seed fails inside TensorFlow's seeding."""
        def number(value):
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        for name, value, low, high in (("rounds", self.rounds, 0, MAX_ROUNDS), ("seed", self.seed, 0, MAX_SEED),
                                       ("trials", self.trials, 1, MAX_TRIALS),
                                       ("eval_every", self.eval_every, 1, MAX_ITERATIONS),
                                       ("parallel_trials", self.parallel_trials, 1, MAX_PARALLEL_TRIALS)):
            need(number(value) and value <= high, f"--{name} must be in [{low}, {high}], got {value}")
        for name, value, high in (("iterations", self.iterations, MAX_ITERATIONS),
                                  ("score_examples_per_class", self.score_examples_per_class, MAX_SCORE_EXAMPLES),
                                  ("synflow_iterations", self.synflow_iterations, MAX_SYNFLOW_ITERATIONS)):
            need(value is None or (number(value) and value <= high), f"--{name} must be in [1, {high}], got {value}")
        need(self.epochs is None or (number(self.epochs) and self.epochs <= MAX_EPOCHS),
             f"--epochs must be positive and at most {MAX_EPOCHS}, got {self.epochs}")
        need(number(self.learning_rate) and self.learning_rate <= MAX_LEARNING_RATE,
             f"--learning_rate must be positive and at most {MAX_LEARNING_RATE:g}, got {self.learning_rate}")
        for name in ("momentum", "dropout"):
            need(number(getattr(self, name)), f"--{name} must be in [0, 1), got {getattr(self, name)}")
        need(number(self.rewind_iteration), f"--rewind_iteration must be >= 0, got {self.rewind_iteration}")
        dspec = _dataset_spec(self.dataset, self.data_dir)
        train = dspec.train_size - dspec.validation_size
        if isinstance(self.train_subset, int) and 1 <= self.train_subset <= train:
            train = self.train_subset  # --train_subset's own range is checked with the data options
        # A batch is gathered whole before the first step: a larger one than the training set cannot be drawn
        # and would only allocate (refused here, before any pipeline is built).
        need(number(self.batch_size) and 0 < self.batch_size <= train,
             f"--batch_size must be positive and at most the {train} training examples of {self.dataset}, "
             f"got {self.batch_size}")
        if self.iterations is None and self.epochs is not None and self.epochs > 0:
            need(self.round_iterations <= MAX_ITERATIONS,
                 f"--epochs={self.epochs:g} is {self.round_iterations} iterations per round; at most "
                 f"{MAX_ITERATIONS} are allowed (fewer --epochs, or a larger --batch_size)")
        if self.iterations is not None or (self.epochs is not None and self.epochs > 0):
            evaluations = math.ceil(self.round_iterations / self.eval_every) if self.eval_every > 0 else 0
            need(evaluations <= MAX_EVALUATIONS,
                 f"--eval_every={self.eval_every} evaluates {evaluations} times per round; at most "
                 f"{MAX_EVALUATIONS} are allowed (a larger --eval_every)")

    def _validate_keras3(self) -> None:
        """What the Keras 3 engine does not do (yet): one line each, before anything starts."""
        for clash, name, missing in (
                (specs.is_user_model(self.model), f"--model={self.model}",
                 "a model function gives a tf_keras model; Keras 3 models of your own are not taken yet"),
                (self.trainer != "masked", f"--trainer={self.trainer}", "tfmot prunes tf_keras models only"),
                (self.parallel_trials > 1, f"--parallel_trials={self.parallel_trials}",
                 "stacked trials are not written for Keras 3; use --parallel_trials=1"),
                (self.strategy != "default", f"--strategy={self.strategy}", "tf.distribute is tf_keras-only here"),
                (self.mixed_precision, "--mixed_precision", "not written for Keras 3"),
                (self.tensorboard, "--tensorboard", "the TensorBoard logs are written by tf_keras callbacks"),
                (self.pruning in AT_INIT, f"--pruning={self.pruning}",
                 "pruning at initialization scores tf_keras models (lth_tf.pruning.init_scores)"),
                (self.batchnorm_frozen, "--batchnorm_frozen", "frozen parameters are lth_tf.training.frozen's, "
                 "tf_keras-only"),
                (self.output_frozen, "--output_frozen", "frozen parameters are lth_tf.training.frozen's, "
                 "tf_keras-only")):
            if clash:
                raise ConfigError(f"--engine=keras3 does not combine with {name} ({missing}); use --engine=tf_keras "
                                  "for it")

    # ---- derived -------------------------------------------------------------------------------------
    @property
    def round_iterations(self) -> int:
        """Training steps per round before rounding up to a multiple of eval_every."""
        if self.iterations is not None:
            return int(self.iterations)
        return max(1, int(round(self.epochs * self.steps_per_epoch)))

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per pass over the training examples (validation held out, --train_subset applied)."""
        dspec = _dataset_spec(self.dataset, self.data_dir)
        return math.ceil(_train_examples(dspec, self.train_subset) / self.batch_size)

    def trial_ids(self) -> list:
        return [self.trial_index] if self.trial_index is not None else list(range(self.trials))

    def identity(self) -> dict:
        """The fields that define what a round's results mean."""
        recipe = _recipe(self.model)
        return {k: v for k, v in sorted(dataclasses.asdict(self).items())
                if k not in _NOT_IDENTITY and not (k in _OPTIONAL_IDENTITY and v is None)
                and not (k in _RECIPE_IDENTITY and v == recipe[k])
                and not (k in _DEFAULT_IDENTITY and v == _DEFAULT_IDENTITY[k])}

    def identity_hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["variants"] = list(self.variants)
        d["ablation"] = list(self.ablation)
        d["control_rounds"] = list(self.control_rounds)
        d["lr_drops"] = list(self.lr_drops) if self.lr_drops is not None else None
        d["round_iterations"] = self.round_iterations
        return d

    def results_dir(self) -> str:
        model = self.model.replace(":", ".")  # package.module:function -> package.module.function
        return self.output_dir or f"results/{model}_{self.dataset}_{self.identity_hash()}"


def _user_architecture(config: Config, dspec) -> str:
    """--model=package.module:function: the built model's digest, after the checks (lth_tf.models.user; this
    imports tf_keras, as the user's module does anyway). Raises ConfigError naming --model."""
    module = config.model.partition(":")[0]
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # importable from the working directory (as lth_tf.models.user does)
    try:  # a missing module is refused before TensorFlow starts
        missing = importlib.util.find_spec(module) is None
    except ModuleNotFoundError as e:
        raise ConfigError(f"--model {config.model}: cannot import module '{module}' ({e})") from None
    except (ImportError, ValueError):  # __main__ (a notebook, a script) and the like: lth_tf.models.user decides
        missing = False
    if missing:
        raise ConfigError(f"--model {config.model}: cannot import module '{module}' (No module named '{module}')")
    from lth_tf.models import user
    try:
        if config.dropout:
            raise user.UserModelError("--dropout adds layers to the built-in networks only; put Dropout layers "
                                      "in your model")
        if config.init is not None:
            raise user.UserModelError("--init sets the built-in networks' initialisers; your model's are its own")
        return _describe(user.load(config.model), config.model, tuple(dspec.input_shape), dspec.num_classes).digest
    except user.UserModelError as e:
        raise ConfigError(f"--model {config.model}: {e}") from None


_DESCRIBED: dict = {}


def _describe(function, name: str, input_shape: tuple, num_classes: int):
    """user.describe, once per (function, dataset shape) in a process: a redefined function is a new key."""
    from lth_tf.models import user
    key = (function, name, input_shape, num_classes)
    if key not in _DESCRIBED:
        _DESCRIBED[key] = user.describe(name, input_shape, num_classes)
    return _DESCRIBED[key]


def _check_user_stackable(name: str) -> None:
    from lth_tf.models import user
    from lth_tf.training import stacked
    net = user.build(name)
    try:
        stacked.check_stackable(net)
    except stacked.StackError as e:
        raise ConfigError(str(e).replace(f"stack {net.name}:", f"stack {name}:")) from None
