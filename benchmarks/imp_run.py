"""Round times of one IMP run: issue 29's work, the open_lth reference's settings, timed round by round.

    python -m benchmarks.imp_run               # the whole run: 9 lottery + 8 reinit rounds, ~3-5 min on 2 cores
    python -m benchmarks.imp_run --rounds=2    # a shorter version (5 rounds in all)

The work: lenet300_100 on Fashion-MNIST (Debian's dataset-fashion-mnist; 55,000 training images after the
5,000 held out), SGD 0.1 without momentum, batch 128, 10 epochs a round (4,300 iterations), evaluation once per
epoch (every 430 iterations), 20% of the surviving weights pruned per round globally with the output layer kept
(--prune_rate_output=0), 8 rounds, variants lottery and reinit. open_lth takes about 68 minutes for it.

The experiment runs in a fresh child process, as `python -m lth_tf.main` would run it (same thread settings, same
--xla=auto, a fresh results directory), with hooks that only read clocks: the child stamps each experiment event
and times the store's backup writes. For each round the parent prints:
- wall: from the end of the round before (or from the start of the experiment, for the first) to the end of this
  one: pruning, rewinding, building the round's stream, training, evaluation, the store's writes;
- train: wall time of the training steps alone (the round's fit, less its evaluations and backup writes), and the
  examples per second it gives;
- outside: the share of the round's wall time spent outside the training steps.
Then the minimum / median / maximum round and the last line
    imp_run: total S seconds, round median M s, spread (max/min) X
where S is the child's whole wall time (TensorFlow's start and the data loading included, as a command-line run).

A finished measurement is kept in OUT/imp_run.json (default benchmarks/out/imp_run) and printed again by a rerun
with the same settings; --fresh measures again. An interrupted run starts over (a resumed round's time would not
be one round's time).
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

SETTINGS = dict(model="lenet300_100", dataset="fashion_mnist", learning_rate=0.1, momentum=0.0, batch_size=128,
                epochs=10, eval_every=430, prune_rate_fc=0.2, prune_rate_output=0.0, pruning_scope="global",
                variants=("lottery", "reinit"))


def _child(args) -> None:
    """Runs the experiment and writes one JSON line per event (and the backup writes' times) to args.events."""
    began = float(args.began)
    from lth_tf import _env  # noqa: F401
    from lth_tf.training import threads
    threads.configure(SETTINGS["model"])  # as lth_tf.main does, before TensorFlow's first op
    from lth_tf.data import loading
    from lth_tf.experiment import experiment
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.store import Store

    cfg = Config(**SETTINGS, rounds=args.rounds, data_dir=args.data_dir, output_dir=args.results, xla=args.xla)
    cfg = cfg.resolve()
    out = open(args.events, "w")

    def write(record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    class TimedStore(Store):
        """The store, with its backup writes timed (they happen inside the round's fit)."""

        def save_backup(self, trial, variant, round_, arrays, copy=None):
            t = time.perf_counter()
            super().save_backup(trial, variant, round_, arrays, copy=copy)
            write({"kind": "backup", "variant": variant, "round": round_, "seconds": time.perf_counter() - t})

    def on_event(event):
        record = {"kind": event.kind, "variant": event.variant, "round": event.round, "t": time.time()}
        if event.kind == "eval":
            record["eval_seconds"] = event.info["eval_seconds"]
        elif event.kind == "round":
            record.update({k: event.info[k] for k in ("train_seconds", "iterations", "weights_remaining")})
        write(record)

    dataset = loading.load(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    store = TimedStore(cfg.results_dir())
    write({"kind": "experiment", "t": time.time(), "startup_seconds": time.time() - began,
           "round_iterations": cfg.round_iterations, "batch_size": cfg.batch_size})
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, on_event=on_event, dataset=dataset)
    write({"kind": "end", "t": time.time()})


def _measure(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="imp_run_") as tmp:
        events = os.path.join(tmp, "events.jsonl")
        began = time.time()
        cmd = [sys.executable, "-m", "benchmarks.imp_run", "--child", f"--events={events}", f"--began={began}",
               f"--results={os.path.join(tmp, 'results')}", f"--rounds={args.rounds}", f"--data_dir={args.data_dir}",
               f"--xla={args.xla}"]
        proc = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True)
        total = time.time() - began
        if proc.returncode != 0:
            raise SystemExit(f"imp_run: the child failed (exit {proc.returncode}):\n" + proc.stderr[-3000:])
        with open(events) as f:
            records = [json.loads(line) for line in f]
    return {"total_seconds": total, "rounds": _rounds(records), "settings": _key(args),
            "startup_seconds": next(r for r in records if r["kind"] == "experiment")["startup_seconds"],
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _rounds(records: list) -> list:
    """One dict per finished round, from the child's event records (in order)."""
    head = next(r for r in records if r["kind"] == "experiment")
    previous, evals, backups, rounds = head["t"], {}, {}, []
    for r in records:
        key = (r.get("variant"), r.get("round"))
        if r["kind"] == "eval":
            evals[key] = evals.get(key, 0.0) + r["eval_seconds"]
        elif r["kind"] == "backup":
            backups[key] = backups.get(key, 0.0) + r["seconds"]
        elif r["kind"] == "round":
            wall = r["t"] - previous
            train = r["train_seconds"] - evals.get(key, 0.0) - backups.get(key, 0.0)
            rounds.append({"variant": key[0], "round": key[1], "wall": wall, "train": train,
                           "eval": evals.get(key, 0.0), "backup": backups.get(key, 0.0),
                           "examples_per_second": r["iterations"] * head["batch_size"] / train,
                           "outside": 1.0 - train / wall, "weights_remaining": r["weights_remaining"]})
            previous = r["t"]
    return rounds


def _key(args) -> dict:
    return {"rounds": args.rounds, "xla": args.xla, "data_dir": args.data_dir}


def report(result: dict) -> str:
    lines = [f"{'variant':<8} {'round':>5} {'remaining':>9} {'wall s':>7} {'train s':>7} {'eval s':>6} "
             f"{'backup s':>8} {'train ex/s':>10} {'outside':>7}"]
    for r in result["rounds"]:
        lines.append(f"{r['variant']:<8} {r['round']:>5} {100 * r['weights_remaining']:>8.1f}% {r['wall']:>7.2f} "
                     f"{r['train']:>7.2f} {r['eval']:>6.2f} {r['backup']:>8.2f} {r['examples_per_second']:>10,.0f} "
                     f"{100 * r['outside']:>6.1f}%")
    walls = [r["wall"] for r in result["rounds"]]
    outside = [r["outside"] for r in result["rounds"]]
    speeds = [r["examples_per_second"] for r in result["rounds"]]
    median, spread = statistics.median(walls), max(walls) / min(walls)
    lines += [f"rounds: {len(walls)}; wall min {min(walls):.2f} s, median {median:.2f} s, max {max(walls):.2f} s",
              f"training alone: median {statistics.median(speeds):,.0f} examples/s (min {min(speeds):,.0f}, "
              f"max {max(speeds):,.0f})",
              f"outside the training steps: median {100 * statistics.median(outside):.1f}% of a round, "
              f"max {100 * max(outside):.1f}%",
              f"start-up (TensorFlow, data) before the first round: {result['startup_seconds']:.1f} s; "
              f"measured {result['date']}",
              f"imp_run: total {result['total_seconds']:.1f} seconds, round median {median:.2f} s, "
              f"spread (max/min) {spread:.3f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="pruning rounds after round 0 (default 8)")
    parser.add_argument("--data_dir", default=common.FASHION_DIR)
    parser.add_argument("--xla", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--out", default=os.path.join(common.REPO, "benchmarks", "out", "imp_run"))
    parser.add_argument("--fresh", action="store_true", help="measure again even if a measurement is kept")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--began", help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if not all(os.path.exists(os.path.join(args.data_dir, f)) or os.path.exists(os.path.join(args.data_dir, f + ".gz"))
               for f in common.FASHION_FILES):
        parser.error(f"no Fashion-MNIST IDX files in {args.data_dir} (apt-get install dataset-fashion-mnist)")
    kept = os.path.join(args.out, "imp_run.json")
    if not args.fresh and os.path.exists(kept):
        with open(kept) as f:
            result = json.load(f)
        if result.get("settings") == _key(args):
            common.log(f"the measurement kept in {kept} (--fresh measures again)")
            print(report(result), flush=True)
            return
    common.log(f"IMP run, {args.rounds} rounds, lottery + reinit, in a fresh process")
    result = _measure(args)
    os.makedirs(args.out, exist_ok=True)
    with open(kept + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(kept + ".tmp", kept)
    print(report(result), flush=True)


if __name__ == "__main__":
    main()
