"""Command line: instability analysis (Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the
Lottery Ticket Hypothesis", ICML 2020).

    python -m lth_tf.instability --flagfile=flags/instability_lenet300_100_mnist.flags
    python -m lth_tf.instability --model=lenet300_100 --dataset=mnist1d --rounds=2 --iterations=600 \\
        --rewind_iterations=0,100,300 --variants=lottery,random

Takes the main CLI's model, data and training flags (lth_tf.main defines them) plus --rewind_iterations,
--alphas, --stability_threshold and --bn_recompute. --variants here names the pair variants: lottery, reinit,
random. For each k, the experiment with --rewind_iteration=k runs in OUTPUT_DIR/rewind_<k>/; two copies of each
(round, variant) network train from iteration k to T with different SGD noise, and the error barrier on the
linear path between them is measured (lth_tf.experiment.stability). Running the same command again trains nothing
finished. Tables: OUTPUT_DIR/instability.csv and OUTPUT_DIR/instability_summary.csv; figures:
python -m lth_tf.report OUTPUT_DIR.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time

from lth_tf import _env  # noqa: F401
from absl import app, flags, logging

from lth_tf.experiment import config as config_lib
from lth_tf import main as cli  # defines the model/data/training flags; this module adds its own

FLAGS = flags.FLAGS
PAIR_VARIANTS = ("lottery", "reinit", "random")  # = experiment.plan.PAIR_VARIANTS (imported late: TensorFlow)

flags.DEFINE_list("rewind_iterations", ["0"], "Comma-separated iterations k the pairs start from (W_k).")
flags.DEFINE_integer("alphas", 30, "Evenly spaced points a in [0, 1] on the path (1 - a) W1 + a W2.")
flags.DEFINE_float("stability_threshold", 0.02, "A network is stable when its test instability is below this.")
flags.DEFINE_bool("bn_recompute", False, "Re-estimate BatchNorm moving statistics on 20 training batches of "
                  "--batch_size at each a (default: interpolate them linearly with the other weights; "
                  "lth_tf.experiment.interpolation).")
# --train_subset means the path's training split here, as before issue 26 gave lth_tf.main a --train_subset of its
# own (a subset to train on); the latter is not a flag of this command.
delattr(FLAGS, "train_subset")
flags.DEFINE_integer("train_subset", 10_000, "The first N training examples are the training split of the path.")


def _fail(message: str, code: int = 2):
    cli._fail(message, code)


def parse() -> tuple:
    """(base Config, list of k, PairSpec, root); raises ConfigError with one line."""
    if FLAGS["rewind_iteration"].present:
        raise config_lib.ConfigError("use --rewind_iterations (a comma list) with lth_tf.instability")
    try:
        ks = [int(k) for k in FLAGS.rewind_iterations if k.strip()]
    except ValueError:
        raise config_lib.ConfigError(f"--rewind_iterations must be integers, got {','.join(FLAGS.rewind_iterations)}") \
            from None
    if not ks:
        raise config_lib.ConfigError("--rewind_iterations must name at least one iteration")
    variants = tuple(v.strip() for v in FLAGS.variants if v.strip())
    if not variants or any(v not in PAIR_VARIANTS for v in variants):
        raise config_lib.ConfigError(f"--variants must be among {', '.join(PAIR_VARIANTS)} here, got "
                                     f"'{','.join(variants)}'")
    if FLAGS.alphas < 2:
        raise config_lib.ConfigError(f"--alphas must be at least 2 (the end points), got {FLAGS.alphas}")
    if not 0.0 < FLAGS.stability_threshold < 1.0:
        raise config_lib.ConfigError(f"--stability_threshold must be in (0, 1), got {FLAGS.stability_threshold}")
    if FLAGS.train_subset < 1:
        raise config_lib.ConfigError(f"--train_subset must be positive, got {FLAGS.train_subset}")
    values = {name: FLAGS[name].value for name in cli._FIELDS if name != "train_subset"}  # the path's, here
    values.update(variants=("lottery",), output_dir=None)
    base = config_lib.Config(**values).resolve()
    if base.engine != "tf_keras":
        raise config_lib.ConfigError(f"lth_tf.instability runs on --engine=tf_keras only (its linear interpolation, "
                                     f"lth_tf.experiment.interpolation, is tf_keras code), not --engine={base.engine}")
    for k in ks:
        if not 0 <= k < base.round_iterations:
            raise config_lib.ConfigError(f"--rewind_iterations: {k} must be in [0, {base.round_iterations}) "
                                         f"(the iterations per round)")
    root = FLAGS.output_dir or f"results/instability_{base.model}_{base.dataset}_{_hash(base)}"
    return base, sorted(set(ks)), variants, root


def _hash(config) -> str:
    identity = {k: v for k, v in config.identity().items() if k != "rewind_iteration"}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Printer(cli.Printer):
    """The main CLI's lines, prefixed with k, plus one line per finished pair."""

    k = None  # the rewind iteration whose store is being worked on (what a stop line talks about)

    def __call__(self, k, event) -> None:
        self.k = k
        if event.kind == "pair":
            r = event.info
            self._clear()
            print(f"k={k:<6} trial {r['trial']}  {r['variant']:<8} round {r['round']:>2}  weights remaining "
                  f"{100 * r['weights_remaining']:6.2f}%  instability test {100 * r['instability_test']:6.2f}% "
                  f"train {100 * r['instability_train']:6.2f}%  end-point accuracy {r['accuracy_end_points']:.4f}",
                  flush=True)
        elif event.kind == "pair_skip" and not self.quiet:
            print(f"k={k:<6} trial {event.trial}  {event.variant:<8} round {event.round:>2}  pair already finished",
                  flush=True)
        elif event.kind == "pair_path" and not self.quiet:
            self._clear()
            print(f"k={k:<6} trial {event.trial}  {event.variant:<8} round {event.round:>2}  evaluating the path",
                  flush=True)
        elif event.kind != "done":
            if event.kind == "round":
                print(f"k={k:<6} ", end="")
            super().__call__(event)


