"""Training throughput, side by side: plain Keras, lth_tf's masked round training, and tfmot's wrapper.

    python -m benchmarks.throughput                  # lenet300_100 (batch 60) and conv2 (batch 50): 10-15 min on 2 cores
    python -m benchmarks.throughput --quick          # smoke test: tiny steps, a minute or two
    python -m benchmarks.throughput --overhead       # also: per-round overhead and peak memory of the quickstart
    python -m benchmarks.throughput --overhead_only --overhead_args="--rounds=2 --epochs=2"

In one process, for each model it builds three kinds of trainer on the same data and the same
input pipeline (the one lth_tf's RoundTrainer uses: `lth_tf.training.streams.train_stream` over Fashion-MNIST,
or random 28x28x1 data with 10 classes when Fashion-MNIST is not installed, which it says):

  (a) "keras dense": the plain model, compiled like the masked trainer (same optimizer, loss, metrics and
      steps_per_execution), trained with `model.fit`; the baseline of every ratio. A second "keras dense"
      row with Keras' default of one step per execution shows what that setting alone is worth;
  (b) "lth_tf masked": one `lth_tf.training.trainer.RoundTrainer` for the model, `train(start_weights, masks)` at
      each sparsity (uniform per layer, one-shot magnitude masks of the initial kernels); the same trainer, so
      also checks that rounds at new masks run at full speed without retracing;
  (c) "tfmot naive": `prune_low_magnitude` with `ConstantSparsity(s, begin_step=0, frequency=100)` and the
      `UpdatePruningStep` callback, fitted with `model.fit` and Keras' default settings, as a Keras user
      would write it;
  (d) "lth_tf tfmot trainer": a RoundTrainer with `--trainer=tfmot` (tfmot's wrappers train, the mask held
      fixed, several steps per execution), the reference path, at the tfmot sparsities.

What is timed: every call trains `epochs + 1` Keras epochs of `steps` steps; only epochs 1..epochs are
timed, each from `on_epoch_begin` to `on_epoch_end` of a callback that has no per-batch hooks (so timing
forces no device sync). Epoch 0 absorbs the per-call start (iterator creation, first-step overhead).
For (b) the RoundTrainer evaluates at the end of each epoch (eval_every = steps, on 100-example validation
and test sets); each evaluation is timed and left out, so all three numbers are pure training steps.
Per-round costs outside the training steps are measured separately (--overhead). Two clocks: wall time,
and the CPU time of this process (all its threads, the input pipeline's included). On a machine shared
with other jobs the wall clock swings with their load (2x within a minute was seen here), while the CPU
time a step takes does not; R uses the CPU clock unless --clock=wall, and the table shows both.

Each configuration is warmed up once (tracing), then the configurations run `repeats` times, interleaved
(the order rotates every repeat), so load from other processes hits all of them alike. The table gives
median examples per second (wall) and per CPU-second and, as "ratio", the median over repeats of the
ratio to the dense run of the same repeat. The last line reads

    lenet300_100 b60 sparsity 0.9 masked/dense throughput ratio: R

--overhead runs the quickstart experiment (flags/quickstart.flags) in a child process, timing each round
from the experiment's events: train() (steps and evaluations) versus everything else in the round (mask
computation, rewinding, snapshots, store writes), and reports the child's peak RSS (getrusage ru_maxrss).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # `python benchmarks/throughput.py` as well as `python -m benchmarks.throughput`
    sys.path.insert(0, _ROOT)

DEFAULT_MODELS = ("lenet300_100", "conv2")
BATCH = {"lenet300_100": 60, "conv2": 50}
# Steps per timed epoch: a few seconds each on 2 shared CPU cores.
DEFAULT_STEPS = {"lenet300_100": 500, "conv2": 15}
QUICK_STEPS = {"lenet300_100": 20, "conv2": 2}
HEADLINE_SPARSITY = 0.9
EVAL_EXAMPLES = 100  # validation and test examples the RoundTrainer evaluates (excluded from timing)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated models (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per timed epoch (default: lenet300_100 500, conv2 15; --quick: 20, 2)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per call (default 2; --quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 5; --quick 2)")
    parser.add_argument("--sparsities", default="0,0.5,0.9,0.98", help="sparsities for lth_tf's masked training")
    parser.add_argument("--tfmot_sparsities", default="0.9", help="sparsities for tfmot's wrapper ('' for none)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="which time the headline ratio R uses (the table shows both; default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: few steps, 2 repeats")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size for every model (default: lenet300_100 60, conv2 50, others 128)")
    parser.add_argument("--xla", action="store_true",
                        help="also time lth_tf's masked round training XLA-compiled (at sparsity 0.9)")
    parser.add_argument("--mixed_precision", action="store_true",
                        help="build and train every trainer under Keras' mixed_float16 policy (GPU)")
    parser.add_argument("--random_data", action="store_true", help="use random data, not Fashion-MNIST")
    parser.add_argument("--overhead", action="store_true",
                        help="also time the quickstart's rounds and report its peak memory")
    parser.add_argument("--overhead_only", action="store_true", help="only the --overhead part")
    parser.add_argument("--flagfile", default=os.path.join(_ROOT, "flags", "quickstart.flags"),
                        help="experiment for --overhead (default: %(default)s)")
    parser.add_argument("--overhead_args", default="",
                        help="extra lth_tf.main flags for --overhead, e.g. '--rounds=2 --epochs=2'")
    parser.add_argument("--overhead_child", default=None, help=argparse.SUPPRESS)  # internal: output dir
    args = parser.parse_args(argv)
    try:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        args.sparsities = _floats(args.sparsities)
        args.tfmot_sparsities = _floats(args.tfmot_sparsities)
    except ValueError as e:
        parser.error(str(e))
    unknown = [m for m in args.models if m not in BATCH]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(BATCH)}")
    if HEADLINE_SPARSITY not in args.sparsities:
        args.sparsities.append(HEADLINE_SPARSITY)  # the headline ratio needs it
    for name in ("steps", "epochs", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    args.epochs = args.epochs or (1 if args.quick else 2)
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def _floats(text: str) -> list:
    values = [float(v) for v in text.split(",") if v.strip()]
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if bad:
        raise ValueError(f"sparsities must be in [0, 1), got {bad}")
    return values


# ---- data ------------------------------------------------------------------------------------------

def load_data(random_data: bool):
    """Fashion-MNIST (the real IDX files), else random data of its shape; small eval sets (not timed)."""
    from lth_tf.data import datasets, loading, pipelines
    import numpy as np

    dataset = None
    if not random_data:
        try:
            dataset = loading.load("fashion_mnist")
        except datasets.DataError as e:
            print(f"benchmark: Fashion-MNIST unavailable ({e}); using random data of its shape", flush=True)
    if dataset is None:
        rng = np.random.default_rng(0)

        def images(n):
            return rng.random((n, 28, 28, 1), dtype=np.float32)

        def labels(n):
            return rng.integers(0, 10, n).astype(np.int32)
        dataset = pipelines.Dataset(name="random", input_shape=(28, 28, 1), num_classes=10,
                                    source="random data, 28x28x1, 10 classes (Fashion-MNIST not used)",
                                    x_train=images(55_000), y_train=labels(55_000), x_val=images(EVAL_EXAMPLES),
                                    y_val=labels(EVAL_EXAMPLES), x_test=images(EVAL_EXAMPLES),
                                    y_test=labels(EVAL_EXAMPLES))
    # Evaluation is excluded from the timing; small sets keep its wall time down.
    return dataclasses.replace(dataset, x_val=dataset.x_val[:EVAL_EXAMPLES], y_val=dataset.y_val[:EVAL_EXAMPLES],
                               x_test=dataset.x_test[:EVAL_EXAMPLES], y_test=dataset.y_test[:EVAL_EXAMPLES])


class _Stream:
    """The training input every trainer gets: the stream RoundTrainer builds for each round."""

    def __init__(self, dataset, batch_size: int, seed: int):
        import tensorflow as tf
        from lth_tf.training import streams
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self._make = getattr(streams, "train_stream", None)
        if self._make is not None:
            with tf.device("/cpu:0"):  # as RoundTrainer does: the arrays once, gathered per batch
                self.x, self.y = tf.constant(dataset.x_train), tf.constant(dataset.y_train)

    def new(self):
        if self._make is not None:  # a fresh stream per call, as RoundTrainer.train makes one per round
            return self._make(self.x, self.y, self.batch_size, self.seed)
        return self.dataset.train_pipeline(self.batch_size, self.seed)  # older trainers' pipeline

    @property
    def description(self) -> str:
        return "training.train_stream" if self._make is not None else "data.Dataset.train_pipeline"


# ---- timing ----------------------------------------------------------------------------------------

def _now():
    """(wall seconds, CPU seconds of this process: all its threads, tf.data's included)."""
    return time.perf_counter(), time.process_time()


def _clock_class():
    import tf_keras as keras

    class EpochClock(keras.callbacks.Callback):
        """Wall-clock and CPU time of each epoch, less the evaluations run inside it. Epoch hooks only:
        Keras then runs the steps without per-batch Python calls, so the clock costs nothing per step and
        forces no sync."""

        def __init__(self):
            super().__init__()
            self.begins, self.ends, self.excluded, self.epoch = {}, {}, {}, None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.begins[epoch] = _now()

        def on_epoch_end(self, epoch, logs=None):
            self.ends[epoch] = _now()

        def exclude(self, wall, cpu):
            """Time spent in an evaluation during the current epoch."""
            w, c = self.excluded.get(self.epoch, (0.0, 0.0))
            self.excluded[self.epoch] = (w + wall, c + cpu)

        def seconds(self, epoch):
            (w0, c0), (w1, c1) = self.begins[epoch], self.ends[epoch]
            ew, ec = self.excluded.get(epoch, (0.0, 0.0))
            return w1 - w0 - ew, c1 - c0 - ec
    return EpochClock


@dataclasses.dataclass
class Config:
    """One row of the table: how to run one call, and what it measured."""
    model: str
    kind: str  # "keras dense", "lth_tf masked", "tfmot naive", "lth_tf tfmot trainer"
    sparsity: float | None
    steps_per_execution: int
    run: object  # () -> (wall seconds, CPU seconds) of the timed epochs
    wall: list = dataclasses.field(default_factory=list)  # examples per wall-clock second, one per repeat
    cpu: list = dataclasses.field(default_factory=list)  # examples per CPU second of this process


def batch_size(name: str, args) -> int:
    return args.batch or BATCH.get(name, 128)


def build_configs(name: str, dataset, args, steps: int) -> list:
    import numpy as np
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from lth_tf.models import networks, specs
    from lth_tf.pruning import masks as pruning
    from lth_tf.pruning import rewind
    from lth_tf.training.schedule import TrainSpec, make_optimizer
    from lth_tf.training.trainer import RoundTrainer

    batch = batch_size(name, args)
    epochs = args.epochs + 1  # epoch 0 is not timed
    EpochClock = _clock_class()
    spec = TrainSpec(batch_size=batch, learning_rate=specs.MODELS[name].learning_rate,
                     iterations=epochs * steps, eval_every=steps, seed=0,
                     mixed_precision=args.mixed_precision)
    stream = _Stream(dataset, batch, seed=0)

    def build():
        return networks.build(name, dataset.input_shape, dataset.num_classes, seed=0)

    net = build()
    trainer = RoundTrainer(net, dataset, spec)
    start = rewind.snapshot(net)
    kernels = pruning.kernels(net)
    spe = getattr(trainer, "steps_per_execution", 1)

    def compile_like_trainer(model, steps_per_execution):
        # The same optimizer, loss, metrics and steps per execution as the RoundTrainer compiles with.
        model.compile(optimizer=make_optimizer(spec),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                      steps_per_execution=steps_per_execution)
        return model

    def timed_epochs(clock):
        times = [clock.seconds(e) for e in range(1, epochs)]
        return sum(w for w, _ in times), sum(c for _, c in times)

    def fit_seconds(model, extra_callbacks=()):
        clock = EpochClock()
        model.fit(stream.new(), epochs=epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[*extra_callbacks, clock])
        return timed_epochs(clock)

    # (a) first: the baseline of the ratios. Then the same model with Keras' default fit (one step per
    # execution), to show what the shared steps_per_execution setting is worth by itself.
    configs = []
    dense = compile_like_trainer(build(), spe)
    configs.append(Config(name, "keras dense", None, spe, lambda: fit_seconds(dense)))
    if spe != 1:
        dense_default = compile_like_trainer(build(), 1)
        configs.append(Config(name, "keras dense", None, 1, lambda: fit_seconds(dense_default)))

    # The RoundTrainer evaluates at the end of every epoch, before the clock's epoch end: time each
    # evaluation (that trainer's evaluate only) and leave it out.
    active = []

    def exclude_evaluations(round_trainer):
        evaluate = round_trainer.trainer.evaluate

        def timed_evaluate(*a, **k):
            began = _now()
            try:
                return evaluate(*a, **k)
            finally:
                ended = _now()
                for clock in active:
                    clock.exclude(ended[0] - began[0], ended[1] - began[1])
        round_trainer.trainer.evaluate = timed_evaluate

    def masked_run(round_trainer, masks, weights):
        def run():
            clock = EpochClock()
            active[:] = [clock]
            round_trainer.train(weights, masks, callbacks=[clock])
            return timed_epochs(clock)
        return run

    exclude_evaluations(trainer)
    for s in args.sparsities:
        masks = pruning.prune_oneshot(kernels, {layer: 1.0 - s for layer in kernels})
        if s == 0:
            masks = {layer: np.ones_like(m) for layer, m in masks.items()}
        configs.append(Config(name, "lth_tf masked", s, spe, masked_run(trainer, masks, start)))

    # (e) "lth_tf masked xla": the same round training with the step XLA-compiled (TrainSpec.jit_compile, --xla).
    if args.xla:
        xla_net = build()
        xla_trainer = RoundTrainer(xla_net, dataset, dataclasses.replace(spec, jit_compile=True))
        exclude_evaluations(xla_trainer)
        masks = pruning.prune_oneshot(kernels, {layer: 1.0 - HEADLINE_SPARSITY for layer in kernels})
        configs.append(Config(name, "masked xla", HEADLINE_SPARSITY, spe,
                              masked_run(xla_trainer, masks, rewind.snapshot(xla_net))))

    # (d) "lth_tf tfmot trainer": the reference path of --trainer=tfmot, a RoundTrainer training tfmot's
    # PruneLowMagnitude wrappers (mask held fixed, UpdatePruningStep), at the tfmot sparsities.
    if args.tfmot_sparsities:
        tfmot_net = build()
        tfmot_trainer = RoundTrainer(tfmot_net, dataset, dataclasses.replace(spec, trainer="tfmot"))
        exclude_evaluations(tfmot_trainer)
        tfmot_start = rewind.snapshot(tfmot_net)
        for s in args.tfmot_sparsities:
            masks = pruning.prune_oneshot(kernels, {layer: 1.0 - s for layer in kernels})
            configs.append(Config(name, "lth_tf tfmot trainer", s, tfmot_trainer.steps_per_execution,
                                  masked_run(tfmot_trainer, masks, tfmot_start)))

    for s in args.tfmot_sparsities:
        schedule = tfmot.sparsity.keras.ConstantSparsity(s, begin_step=0, frequency=100)
        # Naive: Keras' default fit, one step per execution (UpdatePruningStep counts steps in batch hooks).
        wrapped = compile_like_trainer(tfmot.sparsity.keras.prune_low_magnitude(build(), pruning_schedule=schedule), 1)
        configs.append(Config(name, "tfmot naive", s, 1,
                              (lambda m: lambda: fit_seconds(m, [tfmot.sparsity.keras.UpdatePruningStep()]))(wrapped)))
    return configs, stream.description, trainer


def measure(configs: list, args, steps: int, batch: int, log) -> None:
    examples = steps * args.epochs * batch
    warmed = set()
    for config in configs:  # warm-up: tracing and first steps, once per trainer object
        key = "masked" if config.kind == "lth_tf masked" else id(config)
        if key not in warmed:
            config.run()
            warmed.add(key)
    for repeat in range(args.repeats):
        order = configs[repeat % len(configs):] + configs[:repeat % len(configs)]
        for config in order:
            wall, cpu = config.run()
            config.wall.append(examples / wall)
            config.cpu.append(examples / cpu)
        log(f"  repeat {repeat + 1}/{args.repeats}, examples/s wall (per CPU-s): " + ", ".join(
            f"{_label(c)} {c.wall[-1]:.0f} ({c.cpu[-1]:.0f})" for c in configs))


def _label(config) -> str:
    return (config.kind + ("" if config.sparsity is None else f" {config.sparsity:g}")
            + f" (spe {config.steps_per_execution})")


def _ratio(config, dense, clock: str) -> float:
    """Median over repeats of this configuration's throughput over the dense one's in the same repeat."""
    mine, base = (config.wall, dense.wall) if clock == "wall" else (config.cpu, dense.cpu)
    return statistics.median(a / b for a, b in zip(mine, base))


def table(rows: list) -> str:
    """rows: (model, batch, steps, configs)."""
    header = (f"{'model':<13} {'batch':>5} {'trainer':<14} {'spe':>4} {'sparsity':>8} | {'wall ex/s':>9} "
              f"{'min':>7} {'max':>7} {'ratio':>6} | {'ex/CPU-s':>8} {'ratio':>6}")
    lines = [header, "-" * len(header)]
    for model, batch, _, configs in rows:
        dense = configs[0]
        for c in configs:
            sparsity = "-" if c.sparsity is None else f"{c.sparsity:.2f}"
            lines.append(f"{model:<13} {batch:>5} {c.kind:<14} {c.steps_per_execution:>4} {sparsity:>8} | "
                         f"{statistics.median(c.wall):>9.0f} {min(c.wall):>7.0f} {max(c.wall):>7.0f} "
                         f"{_ratio(c, dense, 'wall'):>6.3f} | {statistics.median(c.cpu):>8.0f} "
                         f"{_ratio(c, dense, 'cpu'):>6.3f}")
    return "\n".join(lines)


def headline_ratio(configs: list, clock: str) -> float:
    masked = next(c for c in configs if c.kind == "lth_tf masked" and c.sparsity == HEADLINE_SPARSITY)
    return _ratio(masked, configs[0], clock)


# ---- per-round overhead and peak memory of the quickstart -------------------------------------------

def overhead_child(output_dir: str, flagfile: str, extra: list) -> dict:
    """Runs the experiment of `flagfile` in this process; returns per-round timings and peak RSS.

    Instrumentation (this process only): RoundTrainer.train and the store's writes are wrapped with
    timers; the experiment's events mark where each round starts and ends.
    """
    from lth_tf import main as cli  # its flag definitions turn the flagfile into the Config main would use
    cli.FLAGS([sys.argv[0], f"--flagfile={flagfile}", *extra, f"--output_dir={output_dir}"])
    from lth_tf.data import loading
    from lth_tf.experiment import experiment
    from lth_tf.experiment import store as store_lib
    from lth_tf.training.trainer import RoundTrainer

    began = time.perf_counter()
    cfg = cli.config_from_flags()
    dataset = loading.load(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    loaded = time.perf_counter()
    store = store_lib.Store(cfg.results_dir())
    spent = {}  # name -> [wall seconds, cpu seconds], accumulated

    def timed(kind, method):
        def wrapper(*a, **k):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return method(*a, **k)
            finally:
                total = spent.setdefault(kind, [0.0, 0.0])
                total[0] += time.perf_counter() - wall
                total[1] += time.process_time() - cpu
        return wrapper
    # Round results, and the mid-round backups that train() writes after every eval_every chunk.
    for name in ("save_round", "save_backup", "clear_backup", "save_weights"):
        if hasattr(store, name):
            setattr(store, name, timed(name, getattr(store, name)))
    RoundTrainer.train = timed("train", RoundTrainer.train)

    events = []

    def on_event(event):
        events.append((time.perf_counter(), time.process_time(), event, {k: list(v) for k, v in spent.items()}))
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, on_event=on_event, dataset=dataset)
    finished = time.perf_counter()

    rounds, previous, starts, evals = [], None, {}, {}
    for wall, cpu, event, spent_then in events:
        key = (event.trial, event.variant, event.round)
        if event.kind == "start":
            starts[key] = wall
            if previous is None:  # round 0 counts from its own start (trial setup is reported apart)
                previous = (wall, cpu, spent_then)
        elif event.kind == "eval":
            evals[key] = evals.get(key, 0.0) + float(event.info.get("eval_seconds", 0.0))
        elif event.kind == "round":
            def delta(name, i=0):
                return spent_then.get(name, [0.0, 0.0])[i] - previous[2].get(name, [0.0, 0.0])[i]
            fit = float(event.info["train_seconds"])  # the fit inside train(): steps, evaluations, backups
            rounds.append({
                "round": event.round, "variant": event.variant,
                "round_seconds": wall - previous[0], "round_cpu": cpu - previous[1],
                "train_call_seconds": delta("train"), "train_call_cpu": delta("train", 1),
                "fit_seconds": fit, "eval_seconds": evals.get(key), "backup_seconds": delta("save_backup"),
                "mask_seconds": starts[key] - previous[0],  # pruning: from the last round's end to this start
                "store_seconds": delta("save_round") + delta("clear_backup") + delta("save_weights"),
            })
            previous = (wall, cpu, spent_then)
    first_start = min(starts.values()) if starts else loaded
    return {"config": {"model": cfg.model, "dataset": cfg.dataset, "rounds": cfg.rounds,
                       "iterations": cfg.round_iterations, "eval_every": cfg.eval_every},
            "load_seconds": loaded - began, "setup_seconds": first_start - loaded,
            "total_seconds": finished - began, "rounds": rounds, "peak_rss_mib": _peak_rss_mib(),
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _peak_rss_mib() -> float:
    """This process's RSS high-water mark: VmHWM, which belongs to the process's own memory map. (Linux
    carries ru_maxrss over from the parent through fork and exec, so a child started by a big process
    reports at least the parent's size there.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_overhead(args, log) -> dict:
    """Runs overhead_child in a fresh process (its memory is the quickstart's alone) and logs its tables."""
    with tempfile.TemporaryDirectory(prefix="lth_overhead_") as tmp:
        command = [sys.executable, "-m", "benchmarks.throughput", f"--overhead_child={tmp}/results",
                   f"--flagfile={args.flagfile}", f"--overhead_args={args.overhead_args}"]
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(command, cwd=_ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"overhead run failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    c = result["config"]
    log("")
    log(f"Per-round overhead: {c['model']} on {c['dataset']}, {c['rounds']} rounds x {c['iterations']} iterations "
        f"(eval every {c['eval_every']}); {os.path.relpath(args.flagfile, _ROOT)} {args.overhead_args}".rstrip())
    log("  round: wall time from the previous round's end (round 0: its start) to this round's result written;")
    log("  fit: train()'s Keras fit (steps, evaluations, backups); masks: pruning before train(); in train() "
        "not fit: rewind, optimizer reset, masks, input stream; after: snapshot and store writes;")
    log("  outside: round minus fit (all per-round work that is not training or evaluation), wall and CPU time.")
    header = (f"{'round':>5} {'round s':>8} {'fit s':>7} {'eval s':>7} {'backup s':>8} {'masks s':>7} "
              f"{'in train() not fit':>18} {'after s':>7} {'of it store':>11} {'outside':>8} {'cpu':>6}")
    log(header)
    log("-" * len(header))
    for r in result["rounds"]:
        r["prefit_seconds"] = r["train_call_seconds"] - r["fit_seconds"]
        r["after_seconds"] = r["round_seconds"] - r["mask_seconds"] - r["train_call_seconds"]
        r["outside_share"] = (r["round_seconds"] - r["fit_seconds"]) / r["round_seconds"]
        # CPU: the round's CPU time outside train() (train() itself is mostly the fit).
        r["outside_cpu_share"] = (r["round_cpu"] - r["train_call_cpu"]) / max(r["round_cpu"], 1e-9)
        ev = "-" if r["eval_seconds"] is None else f"{r['eval_seconds']:.2f}"
        log(f"{r['round']:>5} {r['round_seconds']:>8.2f} {r['fit_seconds']:>7.2f} {ev:>7} "
            f"{r['backup_seconds']:>8.3f} {r['mask_seconds']:>7.3f} {r['prefit_seconds']:>18.3f} "
            f"{r['after_seconds']:>7.3f} {r['store_seconds']:>11.3f} {100 * r['outside_share']:>7.2f}% "
            f"{100 * r['outside_cpu_share']:>5.2f}%")
    later = result["rounds"][1:]
    if later:
        total = sum(r["round_seconds"] for r in later)
        share = sum(r["round_seconds"] - r["fit_seconds"] for r in later) / total
        backups = sum(r["backup_seconds"] for r in later) / total
        cpu = sum(r["round_cpu"] - r["train_call_cpu"] for r in later) / sum(r["round_cpu"] for r in later)
        result.update(overhead_share=share, backup_share=backups, outside_train_cpu_share=cpu)
        log(f"rounds 1..{len(later)}: per-round work outside training = {100 * share:.2f}% of the round's wall time "
            f"(CPU time outside train(): {100 * cpu:.2f}%); mid-round backups inside fit: {100 * backups:.2f}%")
    log(f"dataset load {result['load_seconds']:.1f}s, trial setup {result['setup_seconds']:.1f}s, "
        f"total {result['total_seconds']:.1f}s; peak RSS {result['peak_rss_mib']:.0f} MiB (VmHWM; getrusage "
        f"ru_maxrss {result['ru_maxrss_mib']:.0f} MiB), limit 2048 MiB")
    return result


# ---- main --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lth_tf import _env  # noqa: F401  (legacy Keras before TensorFlow)

    if args.overhead_child:
        extra = args.overhead_args.split()
        print(json.dumps(overhead_child(args.overhead_child, args.flagfile, extra)), flush=True)
        return 0

    def log(line):
        print(line, flush=True)

    if args.overhead_only:
        run_overhead(args, log)
        return 0

    overhead_lines = []
    if args.overhead:  # first, while this process is small (Linux hands a parent's ru_maxrss to its children)
        run_overhead(args, overhead_lines.append)

    import tensorflow as tf
    from lth_tf.training.schedule import precision_policy
    dataset = load_data(args.random_data)
    log(f"benchmark: data {dataset.source}; {os.cpu_count()} CPUs; TensorFlow {tf.__version__}; "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    rows = []
    for name in args.models:
        steps = args.steps or (QUICK_STEPS if args.quick else DEFAULT_STEPS).get(name, 15)
        batch = batch_size(name, args)
        with precision_policy(args.mixed_precision):  # models are built (and trained) inside
            configs, stream, _ = build_configs(name, dataset, args, steps)
            log(f"{name} batch {batch}: {steps} steps x {args.epochs} timed epochs per call, "
                f"{args.repeats} repeats, input {stream}" + (", mixed_float16" if args.mixed_precision else ""))
            measure(configs, args, steps, batch, log)
        rows.append((name, batch, steps, configs))
    log("")
    log(table(rows))
    for line in overhead_lines:
        log(line)
    log("")
    other = "wall" if args.clock == "cpu" else "cpu"
    for name, batch, _, configs in rows:
        log(f"({name} b{batch} sparsity {HEADLINE_SPARSITY} masked/dense ratio by {other} time: "
            f"{headline_ratio(configs, other):.3f})")
        xla = next((c for c in configs if c.kind == "masked xla"), None)
        if xla is not None:
            masked = next(c for c in configs if c.kind == "lth_tf masked" and c.sparsity == HEADLINE_SPARSITY)
            log(f"{name} b{batch} sparsity {HEADLINE_SPARSITY} XLA/masked step throughput ratio: "
                f"{_ratio(xla, masked, args.clock):.3f} (by {other} time {_ratio(xla, masked, other):.3f})")
    # The headline, lenet300_100 last: its line is the script's last line.
    for name, batch, _, configs in sorted(rows, key=lambda row: row[0] == "lenet300_100"):
        log(f"{name} b{batch} sparsity {HEADLINE_SPARSITY} masked/dense throughput ratio: "
            f"{headline_ratio(configs, args.clock):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
