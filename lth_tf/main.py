"""Command line: python -m lth_tf.main --model=conv2 --rounds=15  (or --flagfile=flags/quickstart.flags).

The only module that reads flags. It turns them into a Config, runs the experiment into the results
directory, and prints progress and one line per finished round.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

from lth_tf import _env  # noqa: F401
from absl import app, flags, logging

from lth_tf.experiment import config as config_lib
from lth_tf.analysis import punchline  # no TensorFlow
from lth_tf.experiment import api  # no TensorFlow
from lth_tf.models import specs

FLAGS = flags.FLAGS
DIVERGED = 3  # the exit code of a run stopped by a diverged round (2: bad input, as everywhere)
D = config_lib.Config  # defaults come from one place

flags.DEFINE_string("model", D.model, "Network to prune: " + ", ".join(specs.names()) + ", resnet<N>_w<W> (CIFAR "
                    "ResNet-N at width W), or your own: package.module:function returning an untrained tf_keras "
                    "model (see README, 'Your own model').")
flags.DEFINE_string("dataset", D.dataset, "mnist | fashion_mnist | cifar10 | mnist1d (offline default); any "
                    "tensorflow-datasets image-classification name prepared in --data_dir (e.g. cifar100, "
                    "svhn_cropped, kmnist); or package.module:function returning (x_train, y_train, x_test, y_test).")
flags.DEFINE_string("data_dir", None, "Where datasets are (tfds directory, or IDX files for fashion_mnist/mnist).")
flags.DEFINE_string("output_dir", None, "Results directory (default: results/<model>_<dataset>_<config hash>).")
flags.DEFINE_integer("rounds", D.rounds, "Pruning rounds after the dense round 0.")
flags.DEFINE_float("epochs", None, "Training epochs per round (default: the model's, from its paper version's table).")
flags.DEFINE_integer("iterations", None, "Training iterations per round; overrides --epochs.")
flags.DEFINE_integer("batch_size", None, "Mini-batch size (default: the paper's for the model).")
flags.DEFINE_float("learning_rate", None, "Learning rate (default: the paper's for the model).")
flags.DEFINE_enum("optimizer", None, list(config_lib.OPTIMIZERS), "Optimizer (default: the model's).")
flags.DEFINE_float("momentum", None, "SGD momentum (default: the model's).")
flags.DEFINE_float("prune_rate_fc", D.prune_rate_fc, "Fraction of surviving fc weights pruned per round.")
flags.DEFINE_float("prune_rate_conv", D.prune_rate_conv, "Fraction of surviving conv weights pruned per round.")
flags.DEFINE_float("prune_rate_output", None, "Rate for the output layer (default: half of --prune_rate_fc).")
flags.DEFINE_enum("prune_layers", D.prune_layers, list(config_lib.PRUNE_LAYERS), "Which layers to prune.")
flags.DEFINE_enum("pruning_scope", None, list(config_lib.PRUNING_SCOPES),
                  "Rank weights per layer or across all pruned layers (default: the model's; global for "
                  "resnet18/vgg19). Global pools every layer with a non-zero rate; layers of equal rate share one "
                  "threshold, so --prune_rate_output=0 keeps the output layer out.")
flags.DEFINE_enum("trainer", D.trainer, list(config_lib.TRAINERS),
                  "masked: lth_tf's fast path (gradients of pruned weights zeroed); tfmot: the reference, "
                  "training tfmot's PruneLowMagnitude wrappers with the mask held fixed.")
flags.DEFINE_enum("pruning", D.pruning, list(config_lib.PRUNING),
                  "iterative (IMP) or oneshot magnitude pruning after training; or pruning at initialization "
                  "(Frankle et al. 2021): random, magnitude_init, snip, grasp, synflow score W_0 (W_k with "
                  "--rewind_iteration) and prune in one shot to IMP's exact weight count at each round.")
flags.DEFINE_list("ablation", [], "Sanity checks of pruning at initialization, each stored as a variant "
                  "(comma-separated): none (the method itself, variant lottery), shuffle (masks permuted within "
                  "each layer), reinit (masks kept, weights drawn afresh), invert (highest scores pruned). "
                  "With --pruning=random|magnitude_init|snip|grasp|synflow, or iterative/oneshot (IMP).")
flags.DEFINE_list("control_rounds", [], "Train the controls and ablations (--variants other than lottery) only at "
                  "these rounds (comma-separated, e.g. 2); default: every round.")
flags.DEFINE_integer("score_examples_per_class", None, "SNIP and GraSP score on this many training examples "
                     "per class (default 10).")
flags.DEFINE_integer("synflow_iterations", None, "SynFlow's pruning iterations to each level (default 100).")
flags.DEFINE_list("variants", list(D.variants), "Comma-separated: lottery, reinit, rearrange, shuffle, invert.")
flags.DEFINE_integer("rewind_iteration", D.rewind_iteration, "Rewind to the weights after this many iterations.")
flags.DEFINE_float("dropout", D.dropout, "Dropout rate after hidden dense layers.")
flags.DEFINE_integer("eval_every", D.eval_every, "Evaluate validation and test sets every N iterations.")
flags.DEFINE_integer("trials", D.trials, "Independent trials (different seeds).")
flags.DEFINE_integer("trial_index", None, "Run only this trial (to spread trials over processes).")
flags.DEFINE_integer("seed", D.seed, "Base random seed.")
flags.DEFINE_bool("mixed_precision", D.mixed_precision, "Train in mixed_float16 (GPU).")
flags.DEFINE_enum("strategy", D.strategy, list(config_lib.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_bool("deterministic", D.deterministic, "Enable TensorFlow op determinism.")
flags.DEFINE_bool("tensorboard", D.tensorboard, "Write TensorBoard logs per round.")
flags.DEFINE_bool("quiet", False, "Print only the round lines.")
flags.DEFINE_integer("parallel_trials", D.parallel_trials, "Train up to N trials (or N control rounds, or both "
                     "copies of an instability pair) side by side as one stacked model; results are stored per trial "
                     "as with 1. Networks without BatchNorm (lenet300_100, conv2, conv4, conv6 and their ICLR "
                     "versions).")
flags.DEFINE_enum("engine", D.engine, list(config_lib.ENGINES), "Training engine: tf_keras (tfmot's Keras 2) or "
                  "keras3 (Keras 3 on the backend KERAS_BACKEND names: tensorflow, jax or torch; no tf_keras or tfmot, "
                  "and no TensorFlow at all on jax).")
flags.DEFINE_enum("xla", D.xla, list(config_lib.XLA), "XLA-compile the training step: auto (where measured faster: "
                  "networks without convolutions, lth_tf's masked trainer, one device), on, or off.")

_FIELDS = ("model", "dataset", "data_dir", "output_dir", "rounds", "epochs", "iterations", "batch_size",
           "learning_rate", "optimizer", "momentum", "prune_rate_fc", "prune_rate_conv", "prune_rate_output",
           "prune_layers", "pruning_scope", "trainer", "pruning", "rewind_iteration", "dropout", "eval_every", "trials", "trial_index",
           "seed", "mixed_precision", "strategy", "deterministic", "tensorboard")
_FIELDS += ("score_examples_per_class", "synflow_iterations", "parallel_trials", "xla", "engine")

# ---- data options and every training hyperparameter (issue 26): None = the model's recipe ----------------------
flags.DEFINE_integer("train_subset", None, "Train on a fixed subset of this many training examples (seeded by "
                     "--seed; after the validation hold-out).")
flags.DEFINE_float("random_labels", None, "Redraw this fraction of the training labels uniformly (seeded by --seed).")
flags.DEFINE_bool("augment", None, "Random flips and 4-px translations of training images (default: the model's; "
                  "resnet18, vgg19 augment).")
flags.DEFINE_float("weight_decay", None, "Decay gradient weight_decay * w on every Dense and Conv kernel "
                   "(default: the model's).")
flags.DEFINE_list("lr_drops", None, "Iterations at which the learning rate drops by --lr_gamma, comma-separated; "
                  "epochs written 80ep (default: the model's).")
flags.DEFINE_float("lr_gamma", None, "Factor of each learning-rate drop (default 0.1).")
flags.DEFINE_string("warmup", None, "Linear learning-rate warm-up over this many iterations, or epochs written 5ep "
                    "(default: the model's).")
flags.DEFINE_bool("nesterov", None, "Nesterov momentum (SGD; default off).")
flags.DEFINE_enum("init", None, list(config_lib.INITS), "Initialisation: normal (std 0.1), glorot (Normal Xavier), "
                  "he; each truncated at 2 std (default: the model's).")
flags.DEFINE_bool("batchnorm_frozen", D.batchnorm_frozen, "BatchNorm gamma and beta are not trained.")
flags.DEFINE_bool("output_frozen", D.output_frozen, "The output layer is not trained.")
_FIELDS += ("train_subset", "random_labels", "augment", "weight_decay", "lr_gamma", "warmup", "nesterov", "init",
            "batchnorm_frozen", "output_frozen")


def config_from_flags() -> config_lib.Config:
    values = {name: FLAGS[name].value for name in _FIELDS}
    values["variants"] = tuple(v.strip() for v in FLAGS.variants if v.strip())
    values["ablation"] = tuple(a.strip() for a in FLAGS.ablation if a.strip())
    if FLAGS.lr_drops is not None:  # --lr_drops= (empty): no drops
        values["lr_drops"] = tuple(d.strip() for d in FLAGS.lr_drops if d.strip())
    try:
        values["control_rounds"] = tuple(int(r) for r in FLAGS.control_rounds if r.strip())
    except ValueError:
        raise config_lib.ConfigError(f"--control_rounds must be round numbers, got "
                                     f"'{','.join(FLAGS.control_rounds)}'") from None
    return config_lib.Config(**values).resolve()


class Printer:
    """Turns experiment events into the lines a person watches."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.tty = quiet, sys.stdout.isatty()
        self.began = time.perf_counter()
        self.current = None  # (trial, variant, round) being trained: what a stop line talks about

    def __call__(self, event) -> None:
        if event.kind == "start":
            self.current = (event.trial, event.variant, event.round)
        if event.kind == "round":
            self.current = None
            row = event.info
            self._clear()
            print(f"trial {row['trial']}  {row['variant']:<9} round {row['round']:>2}  "
                  f"weights remaining {100 * row['weights_remaining']:6.2f}%  "
                  f"early-stop iteration {row['early_stop_iteration']:>6}  "
                  f"test accuracy {row['test_accuracy_at_early_stop']:.4f} (final {row['test_accuracy']:.4f})  "
                  f"{row['train_seconds']:.1f}s", flush=True)
        elif event.kind == "resume" and not self.quiet:
            self._clear()
            print(f"trial {event.trial}  {event.variant:<9} round {event.round:>2}  resuming from its backup at "
                  f"iteration {event.info['iteration']}", flush=True)
        elif event.kind == "skip" and not self.quiet:
            print(f"trial {event.trial}  {event.variant:<9} round {event.round:>2}  already finished", flush=True)
        elif event.kind == "eval" and not self.quiet:
            p = event.info
            line = (f"  trial {event.trial} {event.variant} round {event.round}: iteration {p['iteration']}/"
                    f"{p['total']}  val loss {p['val_loss']:.4f}  test accuracy {p['test_accuracy']:.4f}")
            if self.tty:
                print("\r" + line, end="", flush=True)
            elif p["iteration"] == p["total"] or p["iteration"] % (10 * max(1, p["total"] // 10 or 1)) == 0:
                print(line, flush=True)

    def _clear(self):
        if self.tty and not self.quiet:
            print("\r" + " " * 110 + "\r", end="")


def _fail(message: str, code: int = 2):
    print(f"lth_tf: error: {message}", file=sys.stderr)
    sys.exit(code)


def _warn(message: str) -> None:
    print(f"lth_tf: warning: {message}", file=sys.stderr, flush=True)


def _writes_results(strategy: str) -> bool:
    """distribute.is_chief, without starting TensorFlow. A malformed TF_CONFIG counts as the chief here:
    distribute refuses it once TensorFlow is up, and the store then removes what this process created."""
    if strategy != "multi_worker":
        return True
    import json
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "").strip() or "null")
        if config is None:
            return True
        task, cluster = config["task"], config["cluster"]
        return task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0
                                           and "chief" not in cluster)
    except (ValueError, TypeError, KeyError):
        return True


