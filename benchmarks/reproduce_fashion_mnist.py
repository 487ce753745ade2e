"""Reproduces the paper's main lottery-ticket experiment on Fashion-MNIST, offline, on 2 CPU cores.

    nohup python benchmarks/reproduce_fashion_mnist.py > benchmarks/out/log.txt 2>&1 &
    python benchmarks/reproduce_fashion_mnist.py --budget_minutes=90   # the default budget
    python benchmarks/reproduce_fashion_mnist.py --report_only         # tables and figures from what finished

What it runs (each a ``python -m lth_tf.main`` subprocess writing into ``benchmarks/out/<name>``), in this order:
  lenet_iterative  lenet300_100, `lottery` and `reinit`, iterative pruning (fc 20%, output 10% per round),
                   15 rounds (down to 3.6% of the weights), 5 trials (the paper's Figures 3 and 4)
  lenet_oneshot    the same network, one-shot pruning to each of those 15 levels, `lottery`, 5 trials (Figure 4)
  lenet_iterative  `rearrange` added to the same directory (its lottery rounds are reused), 5 trials
The two optional parts start only while the budget allows (see --budget_minutes); what finished is reported.
Then ``python -m lth_tf.report`` on each directory and a combined summary, ``benchmarks/out/summary.md``, with
the headline tables (accuracy and early-stop iteration at each level, mean [min-max] over trials), whether the
dense network's validation-loss minimum fell inside every round 0 (at most 70% of its iterations), and figures
(``benchmarks/out/figures/*.png``).

Round length. The paper's third claim (winning tickets reach their minimum validation loss sooner) shows only
when training runs past the dense network's minimum. On the full 55,000 training images a dense lenet300_100
with Adam 1.2e-3 still improves its validation loss at 8,000 iterations (measured here), far beyond what fits
in 90 CPU minutes for ~200 rounds. The script therefore trains on the first 12,000 training images (7,000 train,
5,000 validation held out by the library) and tests on all 10,000 test images: that network overfits after
about 1,000 iterations, so rounds of 2,400 iterations (evaluated every 100) contain the minimum well inside.
Optimiser settings are the ICLR version's for Lenet (Adam, batch 60, learning rate 1.2e-3), given explicitly.
Runs are resumable: finished rounds are skipped by the store, and the time spent is accumulated in
``benchmarks/out/timing.json``.

Options: --out DIR, --budget_minutes M, --trials N, --iterations N, --report_only, --fashion_dir DIR (IDX files;
default: the Debian package's directory).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import REPO, Plan, fashion_subset, log  # noqa: E402

ROUNDS, TRIALS, ITERATIONS, EVAL_EVERY = 15, 5, 2400, 100
TRAIN_IMAGES, TEST_IMAGES = 12_000, 10_000  # 7,000 train + 5,000 validation; the whole test set
EARLY_STOP_LIMIT = 0.70  # the dense minimum must fall at or before 70% of the round

LENET = ["--model=lenet300_100", "--dataset=fashion_mnist", "--optimizer=adam", "--learning_rate=0.0012",
         "--batch_size=60", "--prune_rate_fc=0.2", "--prune_rate_output=0.1", f"--eval_every={EVAL_EVERY}",
         f"--rounds={ROUNDS}"]


# ---- runs --------------------------------------------------------------------------------------------

def jobs(out: str, data_dir: str, trials: int, iterations: int) -> list:
    """(label, args, optional) in the order they run: the required lottery/reinit trials first."""
    lenet = [*LENET, f"--iterations={iterations}", f"--data_dir={data_dir}", f"--trials={trials}"]
    iterative = [*lenet, "--pruning=iterative", f"--output_dir={out}/lenet_iterative"]
    oneshot = [*lenet, "--pruning=oneshot", "--variants=lottery", f"--output_dir={out}/lenet_oneshot"]
    order = [(f"lenet iterative lottery+reinit, trial {t}", [*iterative, "--variants=lottery,reinit",
                                                             f"--trial_index={t}"], False) for t in range(trials)]
    order += [(f"lenet one-shot, trial {t}", [*oneshot, f"--trial_index={t}"], True) for t in range(trials)]
    order += [(f"lenet iterative rearrange, trial {t}", [*iterative, "--variants=lottery,rearrange",
                                                         f"--trial_index={t}"], True) for t in range(trials)]
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


def dense_minimum_check(df) -> str:
    """A sentence: in which trials the dense round's validation-loss minimum fell at or before 70% of the round."""
    dense = df[(df["variant"] == "lottery") & (df["round"] == 0)].sort_values("trial")
    if dense.empty:
        return "No dense round has finished yet."
    fractions = [(int(r.trial), int(r.early_stop_iteration), int(r.iterations)) for r in dense.itertuples()]
    inside = all(it <= EARLY_STOP_LIMIT * total for _, it, total in fractions)
    listed = ", ".join(f"trial {t}: {it}/{total} ({100 * it / total:.0f}%)" for t, it, total in fractions)
    verdict = "inside every round, as required" if inside else "NOT inside every round"
    return (f"Dense network (round 0), early-stop iteration / iterations: {listed}; the minimum falls at or before "
            f"{100 * EARLY_STOP_LIMIT:.0f}% of the round: {verdict}.")


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
        jobs_min = {k: round(v / 60, 1) for k, v in timing.get("jobs", {}).items() if not k.endswith("(done)")}
        parts += [f"Wall-clock time of the runs so far: {timing.get('total_seconds', 0) / 60:.1f} min "
                  f"(minutes per job: {json.dumps(jobs_min)}).", ""]

    frames = [report.load_results(os.path.join(out, d)) for d in ("lenet_iterative", "lenet_oneshot")
              if os.path.isdir(os.path.join(out, d))]
    frames = [f for f in frames if not f.empty]
    if frames:
        lenet = report.summarize(pd.concat(frames, ignore_index=True))
        parts += [dense_minimum_check(frames[0]), ""]
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
    for name in ("lenet_iterative", "lenet_oneshot"):
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
    parser.add_argument("--budget_minutes", type=float, default=90.0)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--fashion_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--report_only", action="store_true")
    opts = parser.parse_args()
    out = os.path.abspath(opts.out)
    os.makedirs(out, exist_ok=True)
    runs = Plan(out, opts.budget_minutes)
    plan = {"trials": opts.trials, "iterations": opts.iterations, "eval_every": EVAL_EVERY, "rounds": ROUNDS,
            "train_images": TRAIN_IMAGES, "test_images": TEST_IMAGES, "budget_minutes": opts.budget_minutes}

    if not opts.report_only:
        data_dir = fashion_subset(opts.fashion_dir, os.path.join(out, "data", "fashion_mnist_12k"), TRAIN_IMAGES,
                                  TEST_IMAGES)
        for label, args, optional in jobs(out, data_dir, opts.trials, opts.iterations):
            runs.run(label, "lth_tf.main", args, optional=optional)
        log(f"runs finished: {runs.total_minutes:.1f} min in all")
    log(f"summary: {build_report(out, plan, runs.timing)}")


if __name__ == "__main__":
    main()
