"""IMP rounds per hour with N trials stacked in one model (--parallel_trials=N) against N trials one by one.

    python -m benchmarks.trials_throughput            # about 30 to 45 minutes on 2 CPU cores (3 repeats)
    python -m benchmarks.trials_throughput --repeats=1  # about 10 to 15 minutes
    python -m benchmarks.trials_throughput --quick    # N = 1, 2, 8 only, shorter rounds (a smoke run)

Each measurement runs a whole experiment in a fresh child process (lth_tf.experiment.experiment.run into a fresh
results directory; TensorFlow's start-up and the data loading happen before the clock starts, and the child sets
TensorFlow's threads as `python -m lth_tf.main` does, lth_tf.training.threads: from the network, never from N)
and times it: building the models and trainers, tracing, training, evaluation and the store's writes are all
in it, as in a real run. Rounds per hour = trials x (rounds + 1) /
wall time. "Sequential" trains 2 trials one after the other at --parallel_trials=1 (a trial's time does not
depend on how many run after it, so N sequential trials take N times as long); each stacked row trains N
trials at --parallel_trials=N, and its ratio is its rounds per hour over the sequential row's. The same run
uses --xla=auto (which leaves XLA off for trials this short) and also times lenet300_100 with --xla=on.

A shared 2-core machine gives single timings up to 2x apart, so the whole list runs --repeats times (3 unless
told), each pass in a rotated order. Every ratio is taken within one pass (a row over that pass's sequential
row) and the table shows the median over passes, with the lowest and highest; seconds and rounds per hour are
medians too.

  lenet300_100: MNIST-1D (lth_tf's offline default), batch 60, 1,000 iterations a round, 2 IMP rounds.
  conv2: 8,000 Fashion-MNIST training images (800 held out), 1,000 test images; batch 50, 30 iterations a round,
         1 IMP round. (Needs Debian's dataset-fashion-mnist; skipped with a note without it.)

Finished measurements are kept in OUT/measurements.json: run it again after a stop and it goes on. The last
line reads `lenet300_100 parallel_trials=8 speedup over sequential: S`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

SETUPS = {
    "lenet300_100": dict(model="lenet300_100", dataset="mnist1d", iterations=1000, eval_every=500, rounds=2,
                         learning_rate=0.05),
    "conv2": dict(model="conv2", dataset="fashion_mnist", iterations=30, eval_every=30, rounds=1),
}


def measurements(ns, quick: bool, names=tuple(SETUPS)) -> list:
    """(label, setup, trials, parallel_trials, xla) in the order they run. The main rows use --xla=auto (off for
    these short trials, lth_tf.experiment.plan.xla_pays); lenet300_100 also runs with XLA on, for the XLA ratio."""
    out = []
    for name in names:
        out.append((f"{name} sequential", name, 2, 1, "auto"))
        if name == "lenet300_100":
            out.append((f"{name} sequential xla=on", name, 2, 1, "on"))
        for n in ns:
            out.append((f"{name} parallel_trials={n}", name, n, n, "auto"))
        if name == "lenet300_100" and 8 in ns and not quick:
            out.append((f"{name} parallel_trials=8 xla=on", name, 8, 8, "on"))
    return out


def run_one(setup: dict, trials: int, parallel: int, xla: str, dataset, quick: bool) -> dict:
    from lth_tf.experiment import experiment
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.store import Store
    fields = dict(setup)
    if quick:
        fields["iterations"] = max(fields["eval_every"] // 2, fields["iterations"] // 4)
        fields["eval_every"] = fields["iterations"]
    with tempfile.TemporaryDirectory() as out:
        cfg = Config(**fields, trials=trials, parallel_trials=parallel, xla=xla, output_dir=out).resolve()
        store = Store(out)
        began = time.perf_counter()
        with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
            rows = experiment.run(cfg, store, dataset=dataset)
        seconds = time.perf_counter() - began
    rounds = len(rows)
    return {"seconds": seconds, "rounds": rounds, "rounds_per_hour": 3600.0 * rounds / seconds,
            "accuracy": sum(r["test_accuracy"] for r in rows) / rounds}


def child(label: str, ns, quick: bool, names, fashion: str | None) -> dict:
    """One measurement, in this (fresh) process."""
    _, name, trials, parallel, xla = next(m for m in measurements(ns, quick, names) if m[0] == label)
    from lth_tf import _env  # noqa: F401
    from lth_tf.training import threads
    setup = SETUPS[name]
    threads.configure(setup["model"])  # as lth_tf.main does (never from N), before TensorFlow's first op
    from lth_tf.data import loading
    dataset = loading.load(setup["dataset"], fashion if setup["dataset"] == "fashion_mnist" else None)
    return dict(run_one(setup, trials, parallel, xla, dataset, quick), trials=trials, parallel=parallel, xla=xla)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(common.REPO, "benchmarks", "out_trials_throughput"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default=",".join(SETUPS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--ns", default=None, help="comma-separated N (default 1,2,4,8,16; --quick: 1,2,8)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over all measurements (default 3)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--fashion", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in SETUPS]
    if unknown:
        parser.error(f"unknown model {','.join(unknown)}; choose from {','.join(SETUPS)}")
    try:
        ns = [int(n) for n in (args.ns or ("1,2,8" if args.quick else "1,2,4,8,16")).split(",")]
    except ValueError:
        parser.error(f"--ns must be comma-separated whole numbers, not {args.ns!r}")
    if min(ns) < 1 or args.repeats < 1:
        parser.error("--ns and --repeats must be at least 1")
    out = args.out + ("_quick" if args.quick else "")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "measurements.json")
    if args.child:
        result = child(args.child, ns, args.quick, names, args.fashion)
        with open(os.path.join(out, "child.json"), "w") as f:
            json.dump(result, f)
        return
    done = json.load(open(path)) if os.path.exists(path) else {}
    fashion = None
    if "conv2" in names:
        try:
            fashion = common.fashion_subset(common.fashion_source(common.FASHION_DIR), os.path.join(out, "fashion"),
                                            8000, 1000)
        except SystemExit as e:  # no Fashion-MNIST on this machine: conv2 is left out, and said so
            common.log(f"conv2 skipped: {e}")
    common.log(f"{os.cpu_count()} CPUs; " + subprocess.run(
        [sys.executable, "-c", "import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tensorflow as tf; "
         "print('TensorFlow', tf.__version__, '; GPUs:', len(tf.config.list_physical_devices('GPU')))"],
        capture_output=True, text=True).stdout.strip())
    listed = measurements(ns, args.quick, names)
    for repeat in range(args.repeats):
        # Rotated per pass, so no row always runs right after the same neighbour (or first, on a cold cache).
        shift = repeat * len(listed) // args.repeats
        for label, name, trials, parallel, xla in listed[shift:] + listed[:shift]:
            key = pass_key(label, repeat)
            if key in done or (SETUPS[name]["dataset"] == "fashion_mnist" and not fashion):
                continue
            common.log(f"{key}: {trials} trials ...")
            done[key] = measure(label, args, ns, fashion)
            common.log(f"{key}: {done[key]['rounds']} rounds in {done[key]['seconds']:.1f}s")
            with open(path + ".tmp", "w") as f:
                json.dump(done, f, indent=1)
            os.replace(path + ".tmp", path)
    print(table(listed, done, args.repeats))


def pass_key(label: str, repeat: int) -> str:
    """measurements.json's key of one pass's measurement (the first pass's is the bare label)."""
    return label if repeat == 0 else f"{label} #{repeat + 1}"


def measure(label: str, args, ns, fashion) -> dict:
    """Runs one measurement in a fresh child process; returns what the child wrote to child.json."""
    command = [sys.executable, "-m", "benchmarks.trials_throughput", f"--child={label}", f"--out={args.out}",
               f"--models={args.models}", f"--ns={','.join(map(str, ns))}"] + (["--quick"] if args.quick else [])
    if fashion:
        command.append(f"--fashion={fashion}")
    finished = subprocess.run(command, cwd=common.REPO, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"{label} failed:\n{finished.stderr[-3000:]}")
    with open(os.path.join(args.out + ("_quick" if args.quick else ""), "child.json")) as f:
        return json.load(f)


def paired_ratios(done: dict, label: str, base: str, repeats: int) -> list:
    """label's rounds per hour over base's, within each pass that has both."""
    pairs = [(done.get(pass_key(label, r)), done.get(pass_key(base, r))) for r in range(repeats)]
    return [m["rounds_per_hour"] / b["rounds_per_hour"] for m, b in pairs if m and b]


def table(listed, done: dict, repeats: int) -> str:
    """The printed table: medians over passes; its last line is the S the issue asks for."""
    lines = [f"\n{'measurement':<36} {'trials':>6} {'rounds':>6} {'seconds':>8} {'rounds/hour':>12} "
             f"{'vs sequential':>14} {'lowest':>7} {'highest':>7} {'passes':>6}", "-" * 111]
    for label, name, *_ in listed:
        runs = [done[pass_key(label, r)] for r in range(repeats) if pass_key(label, r) in done]
        if not runs:
            continue
        ratios = paired_ratios(done, label, f"{name} sequential", repeats)
        ratio = (f"{statistics.median(ratios):>14.2f} {min(ratios):>7.2f} {max(ratios):>7.2f}" if ratios
                 else f"{'nan':>14} {'':>7} {'':>7}")
        lines.append(f"{label:<36} {runs[0]['trials']:>6} {runs[0]['rounds']:>6} "
                     f"{statistics.median(m['seconds'] for m in runs):>8.1f} "
                     f"{statistics.median(m['rounds_per_hour'] for m in runs):>12.0f} {ratio} {len(runs):>6}")
    xla = paired_ratios(done, "lenet300_100 sequential xla=on", "lenet300_100 sequential", repeats)
    if xla:
        lines.append(f"\nlenet300_100 sequential XLA on/off rounds-per-hour ratio (compilation included): "
                     f"{statistics.median(xla):.2f}")
    eight = paired_ratios(done, "lenet300_100 parallel_trials=8", "lenet300_100 sequential", repeats)
    if eight:
        lines.append(f"lenet300_100 parallel_trials=8 speedup over sequential: {statistics.median(eight):.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