def _stop_line(stop, store, current, kept: str = "finished rounds") -> str:
    """What a stopped run kept and how to go on, in one line. current: the (trial, variant, round) being
    trained, variant "<v>/copy<i>" for a copy of an instability pair, or None."""
    line = f"{kept} are kept"
    if store is not None and current is not None:
        trial, variant, round_ = current
        variant, _, copy = variant.partition("/copy")
        copy = int(copy) if copy.isdigit() else None
        what = f"trial {trial} {variant} round {round_}" + (f" copy {copy}" if copy is not None else "")
        iteration = store.backup_iteration(trial, variant, round_, copy)
        line = (f"{kept} and the backup of {what} at iteration {iteration} are kept" if iteration is not None
                else f"{kept} are kept ({what} restarts: no backup yet)")
    return f"lth_tf: stopped by {stop.name}; {line}; run the same command again to resume"


open_checked = api.open_checked  # lth_tf.instability and the tests use it from here


def main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are written --name=value)")
    from lth_tf.experiment import engines, files, signals  # no TensorFlow: refusals come before it starts
    from lth_tf.experiment import store as store_lib
    from lth_tf.training import threads

    printer, store = Printer(FLAGS.quiet), None
    try:
        with signals.stop_on_signals(), contextlib.ExitStack() as held:
            try:
                cfg = config_from_flags()
                if cfg.engine == "keras3":
                    engines.keras_backend()  # an unknown or uninstalled KERAS_BACKEND, before Keras starts
                threads.settings(cfg.model)  # a bad LTH_TF_*_THREADS override is refused here, before TensorFlow
                chief = _writes_results(cfg.strategy)
                store = store_lib.Store(cfg.results_dir(), on_warning=_warn)
                open_checked(held, cfg, store, chief)
            except (config_lib.ConfigError, files.StoreError, threads.ThreadsError, engines.EngineError) as e:
                _fail(str(e))
            _run(cfg, store, chief, printer)
    except signals.Stopped as stop:
        print(_stop_line(stop, store, printer.current), file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)


