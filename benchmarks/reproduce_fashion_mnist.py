"""Reproduces the paper's main lottery-ticket experiment on Fashion-MNIST, offline, on 2 CPU cores.

    nohup python benchmarks/reproduce_fashion_mnist.py > benchmarks/out/log.txt 2>&1 &
    python benchmarks/reproduce_fashion_mnist.py --report_only         # tables and figures from what finished
    python benchmarks/reproduce_fashion_mnist.py --out=/tmp/plan --trials=1 --oneshot_trials=1 --rounds=2 \
        --iterations=200                                               # a two-minute check of the plan

What it runs (two ``python -m lth_tf.main`` subprocesses writing into ``benchmarks/out/<name>``), in this order:
  lenet_iterative  lenet300_100, `lottery`, `reinit` and `rearrange`, iterative pruning (fc 20%, output 10% per
                   round), 15 rounds (down to 3.6% of the weights), 5 trials (the paper's Figures 3 and 4), with
                   --parallel_trials=5: the 5 trials' lottery rounds train side by side as one stacked model, then
                   the controls' rounds 5 at a time (all 15 control rounds of a trial depend only on its lottery
                   rounds, so they stack too)
  lenet_oneshot    the same network, one-shot pruning to each of those 15 levels, `lottery`, 2 trials, stacked
                   (--parallel_trials=2)
Both are required (the budget, 60 minutes by default, is what the plan was sized for; the summary says how long
the run took against it). Stacking was measured to pay for lenet300_100 on 2 CPU cores (BENCHMARKS.md, "Many
trials in one model": 1.65x the sequential rounds per hour at 4 networks, 2.08x at 8).
Then ``python -m lth_tf.report`` on each directory and a combined summary, ``benchmarks/out/summary.md``, with
the headline tables (mean [min-max] over trials at each level) for both measures of learning speed: the early
stop (minimum validation loss, what the ICLR version uses) and arXiv v1 footnote 1's convergence (the
1000-iteration moving average of test loss changed by less than 0.001 for 1000 iterations; lth_tf.training.convergence),
with test accuracy at each; whether the dense network's validation-loss minimum fell inside every round 0 (at
most 70% of its iterations); and figures (``benchmarks/out/figures/*.png``).

Round length. The paper's third claim (winning tickets reach their minimum validation loss sooner) shows only
when training runs past the dense network's minimum. On the full 55,000 training images a dense lenet300_100
with Adam 1.2e-3 still improves its validation loss at 8,000 iterations (measured here), far beyond what fits
in 90 CPU minutes for ~200 rounds. The script therefore trains on the first 12,000 training images (7,000 train,
5,000 validation held out by the library) and tests on all 10,000 test images: that network overfits after
about 1,000 iterations, so rounds of 2,400 iterations (evaluated every 100) contain the minimum well inside.
Optimiser settings are the ICLR version's for Lenet (Adam, batch 60, learning rate 1.2e-3), given explicitly.
Footnote 1's rule needs a full 1000-iteration window and then 1000 iterations of small changes, so in rounds of
2,400 iterations it can only report convergence at 2,000 to 2,400; a round whose test loss still moves (or rises
as the network overfits) reads "not converged", and the tables count how many trials converged.
Runs are resumable: finished rounds are skipped by the store, and the time spent is accumulated in
``benchmarks/out/timing.json``.

Options: --out DIR, --budget_minutes M (default 60), --trials N (default 5), --oneshot_trials N (default 2),
--parallel_trials N (default: as many as the job's trials; 1 trains them one after another), --rounds N
(default 15), --iterations N (default 2400), --report_only, --fashion_dir DIR (IDX files; default: the Debian
package's directory).
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

ROUNDS, TRIALS, ONESHOT_TRIALS, ITERATIONS, EVAL_EVERY = 15, 5, 2, 2400, 100
BUDGET_MINUTES = 60.0
TRAIN_IMAGES, TEST_IMAGES = 12_000, 10_000  # 7,000 train + 5,000 validation; the whole test set
EARLY_STOP_LIMIT = 0.70  # the dense minimum must fall at or before 70% of the round

LENET = ["--model=lenet300_100", "--dataset=fashion_mnist", "--optimizer=adam", "--learning_rate=0.0012",
         "--batch_size=60", "--prune_rate_fc=0.2", "--prune_rate_output=0.1", f"--eval_every={EVAL_EVERY}"]
MEASURES = "early stop: minimum validation loss", "convergence: footnote 1, moving average of test loss"


# ---- runs --------------------------------------------------------------------------------------------

def _trials(n: int) -> str:
    return "trial 0" if n == 1 else f"trials 0-{n - 1}"


def jobs(out: str, data_dir: str, trials: int, iterations: int, oneshot_trials: int = ONESHOT_TRIALS,
         parallel: int | None = None, rounds: int = ROUNDS) -> list:
    """(label, args, optional) in the order they run, each job's trials stacked `parallel` wide (default: all of
    them). Every job is required."""
    lenet = [*LENET, f"--rounds={rounds}", f"--iterations={iterations}", f"--data_dir={data_dir}"]

    def width(n):
        return min(n, parallel or n)

    variants = "lottery,reinit,rearrange"
    iterative = [*lenet, "--pruning=iterative", f"--variants={variants}", f"--trials={trials}",
                 f"--parallel_trials={width(trials)}", f"--output_dir={out}/lenet_iterative"]
    oneshot = [*lenet, "--pruning=oneshot", "--variants=lottery", f"--trials={oneshot_trials}",
               f"--parallel_trials={width(oneshot_trials)}", f"--output_dir={out}/lenet_oneshot"]
    return [(f"lenet iterative {variants.replace(',', '+')}, {_trials(trials)}", iterative, False),
            (f"lenet one-shot, {_trials(oneshot_trials)}", oneshot, False)]


# ---- report ------------------------------------------------------------------------------------------

def _cell(sub, variant, pruning, round_, stat, scale=100.0, digits=2, count=None):
    """mean [min–max] (n=trials), or with `count` (a column of how many trials have a value: `converged`)
    the mean over those, (n=count/trials), and "not converged" when none has one."""
    rows = sub[(sub["variant"] == variant) & (sub["pruning"] == pruning) & (sub["round"] == round_)]
    if rows.empty:
        return "–"
    r = rows.iloc[0]
    n = f"n={int(r[count])}/{int(r['trials'])}" if count else f"n={int(r['trials'])}"
    if count and int(r[count]) == 0:
        return f"not converged ({n})"
    mean, lo, hi = (scale * r[f"{stat}_{k}"] for k in ("mean", "min", "max"))
    return f"{mean:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}] ({n})"


def headline(summary, columns, stat, scale, digits, count=None) -> str:
    """Markdown: one row per round, one column per (variant, pruning); mean [min–max] over trials (over the
    trials counted in `count` when given)."""
    lottery = summary[(summary["variant"] == "lottery") & (summary["pruning"] == columns[0][1])]
    header = ["Round", "Weights left (%)", *[f"{v} ({p})" if len({p for _, p in columns}) > 1 else v
                                            for v, p in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for r in lottery.sort_values("round").itertuples(index=False):
        cells = [str(int(r.round)), f"{r.weights_remaining_pct:.1f}"]
        cells += [_cell(summary, v, p, r.round, stat, scale, digits, count) for v, p in columns]
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
            f"{100 * EARLY_STOP_LIMIT:.0f}% of the round: {verdict}. Its convergence iteration (footnote 1): "
            + ", ".join(f"trial {int(r.trial)}: {_convergence(r)}" for r in dense.itertuples()) + ".")


def _convergence(row) -> str:
    """The round's convergence iteration, or "not converged" with how close it came: the smallest, over the
    1000-iteration spans of its curve, of the largest change of the moving average (footnote 1 asks < 0.001)."""
    import numpy as np
    from lth_tf import report
    from lth_tf.training import convergence

    iteration = getattr(row, "convergence_iteration", float("nan"))
    if iteration == iteration:  # not NaN
        return f"{iteration:.0f}"
    curve = report.load_curve(row.round_dir)
    largest = (convergence.largest_change(curve["iteration"], curve["test_loss"])
               if curve is not None and "test_loss" in curve.columns and len(curve) > 1 else np.array([np.nan]))
    if np.isnan(largest).all():
        return "not converged (the round is shorter than the rule's 2000 iterations)"
    return (f"not converged (its steadiest 1000 iterations still moved the average by up to "
            f"{np.nanmin(largest):.4f} between evaluations, against 0.001)")


def closest_approach(df) -> str:
    """A sentence on the rounds that did not converge by footnote 1's rule: how many, and how far from its
    tolerance their steadiest 1000 iterations were (median and range over those rounds)."""
    import numpy as np
    from lth_tf import report
    from lth_tf.training import convergence

    missed, closest = 0, []
    for r in df.itertuples(index=False):
        if getattr(r, "convergence_iteration", float("nan")) == getattr(r, "convergence_iteration", float("nan")):
            continue  # converged
        missed += 1
        curve = report.load_curve(r.round_dir)
        if curve is not None and "test_loss" in curve.columns and len(curve) > 1:
            largest = convergence.largest_change(curve["iteration"], curve["test_loss"])
            if np.isfinite(largest).any():
                closest.append(float(np.nanmin(largest)))
    if not missed:
        return "Every round converged by footnote 1's rule."
    text = f"{missed} of {len(df)} rounds did not converge by footnote 1's rule"
    if closest:
        text += (f"; in their steadiest 1000 iterations the moving average still changed by up to "
                 f"{np.median(closest):.4f} between evaluations (median over those rounds; range "
                 f"{min(closest):.4f} to {max(closest):.4f}), against the rule's 0.001")
    return text + "."


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
        budget = f" of the {plan['budget_minutes']:g}-minute budget" if plan else ""
        parts += [f"Wall-clock time of the runs so far: {timing.get('total_seconds', 0) / 60:.1f} min{budget} "
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
        parts += [f"## lenet300_100, test accuracy (%) at early stop ({MEASURES[0]})", "",
                  "Mean [min–max] over trials (n = trials finished).", "",
                  headline(lenet, cols, "test_accuracy_at_early_stop", 100.0, 2), "",
                  f"## lenet300_100, early-stop iteration ({MEASURES[0]})", "",
                  headline(lenet, cols, "early_stop_iteration", 1.0, 0), "",
                  f"## lenet300_100, convergence iteration ({MEASURES[1]})", "",
                  "The arXiv v1 paper's measure for this network (its footnote 1, read as lth_tf.training.convergence "
                  "states): the first evaluation at which the 1000-iteration moving average of test loss had "
                  "changed by less than 0.001 between successive evaluations for 1000 iterations. Mean [min–max] "
                  "over the trials that converged (n = converged/finished).", "",
                  headline(lenet, cols, "convergence_iteration", 1.0, 0, count="converged"), "",
                  closest_approach(pd.concat(frames, ignore_index=True)), "",
                  f"## lenet300_100, test accuracy (%) at convergence ({MEASURES[1]})", "",
                  headline(lenet, cols, "test_accuracy_at_convergence", 100.0, 2, count="converged"), "",
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
                               title=f"lenet300_100 on Fashion-MNIST ({MEASURES[0]})")
        report.plot_vs_weights(lenet, "early_stop_iteration", "Early-stop iteration",
                               os.path.join(figures, "lenet_early_stop.png"),
                               title=f"lenet300_100 on Fashion-MNIST ({MEASURES[0]})")
        if (lenet["converged"] > 0).any():  # footnote 1's measure, where some round converged
            report.plot_vs_weights(lenet, "convergence_iteration", "Convergence iteration (footnote 1)",
                                   os.path.join(figures, "lenet_convergence.png"),
                                   title=f"lenet300_100 on Fashion-MNIST ({MEASURES[1]})")
            report.plot_vs_weights(lenet, "test_accuracy_at_convergence", "Test accuracy at convergence (%)",
                                   os.path.join(figures, "lenet_accuracy_at_convergence.png"), scale=100.0,
                                   title=f"lenet300_100 on Fashion-MNIST ({MEASURES[1]})")
    for name in ("lenet_iterative", "lenet_oneshot"):
        directory = os.path.join(out, name)
        if not os.path.isdir(directory):
            continue
        proc = subprocess.run([sys.executable, "-m", "lth_tf.report", directory, "--out",
                               os.path.join(out, "report", name)], cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"report on {name}: {proc.stderr.strip()}")
            continue
        for fig in ("curves.png", "histograms.png", "accuracy.png", "early_stop.png", "convergence.png",
                    "accuracy_at_convergence.png"):
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
    parser.add_argument("--budget_minutes", type=float, default=BUDGET_MINUTES)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--oneshot_trials", type=int, default=ONESHOT_TRIALS)
    parser.add_argument("--parallel_trials", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--fashion_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--report_only", action="store_true")
    opts = parser.parse_args()
    for name in ("trials", "oneshot_trials", "parallel_trials", "iterations"):
        if getattr(opts, name) is not None and getattr(opts, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(opts, name)}")
    if opts.rounds < 0:
        parser.error(f"--rounds must be at least 0, got {opts.rounds}")
    out = os.path.abspath(opts.out)
    os.makedirs(out, exist_ok=True)
    runs = Plan(out, opts.budget_minutes)
    plan = {"trials": opts.trials, "oneshot_trials": opts.oneshot_trials,
            "parallel_trials": opts.parallel_trials or "all", "iterations": opts.iterations,
            "eval_every": EVAL_EVERY, "rounds": opts.rounds, "train_images": TRAIN_IMAGES, "test_images": TEST_IMAGES,
            "budget_minutes": opts.budget_minutes}

    if not opts.report_only:
        data_dir = fashion_subset(opts.fashion_dir, os.path.join(out, "data", "fashion_mnist_12k"), TRAIN_IMAGES,
                                  TEST_IMAGES)
        for label, args, optional in jobs(out, data_dir, opts.trials, opts.iterations, opts.oneshot_trials,
                                          opts.parallel_trials, opts.rounds):
            runs.run(label, "lth_tf.main", args, optional=optional)
        over = "" if runs.total_minutes <= opts.budget_minutes else f", OVER the {opts.budget_minutes:g}-minute budget"
        log(f"runs finished: {runs.total_minutes:.1f} min in all{over}")
    log(f"summary: {build_report(out, plan, runs.timing)}")


if __name__ == "__main__":
    main()
