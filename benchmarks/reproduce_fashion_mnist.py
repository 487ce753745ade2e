"""Reproduces the paper's main lottery-ticket experiments on Fashion-MNIST, offline, on 2 CPU cores.

    nohup python benchmarks/reproduce_fashion_mnist.py > benchmarks/out/log.txt 2>&1 &
    python benchmarks/reproduce_fashion_mnist.py --budget_minutes=70      # same: the default budget
    python benchmarks/reproduce_fashion_mnist.py --report_only            # tables and figures from what finished

What it runs (each a ``python -m lth_tf.main`` subprocess writing into ``benchmarks/out/<name>``):
  lenet_iterative  lenet300_100, lottery / reinit / rearrange, iterative pruning (fc 20%, output 10% per
                   round), 15 rounds (down to 3.6% of the weights), 3 trials  (the paper's Figures 3 and 4)
  lenet_oneshot    the same network, one-shot pruning to each of those 15 levels, lottery, 2 trials (Figure 4)
  conv2            conv2_iclr (the paper's Conv-2: 3x3 64-64-pool, dense 256-256-10), lottery vs reinit, 3 rounds at conv 20% /
                   fc 40% per round, 1 trial, on a Fashion-MNIST subset (9,500 train incl. 950 validation,
                   2,000 test) written to benchmarks/out/data (Figure 5, much reduced)
then ``python -m lth_tf.report`` on each directory and a combined summary, ``benchmarks/out/summary.md``, with
the headline table and figures (``benchmarks/out/figures/*.png``).

Training is far shorter than the paper's (50K iterations per round for Lenet) so that everything fits in about
an hour on 2 shared CPU cores. The first run calibrates: it times one short round of each model and picks the
iterations per round that fit ``--budget_minutes``; the choice is saved in ``benchmarks/out/plan.json`` and reused
on every later run, so the results directories keep one configuration and running the script again resumes
where it stopped (finished rounds are skipped by the store). Optimiser settings are the paper's (Adam, batch 60,
learning rate 1.2e-3 for Lenet, 2e-4 for Conv-2), given explicitly so the library's defaults do not matter.

Options: --out DIR, --budget_minutes M, --lenet_iterations N / --conv2_iterations N (skip calibration of that
model), --report_only, --fashion_dir DIR (IDX files; default: the Debian package's directory).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LENET_ROUNDS, LENET_TRIALS, ONESHOT_TRIALS = 15, 3, 2
CONV2_ROUNDS = 3
CONV2_TRAIN, CONV2_TEST = 9500, 2000  # under 10,000 training images the library holds out 10% for validation
EVAL_EVERY = 100

LENET = ["--model=lenet300_100", "--dataset=fashion_mnist", "--optimizer=adam", "--learning_rate=0.0012",
         "--batch_size=60", "--prune_rate_fc=0.2", "--prune_rate_output=0.1", f"--eval_every={EVAL_EVERY}",
         f"--rounds={LENET_ROUNDS}"]
CONV2 = ["--model=conv2_iclr", "--dataset=fashion_mnist", "--optimizer=adam", "--learning_rate=0.0002",
         "--batch_size=60", "--prune_rate_conv=0.2", "--prune_rate_fc=0.4", "--prune_rate_output=0.2",
         f"--eval_every={EVAL_EVERY}", f"--rounds={CONV2_ROUNDS}"]

# Rounds trained by the whole plan, per model (for the time budget).
LENET_JOB_ROUNDS = LENET_TRIALS * (1 + 3 * LENET_ROUNDS) + ONESHOT_TRIALS * (1 + LENET_ROUNDS)
CONV2_JOB_ROUNDS = 1 + 2 * CONV2_ROUNDS
PROCESS_OVERHEAD_S = 60  # TensorFlow import, data loading and tracing per subprocess, on a busy machine


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def lth_main(args: list) -> None:
    """Runs ``python -m lth_tf.main`` with `args`, echoing its round lines; exits with its tail if it fails."""
    cmd = [sys.executable, "-m", "lth_tf.main", "--quiet", *args]
    log("$ " + " ".join(cmd[1:]))
    began = time.perf_counter()
    tail = []
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-15:]
            if line.startswith(("trial ", "lth_tf")):
                print("    " + line.rstrip(), flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"lth_tf.main failed (exit {proc.returncode}):\n" + "\n".join(tail))
    log(f"finished in {time.perf_counter() - began:.0f}s")


# ---- data ------------------------------------------------------------------------------------------

def write_idx(path: str, array) -> None:
    """Writes a uint8 array as a gzipped IDX file (the MNIST format: magic 0x0000 08 ndim, big-endian dims)."""
    import numpy as np
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    tmp = path + ".tmp"
    with gzip.open(tmp, "wb") as f:
        f.write(header + array.tobytes())
    os.replace(tmp, path)


def fashion_subset(source_dir: str, out_dir: str) -> str:
    """The first CONV2_TRAIN training and CONV2_TEST test images of Fashion-MNIST, as IDX files in out_dir."""
    sys.path.insert(0, REPO)
    from lth_tf.data import read_idx

    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    os.makedirs(out_dir, exist_ok=True)
    if all(os.path.exists(os.path.join(out_dir, n + ".gz")) for n in names):
        return out_dir
    for name in names:
        src = os.path.join(source_dir, name + ".gz")
        if not os.path.exists(src):
            src = os.path.join(source_dir, name)
        if not os.path.exists(src):
            raise SystemExit(f"Fashion-MNIST not found in {source_dir} "
                             "(apt-get install dataset-fashion-mnist, or pass --fashion_dir)")
        count = CONV2_TRAIN if name.startswith("train") else CONV2_TEST
        write_idx(os.path.join(out_dir, name + ".gz"), read_idx(src)[:count])
    return out_dir


# ---- calibration -------------------------------------------------------------------------------------

def seconds_per_iteration(out: str, name: str, args: list, iterations: int) -> float:
    """Trains round 0 and round 1 for `iterations` steps; round 1 (already traced) gives the time per step."""
    directory = os.path.join(out, "calibration", name)
    lth_main([*args, f"--iterations={iterations}", "--rounds=1", "--trials=1", "--variants=lottery",
              f"--output_dir={directory}"])
    with open(os.path.join(directory, "trial_0", "lottery", "round_1", "result.json")) as f:
        row = json.load(f)
    return float(row["train_seconds"]) / float(row["iterations"])


def make_plan(opts, out: str, conv2_data: str) -> dict:
    path = os.path.join(out, "plan.json")
    if os.path.exists(path):
        with open(path) as f:
            plan = json.load(f)
        log(f"using the saved plan {path}: {plan}")
        return plan
    began = time.perf_counter()
    budget = opts.budget_minutes * 60 - 6 * PROCESS_OVERHEAD_S
    plan = {"budget_minutes": opts.budget_minutes}
    lenet_share, conv2_share = 0.72 * budget, 0.28 * budget
    if opts.lenet_iterations:
        plan["lenet_iterations"] = opts.lenet_iterations
    else:
        s = seconds_per_iteration(out, "lenet", LENET, 300)
        plan["lenet_seconds_per_iteration"] = round(s, 5)
        it = int(lenet_share / LENET_JOB_ROUNDS / s) // EVAL_EVERY * EVAL_EVERY
        plan["lenet_iterations"] = max(500, min(5500, it))
    if opts.conv2_iterations:
        plan["conv2_iterations"] = opts.conv2_iterations
    else:
        s = seconds_per_iteration(out, "conv2", [*CONV2, f"--data_dir={conv2_data}", "--eval_every=20"], 20)
        plan["conv2_seconds_per_iteration"] = round(s, 4)
        it = int(conv2_share / CONV2_JOB_ROUNDS / s) // EVAL_EVERY * EVAL_EVERY
        plan["conv2_iterations"] = max(100, min(1000, it))
    plan["calibration_seconds"] = round(time.perf_counter() - began, 1)
    with open(path, "w") as f:
        json.dump(plan, f, indent=1)
    log(f"calibrated plan saved to {path}: {plan}")
    return plan


# ---- runs --------------------------------------------------------------------------------------------

def jobs(plan: dict, out: str, conv2_data: str) -> list:
    """(label, args) in the order they run: one trial of everything first, so a cut-short run covers all parts."""
    lenet = [*LENET, f"--iterations={plan['lenet_iterations']}"]
    iterative = [*lenet, "--pruning=iterative", "--variants=lottery,reinit,rearrange",
                 f"--trials={LENET_TRIALS}", f"--output_dir={out}/lenet_iterative"]
    oneshot = [*lenet, "--pruning=oneshot", "--variants=lottery", f"--trials={ONESHOT_TRIALS}",
               f"--output_dir={out}/lenet_oneshot"]
    conv2 = [*CONV2, f"--iterations={plan['conv2_iterations']}", f"--data_dir={conv2_data}",
             "--variants=lottery,reinit", "--trials=1", f"--output_dir={out}/conv2_iclr"]
    order = [("lenet iterative, trial 0", [*iterative, "--trial_index=0"]),
             ("lenet one-shot, trial 0", [*oneshot, "--trial_index=0"]),
             ("conv2_iclr", conv2)]
    order += [(f"lenet iterative, trial {t}", [*iterative, f"--trial_index={t}"]) for t in range(1, LENET_TRIALS)]
    order += [(f"lenet one-shot, trial {t}", [*oneshot, f"--trial_index={t}"]) for t in range(1, ONESHOT_TRIALS)]
    return order


# ---- report ------------------------------------------------------------------------------------------

def _cell(sub, variant, pruning, round_, stat, scale=100.0, digits=2):
    rows = sub[(sub["variant"] == variant) & (sub["pruning"] == pruning) & (sub["round"] == round_)]
    if rows.empty:
        return "–"
    r = rows.iloc[0]
    mean, lo, hi = (scale * r[f"{stat}_{k}"] for k in ("mean", "min", "max"))
    if digits == 0:
        return f"{mean:.0f} [{lo:.0f}–{hi:.0f}] (n={int(r['trials'])})"
    return f"{mean:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}] (n={int(r['trials'])})"


def headline(summary, columns, stat, scale, digits) -> str:
    """Markdown: one row per round, one column per (variant, pruning); mean [min–max] over trials."""
    lottery = summary[(summary["variant"] == "lottery") & (summary["pruning"] == columns[0][1])]
    header = ["Round", "Weights left (%)", *[f"{v} ({p})" if len({p for _, p in columns}) > 1 else v
                                            for v, p in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for r in lottery.sort_values("round").itertuples(index=False):
        cells = [str(int(r.round)), f"{r.weights_remaining_pct:.1f}"]
        cells += [_cell(summary, v, p, r.round, stat, scale, digits) for v, p in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_at(df, iteration: int):
    """Per (variant, pruning, round): test accuracy at `iteration` of each trial's curve, as summarize() columns.

    A learning-speed measure that still separates the variants when training is too short for the validation
    loss to reach its minimum (the early-stop iteration then sits at the end of the round)."""
    import pandas as pd
    from lth_tf import report

    rows = []
    for r in df.itertuples(index=False):
        curve = report.load_curve(r.round_dir)
        if curve is None or not (curve["iteration"] == iteration).any():
            continue
        acc = float(curve.loc[curve["iteration"] == iteration, "test_accuracy"].iloc[0])
        rows.append({"variant": r.variant, "pruning": r.pruning, "round": r.round, "trial": r.trial, "acc": acc,
                     "weights_remaining": r.weights_remaining})
    if not rows:
        return None
    g = pd.DataFrame(rows).groupby(["variant", "pruning", "round"])
    out = pd.DataFrame({"acc_mean": g["acc"].mean(), "acc_min": g["acc"].min(), "acc_max": g["acc"].max(),
                        "trials": g["trial"].nunique(),
                        "weights_remaining_pct": 100 * g["weights_remaining"].mean()}).reset_index()
    return out


def build_report(out: str, plan: dict | None, timing: dict) -> str:
    sys.path.insert(0, REPO)
    import pandas as pd
    from lth_tf import report

    figures = os.path.join(out, "figures")
    os.makedirs(figures, exist_ok=True)
    parts = ["# Lottery tickets on Fashion-MNIST: benchmark summary", "",
             f"Produced by `benchmarks/reproduce_fashion_mnist.py` on {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    if plan:
        parts += [f"Plan: `{json.dumps(plan)}`", ""]
    if timing:
        calibration = (plan or {}).get("calibration_seconds", 0.0)
        parts += [f"Wall-clock time of the runs so far: {timing.get('total_seconds', 0) / 60:.1f} min, plus "
                  f"{calibration / 60:.1f} min of calibration "
                  f"({json.dumps({k: round(v / 60, 1) for k, v in timing.get('jobs', {}).items()})} minutes).", ""]

    frames = [report.load_results(os.path.join(out, d)) for d in ("lenet_iterative", "lenet_oneshot")
              if os.path.isdir(os.path.join(out, d))]
    frames = [f for f in frames if not f.empty]
    if frames:
        lenet = report.summarize(pd.concat(frames, ignore_index=True))
        cols = [(v, p) for v, p in (("lottery", "iterative"), ("reinit", "iterative"), ("rearrange", "iterative"),
                                    ("lottery", "oneshot"))
                if ((lenet["variant"] == v) & (lenet["pruning"] == p)).any()]
        parts += ["## lenet300_100, test accuracy (%) at early stop", "",
                  "Mean [min–max] over trials (n = trials finished).", "",
                  headline(lenet, cols, "test_accuracy_at_early_stop", 100.0, 2), "",
                  "## lenet300_100, early-stop iteration (minimum validation loss)", "",
                  headline(lenet, cols, "early_stop_iteration", 1.0, 0), "",
                  "## lenet300_100, final test accuracy (%) (end of the round)", ""]
        rows = ["| Round | Weights left (%) | " + " | ".join(f"{v} ({p})" for v, p in cols) + " |",
                "|" + "---:|" * (2 + len(cols))]
        for r in lenet[(lenet.variant == "lottery") & (lenet.pruning == "iterative")].sort_values("round") \
                .itertuples(index=False):
            cells = []
            for v, p in cols:
                hit = lenet[(lenet.variant == v) & (lenet.pruning == p) & (lenet["round"] == r.round)]
                cells.append(f"{100 * hit.iloc[0].test_accuracy_mean:.2f}" if len(hit) else "–")
            rows.append(f"| {int(r.round)} | {r.weights_remaining_pct:.1f} | " + " | ".join(cells) + " |")
        parts += ["\n".join(rows), ""]
        lenet_rows = pd.concat(frames, ignore_index=True)
        for iteration in (200, 500):
            early = accuracy_at(lenet_rows, iteration)
            if early is not None:
                parts += [f"## lenet300_100, test accuracy (%) after {iteration} iterations (learning speed)", "",
                          headline(early, cols, "acc", 100.0, 2), ""]
        report.plot_vs_weights(lenet, "test_accuracy_at_early_stop", "Test accuracy at early stop (%)",
                               os.path.join(figures, "lenet_accuracy.png"), scale=100.0,
                               title="lenet300_100 on Fashion-MNIST")
        report.plot_vs_weights(lenet, "early_stop_iteration", "Early-stop iteration",
                               os.path.join(figures, "lenet_early_stop.png"),
                               title="lenet300_100 on Fashion-MNIST")
    for name in ("lenet_iterative", "lenet_oneshot", "conv2_iclr"):
        directory = os.path.join(out, name)
        if not os.path.isdir(directory):
            continue
        proc = subprocess.run([sys.executable, "-m", "lth_tf.report", directory, "--out",
                               os.path.join(out, "report", name)], cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"report on {name}: {proc.stderr.strip()}")
            continue
        for fig in ("curves.png", "histograms.png", "accuracy.png", "early_stop.png"):
            src = os.path.join(out, "report", name, fig)
            if os.path.exists(src):
                with open(src, "rb") as f_in, open(os.path.join(figures, f"{name}_{fig}"), "wb") as f_out:
                    f_out.write(f_in.read())
    conv2 = report.load_results(os.path.join(out, "conv2_iclr")) if os.path.isdir(os.path.join(out, "conv2_iclr")) else None
    if conv2 is not None and not conv2.empty:
        s = report.summarize(conv2)
        parts += ["## conv2, test accuracy (%) at early stop (1 trial)", "",
                  headline(s, [("lottery", "iterative"), ("reinit", "iterative")],
                           "test_accuracy_at_early_stop", 100.0, 2), "",
                  "## conv2, early-stop iteration", "",
                  headline(s, [("lottery", "iterative"), ("reinit", "iterative")], "early_stop_iteration", 1.0, 0),
                  ""]
    parts += ["Per-directory reports (settings, every round, curves, histograms): "
              f"`{out}/report/<name>/summary.md`.", ""]
    path = os.path.join(out, "summary.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


# ---- main --------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "out"))
    parser.add_argument("--budget_minutes", type=float, default=70.0)
    parser.add_argument("--lenet_iterations", type=int, default=None)
    parser.add_argument("--conv2_iterations", type=int, default=None)
    parser.add_argument("--fashion_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--report_only", action="store_true")
    opts = parser.parse_args()
    out = os.path.abspath(opts.out)
    os.makedirs(out, exist_ok=True)
    timing_path = os.path.join(out, "timing.json")
    timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {"jobs": {}, "total_seconds": 0.0}
    plan_path = os.path.join(out, "plan.json")

    if not opts.report_only:
        conv2_data = fashion_subset(opts.fashion_dir, os.path.join(out, "data", "fashion_mnist_small"))
        began = time.perf_counter()
        plan = make_plan(opts, out, conv2_data)
        for label, args in jobs(plan, out, conv2_data):
            log(f"== {label}")
            start = time.perf_counter()
            lth_main(args)
            # Accumulated over resumed runs, so the total is the time the whole plan took.
            timing["jobs"][label] = timing["jobs"].get(label, 0.0) + time.perf_counter() - start
            timing["total_seconds"] = timing.get("total_seconds", 0.0) + time.perf_counter() - start
            with open(timing_path, "w") as f:
                json.dump(timing, f, indent=1)
        log(f"all runs finished ({(time.perf_counter() - began) / 60:.1f} min in this invocation)")
    plan = json.load(open(plan_path)) if os.path.exists(plan_path) else None
    log(f"summary: {build_report(out, plan, timing)}")


if __name__ == "__main__":
    main()