def _start_keras3(cfg) -> str:
    """--engine=keras3: Keras 3 on its backend; with --deterministic, its seeds (and TensorFlow's op determinism on
    the tensorflow backend). Imports no TensorFlow on the other backends. Returns what to print."""
    from lth_tf.experiment import engines
    if engines.keras_backend() == "tensorflow":  # the tf_keras engine's CPU threads, before TensorFlow's first op
        from lth_tf.training import threads
        threads.configure(cfg.model)
    import keras
    backend = keras.backend.backend()
    if cfg.deterministic:
        keras.utils.set_random_seed(cfg.seed)
        if backend == "tensorflow":
            import tensorflow as tf
            tf.config.experimental.enable_op_determinism()
    return f" on Keras {keras.__version__} ({backend})"


def _run(cfg, store, chief: bool, printer) -> None:
    """The part that needs TensorFlow (tf_keras engine) or Keras 3 (keras3 engine); the chief's store is open and
    its trials are locked."""
    from lth_tf.experiment import files
    results_dir = store.root
    logging.set_verbosity(logging.ERROR)  # tensorflow-datasets logs through absl; our own lines suffice
    from lth_tf.data import datasets, loading
    from lth_tf.experiment import experiment
    from lth_tf.training.jobs import Diverged

    strategy, engine_line = None, ""
    if cfg.engine == "keras3":
        engine_line = _start_keras3(cfg)
    else:
        from lth_tf.experiment import distribute
        from lth_tf.training import threads
        threads.configure(cfg.model)  # before any TensorFlow op, like the strategies below; never depends on N
        try:  # before any TensorFlow op: multi-worker and TPU strategies configure the runtime
            strategy = distribute.create(cfg.strategy) if cfg.strategy != "default" else None
            if cfg.deterministic:
                distribute.enable_determinism(cfg.seed)
        except distribute.StrategyError as e:
            _fail(str(e))
        _check_device(cfg)
    try:
        # A failure here leaves the directory as it was: Store.open removes the lock files and config.json it made.
        dataset = loading.load(cfg.dataset, cfg.data_dir, seed=cfg.seed)
        data_note = (f"; training subset of {cfg.train_subset}" if cfg.train_subset else "") + (
            f"; {cfg.random_labels:g} of the training labels random" if cfg.random_labels else "")
        print(f"lth_tf: {cfg.model}{engine_line} on {cfg.dataset} ({dataset.source}{data_note}), {cfg.rounds} rounds x "
              f"{_iterations_text(cfg)}, trials {cfg.trial_ids()}, variants {','.join(cfg.variants)}; "
              f"results in {results_dir}", flush=True)
        if cfg.tensorboard and chief:
            logs = os.path.join(results_dir, "tensorboard")
            print(f"lth_tf: TensorBoard logs, one run per round, in {logs} (view: tensorboard --logdir {logs})",
                  flush=True)
        if strategy is not None:
            from lth_tf.experiment import distribute
            role = "" if chief else " (not the chief: the chief writes the results)"
            print(f"lth_tf: strategy {cfg.strategy}: {distribute.describe(strategy)}{role}", flush=True)
        if chief:
            rows = experiment.run(cfg, store, on_event=printer, dataset=dataset, strategy=strategy)
        else:  # same steps as the chief (collectives need every worker), writes to a throwaway directory
            from lth_tf.experiment import distribute
            with distribute.WorkerStore.opened(results_dir) as worker_store:
                experiment.run(cfg, worker_store, on_event=printer, dataset=dataset, strategy=strategy)
        print(f"lth_tf: done in {time.perf_counter() - printer.began:.1f}s; table: {results_dir}/results.csv",
              flush=True)
        line = punchline.comparison(rows) if chief else None  # the ticket against its control, from the table
        if line:
            print(f"lth_tf: {line}", flush=True)
    except (config_lib.ConfigError, datasets.DataError, files.StoreError) as e:
        _fail(str(e))
    except Diverged as e:
        _fail(str(e), code=DIVERGED)


def _check_device(cfg) -> None:
    """One warning line for a setting this machine runs badly (TensorFlow has started; listing devices is cheap)."""
    if cfg.mixed_precision:
        import tensorflow as tf
        if not tf.config.list_physical_devices("GPU"):
            _warn("--mixed_precision without a GPU: float16 on a CPU is emulated and trains many times slower "
                  "(about 15x for lenet300_100); leave it out on this machine")


def _iterations_text(cfg) -> str:
    """The iterations a round trains: round_iterations, rounded up to a multiple of --eval_every (a round
    evaluates, and ends, at multiples of it); the header says so when that changes the number."""
    chunk = max(1, min(cfg.eval_every, cfg.round_iterations))
    trained = chunk * -(-cfg.round_iterations // chunk)
    if trained == cfg.round_iterations:
        return f"{trained} iterations"
    return (f"{trained} iterations ({cfg.round_iterations} rounded up to a multiple of "
            f"--eval_every={cfg.eval_every})")


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _fail(str(e).splitlines()[0])


def run() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
