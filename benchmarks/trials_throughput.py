"""IMP rounds per hour with N trials stacked in one model (--parallel_trials=N) against N trials one by one.

    python -m benchmarks.trials_throughput            # about 10 minutes on 2 CPU cores
    python -m benchmarks.trials_throughput --quick    # N = 1, 2, 8 only, shorter rounds (a smoke run)

Each measurement runs a whole experiment in a fresh child process (lth_tf.experiment.run into a fresh results
directory; TensorFlow's start-up and the data loading happen before the clock starts, and the child sets
TensorFlow's threads as `python -m lth_tf.main` would for its --parallel_trials, stacked.configure_threads)
and times it: building the models and trainers, tracing, training, evaluation and the store's writes are all
in it, as in a real run. Rounds per hour = trials x (rounds + 1) /
wall time. "Sequential" trains 2 trials one after the other at --parallel_trials=1 (a trial's time does not
depend on how many run after it, so N sequential trials take N times as long); each stacked row trains N
trials at --parallel_trials=N, and its ratio is its rounds per hour over the sequential row's. The same run
uses --xla=auto (which leaves XLA off for trials this short) and also times lenet300_100 with --xla=on.

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
    these short trials, experiment.xla_pays); lenet300_100 also runs with XLA on, for the XLA ratio."""
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
    from lth_tf import experiment
    from lth_tf.config import Config
    from lth_tf.store import Store
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
    from lth_tf import stacked
    stacked.configure_threads(parallel)  # as lth_tf.main does, before TensorFlow's first op
    from lth_tf import data as data_lib
    setup = SETUPS[name]
    dataset = data_lib.load(setup["dataset"], fashion if setup["dataset"] == "fashion_mnist" else None)
    return dict(run_one(setup, trials, parallel, xla, dataset, quick), trials=trials, parallel=parallel, xla=xla)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(common.REPO, "benchmarks", "out_trials_throughput"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default=",".join(SETUPS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--ns", default=None, help="comma-separated N (default 1,2,4,8,16; --quick: 1,2,8)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--fashion", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in SETUPS]
    if unknown:
        parser.error(f"unknown model {','.join(unknown)}; choose from {','.join(SETUPS)}")
    ns = [int(n) for n in (args.ns or ("1,2,8" if args.quick else "1,2,4,8,16")).split(",")]
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
    for label, name, trials, parallel, xla in measurements(ns, args.quick, names):
        if label in done or (SETUPS[name]["dataset"] == "fashion_mnist" and not fashion):
            continue
        common.log(f"{label}: {trials} trials ...")
        command = [sys.executable, "-m", "benchmarks.trials_throughput", f"--child={label}", f"--out={args.out}",
                   f"--models={args.models}", f"--ns={','.join(map(str, ns))}"] + (["--quick"] if args.quick else [])
        if fashion:
            command.append(f"--fashion={fashion}")
        finished = subprocess.run(command, cwd=common.REPO, capture_output=True, text=True)
        if finished.returncode != 0:
            raise SystemExit(f"{label} failed:\n{finished.stderr[-3000:]}")
        with open(os.path.join(out, "child.json")) as f:
            done[label] = json.load(f)
        common.log(f"{label}: {done[label]['rounds']} rounds in {done[label]['seconds']:.1f}s")
        with open(path + ".tmp", "w") as f:
            json.dump(done, f, indent=1)
        os.replace(path + ".tmp", path)
    print(f"\n{'measurement':<36} {'trials':>6} {'rounds':>6} {'seconds':>8} {'rounds/hour':>12} {'vs sequential':>14}")
    print("-" * 87)
    for label, name, *_ in measurements(ns, args.quick, names):
        if label not in done:
            continue
        m, base = done[label], done.get(f"{name} sequential")
        ratio = m["rounds_per_hour"] / base["rounds_per_hour"] if base else float("nan")
        print(f"{label:<36} {m['trials']:>6} {m['rounds']:>6} {m['seconds']:>8.1f} {m['rounds_per_hour']:>12.0f} "
              f"{ratio:>14.2f}")
    xla_on, xla_off = done.get("lenet300_100 sequential xla=on"), done.get("lenet300_100 sequential")
    if xla_on and xla_off:
        print(f"\nlenet300_100 sequential XLA on/off rounds-per-hour ratio (compilation included): "
              f"{xla_on['rounds_per_hour'] / xla_off['rounds_per_hour']:.2f}")
    eight, base = done.get("lenet300_100 parallel_trials=8"), done.get("lenet300_100 sequential")
    if eight and base:
        print(f"lenet300_100 parallel_trials=8 speedup over sequential: "
              f"{eight['rounds_per_hour'] / base['rounds_per_hour']:.2f}")


if __name__ == "__main__":
    main()