def main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are written --name=value)")
    from lth_tf.experiment import files, signals, stability  # no TensorFlow: refusals come before it starts
    from lth_tf.experiment import store as store_lib
    from lth_tf.training import threads

    printer, stores = Printer(FLAGS.quiet), {}
    try:
        with signals.stop_on_signals(), contextlib.ExitStack() as held:
            try:  # as lth_tf.main: every k's store locked, its configuration and files checked, before TensorFlow
                base, ks, variants, root = parse()
                threads.settings(base.model)  # a bad LTH_TF_*_THREADS override is refused here, before TensorFlow
                if base.strategy != "default":
                    raise config_lib.ConfigError("lth_tf.instability runs with the default strategy only")
                for k in ks:
                    cfg = stability.config_for(base, k, root)
                    stores[k] = store_lib.Store(cfg.results_dir(), on_warning=cli._warn)
                    cli.open_checked(held, cfg, stores[k])
            except (config_lib.ConfigError, files.StoreError, threads.ThreadsError) as e:
                _fail(str(e))
            _run(base, ks, variants, root, stores, printer)
    except signals.Stopped as stop:
        line = cli._stop_line(stop, stores.get(printer.k), printer.current, kept="finished rounds and pairs")
        print(line, file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)


def _run(base, ks, variants, root, stores, printer) -> None:
    """The part that needs TensorFlow; every k's store is open and its trials are locked."""
    from lth_tf.experiment import files, stability
    logging.set_verbosity(logging.ERROR)
    from lth_tf.data import datasets, loading  # starts TensorFlow
    from lth_tf.training.curve import Diverged
    from lth_tf.experiment import distribute, plan
    from lth_tf.training import threads
    threads.configure(base.model)  # before any TensorFlow op; never depends on N

    if base.deterministic:
        distribute.enable_determinism(base.seed)
    pairs = plan.PairSpec(variants=variants, alphas=FLAGS.alphas,
                                bn="recompute" if FLAGS.bn_recompute else "interpolate",
                                train_subset=FLAGS.train_subset)
    try:
        dataset = loading.load(base.dataset, base.data_dir, seed=base.seed)
        print(f"lth_tf.instability: {base.model} on {base.dataset} ({dataset.source}), k in {ks}, {base.rounds} "
              f"rounds x {base.round_iterations} iterations, trials {base.trial_ids()}, variants "
              f"{','.join(variants)}, {FLAGS.alphas} alphas, BatchNorm {pairs.bn}; results in {root}", flush=True)
        rows = stability.sweep(base, ks, pairs, root, on_event=printer, dataset=dataset,
                               threshold=FLAGS.stability_threshold, stores=stores)
        stable = sum(1 for r in rows if r["stable"])
        print(f"lth_tf.instability: done in {time.perf_counter() - printer.began:.1f}s; {stable} of {len(rows)} "
              f"pairs stable (test instability < {FLAGS.stability_threshold}); tables: {root}/instability.csv, "
              f"{root}/instability_summary.csv", flush=True)
    except (config_lib.ConfigError, datasets.DataError, files.StoreError) as e:
        _fail(str(e))
    except Diverged as e:
        _fail(str(e), code=cli.DIVERGED)


def run() -> None:
    app.run(main, flags_parser=cli._parse_flags)


if __name__ == "__main__":
    run()
