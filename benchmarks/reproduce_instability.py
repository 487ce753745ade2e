"""Reproduces the instability analysis of Frankle, Dziugaite, Roy & Carbin ("Linear Mode Connectivity and the
Lottery Ticket Hypothesis", ICML 2020) on Fashion-MNIST, offline, on 2 CPU cores, in at most an hour.

    nohup python benchmarks/reproduce_instability.py > benchmarks/out_instability/log.txt 2>&1 &
    python benchmarks/reproduce_instability.py --budget_minutes=60   # the default budget
    python benchmarks/reproduce_instability.py --report_only         # tables and figures from what finished

What it runs (each a ``python -m lth_tf.instability`` subprocess into ``OUT/<name>``), trial by trial:
  lenet  lenet300_100 on all of Fashion-MNIST (55,000 train, 5,000 validation, 10,000 test): the dense
         network and IMP subnetworks at about 42%, 18% and 7% of the weights (fc 58%, output 29% per round),
         rewinding to k in {0, 100, 500}; pairs for `lottery` and random pruning; 30 points on each path, the
         test set and the first 10,000 training images. SGD (open_lth's lenet setting: learning rate 0.1, no
         momentum, batch 128), 3,000 iterations per round.
  conv   conv2 on Fashion-MNIST, dense, k in {0, 25, 100}: SGD with momentum 0.9 at learning rate 0.05, batch 60,
         1,500 iterations; 11 points on each path, the test set and the first 2,000 training images. At this
         rate the two copies trained from initialisation end in different minima (unstable at k = 0).
Order: lenet trial 0, conv trial 0, lenet trial 1, conv trial 1, so both parts have a trial early; a part's
second trial starts only if it fits in what is left of the budget (taking as long as its first). Then the
figures of ``lth_tf.instability_report`` (Figures 2, 3 and 5 of the paper, Figure 5 once per IMP level) and
``OUT/summary.md`` with the instability tables, mean [min, max] over trials, and whether each IMP level is
matching (its end-point test accuracy within 0.5 percentage points of the dense network's) and stable (test
instability below 2%).
Runs are resumable: finished rounds and pairs are skipped by the store, the time spent accumulates in
``OUT/timing.json``.

Options: --out DIR, --budget_minutes M, --trials N, --report_only, --fashion_dir DIR (IDX files; default: the
Debian package's directory).
"""
from __future__ import annotations

import os
import shutil
import sys

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from benchmarks.common import Plan  # noqa: E402

TRIALS = 2
MATCHING_POINTS = 0.005  # matching: end-point accuracy at most 0.5 percentage points below the dense network's
THRESHOLD = 0.02

PARTS = {
    "lenet": ["--model=lenet300_100", "--optimizer=sgd", "--learning_rate=0.1", "--momentum=0", "--batch_size=128",
              "--iterations=3000", "--eval_every=500", "--rounds=3", "--prune_rate_fc=0.58",
              "--prune_rate_output=0.29", "--rewind_iterations=0,100,500", "--variants=lottery,random",
              "--alphas=30", "--train_subset=10000"],
    "conv": ["--model=conv2", "--optimizer=sgd", "--learning_rate=0.05", "--momentum=0.9", "--batch_size=60",
             "--iterations=1500", "--eval_every=500", "--rounds=0", "--rewind_iterations=0,25,100",
             "--variants=lottery", "--alphas=11", "--train_subset=2000"],
}


def jobs(out: str, data_dir: str, trials: int) -> list:
    """(label, args, optional) in the order they run."""
    order = []
    for t in range(trials):
        for name, flags in PARTS.items():
            args = [*flags, "--dataset=fashion_mnist", f"--data_dir={data_dir}", f"--trials={trials}",
                    f"--trial_index={t}", f"--output_dir={out}/{name}"]
            order.append((f"{name} trial {t}", args, t > 0))
    return order


# ---- report ------------------------------------------------------------------------------------------

def _pct(row, stat) -> str:
    return f"{100 * row[f'{stat}_mean']:.2f} [{100 * row[f'{stat}_min']:.2f}, {100 * row[f'{stat}_max']:.2f}]"


def matching_table(agg) -> str:
    """One row per (round, variant, k): instability, accuracy, and the verdicts against the dense network."""
    dense = agg[(agg["variant"] == "lottery") & (agg["round"] == 0) & (agg["rewind_iteration"] == 0)]
    dense_acc = float(dense["accuracy_end_points_mean"].iloc[0]) if len(dense) else None
    lines = ["| round | weights left | variant | k | test instability (%) | train instability (%) | "
             "end-point test accuracy (%) | stable (trials) | matching |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for _, r in agg.sort_values(["round", "variant", "rewind_iteration"]).iterrows():
        matching = "–" if dense_acc is None or r["round"] == 0 else (
            "yes" if r["accuracy_end_points_mean"] >= dense_acc - MATCHING_POINTS else "no")
        lines.append(f"| {int(r['round'])} | {100 * r['weights_remaining_mean']:.1f}% | {r['variant']} | "
                     f"{int(r['rewind_iteration'])} | {_pct(r, 'instability_test')} | "
                     f"{_pct(r, 'instability_train')} | {_pct(r, 'accuracy_end_points')} | "
                     f"{int(r['stable'])}/{int(r['trials'])} | {matching} |")
    note = (f"Dense network (round 0, k = 0) end-point test accuracy: {100 * dense_acc:.2f}%; matching = within "
            f"{100 * MATCHING_POINTS:.1f} points of it." if dense_acc is not None else "")
    return "\n".join(lines) + "\n\n" + note + "\n"


def build_report(out: str, plan: Plan, trials: int) -> str:
    from lth_tf.analysis import instability_report

    figures = common.figures_dir(out)
    parts = plan.header("Instability analysis on Fashion-MNIST", "reproduce_instability.py", trials)
    for name in PARTS:
        root = os.path.join(out, name)
        if not instability_report.has_results(root):
            continue
        _, summary = instability_report.load(root)
        if summary.empty:
            continue
        agg = instability_report.aggregate(summary)
        parts += [f"## {name}", "", "`" + " ".join(PARTS[name]) + "`", "", matching_table(agg)]
        # Figure 5 once per IMP level (round); Figures 2 and 3 (the dense network) are the same in each.
        for round_ in [r for r in sorted(set(summary["round"])) if r > 0] or [0]:
            report_dir = os.path.join(out, "report", f"{name}_round{round_}")
            for src in instability_report.write(root, report_dir, round_=round_, threshold=THRESHOLD):
                base = os.path.basename(src or "")
                if base.endswith(".png") and ("imp" in base or not os.path.exists(
                        os.path.join(figures, f"{name}_{base}"))):
                    target = f"{name}_round{round_}_{base}" if "imp" in base else f"{name}_{base}"
                    shutil.copyfile(src, os.path.join(figures, target))
        parts += [f"Figures: `figures/{name}_*.png`; per-level reports: `report/{name}_round<r>/`.", ""]
    return common.write_summary(out, parts)


if __name__ == "__main__":
    common.main(__doc__, "out_instability", "lth_tf.instability", jobs, build_report, TRIALS)
