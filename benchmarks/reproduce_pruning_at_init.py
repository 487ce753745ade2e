"""Reproduces the comparison of Frankle, Dziugaite, Roy & Carbin ("Pruning Neural Networks at Initialization:
Why are we missing the mark?", ICLR 2021) on Fashion-MNIST, offline, on 2 CPU cores, in at most an hour.

    nohup python benchmarks/reproduce_pruning_at_init.py > benchmarks/out_pruning_at_init/log.txt 2>&1 &
    python benchmarks/reproduce_pruning_at_init.py --budget_minutes=60   # the default budget
    python benchmarks/reproduce_pruning_at_init.py --report_only         # tables and figures from what finished

For each model (lenet300_100 and conv2) and trial, one ``python -m lth_tf.main`` per method, each in its own
directory ``OUT/<model>_<method>``:
  at initialization  random, magnitude_init, snip, grasp, synflow: scores of W_0, one shot to each level
  after training     iterative (IMP) and oneshot (one-shot magnitude pruning of the trained network), both
                     rewinding to iteration 100 (as the paper's IMP with rewinding; conv2 is unstable at k = 0
                     at this learning rate, see docs/INSTABILITY.md)
Levels: GLOBAL pruning (one pool: every layer at the same rate 75% per round, as the paper prunes), rounds 1-3
= 25%, 6.25% and 1.56% of the weights. The three ablations (shuffle, reinit, invert) of every method, IMP
included (one-shot is a reference line only), train at round 2 only (--control_rounds=2). Round 0 of each
directory is the dense network.
Training: SGD; lenet300_100 at learning rate 0.1, batch 128, 2,000 iterations; conv2 with momentum 0.9 at 0.05,
batch 60, 400 iterations, evaluated once at the end (the budget's limit; both networks are short of convergence).
Round 0 and every round of the at-init methods and their ablations train all 2,000 / 400 steps; the pruned rounds
of IMP and one-shot, and IMP's ablations, rewind to iteration 100 and train 100..T: 1,900 / 300 steps, 100 fewer.
Order: every method for each lenet trial, then for each conv2 trial; a job of a trial after the first is optional:
it starts only if it fits in the budget left. Then ``OUT/summary.md``: final test accuracy (%) at each level, mean
[min, max] over trials, the ablation table at round 2, and figures (``OUT/figures``) drawn by lth_tf.report.
Runs are resumable: finished rounds are skipped by the store, and the time spent accumulates in
``OUT/timing.json``.

Options: --out DIR, --budget_minutes M, --trials N, --report_only, --fashion_dir DIR (IDX files; default: the
Debian package's directory).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from benchmarks.common import REPO, Plan, log  # noqa: E402

from lth_tf.experiment.config import AT_INIT  # noqa: E402  (the five methods; config.py starts no TensorFlow)

TRIALS = 2
ABLATION_ROUND = 2
ABLATIONS = ["--ablation=none,shuffle,reinit,invert", f"--control_rounds={ABLATION_ROUND}"]
# IMP is ablated as the methods are; one-shot magnitude pruning after training is a reference line only.
AFTER_TRAINING = {"iterative": ["--rewind_iteration=100", *ABLATIONS], "oneshot": ["--rewind_iteration=100"]}
RATE = 0.75
COMMON = ["--dataset=fashion_mnist", "--optimizer=sgd", "--rounds=3", "--pruning_scope=global",
          f"--prune_rate_fc={RATE}", f"--prune_rate_conv={RATE}", f"--prune_rate_output={RATE}"]
MODELS = {
    "lenet300_100": ["--model=lenet300_100", "--learning_rate=0.1", "--momentum=0", "--batch_size=128",
                     "--iterations=2000", "--eval_every=1000"],
    "conv2": ["--model=conv2", "--learning_rate=0.05", "--momentum=0.9", "--batch_size=60", "--iterations=400",
              "--eval_every=400"],
}


def methods() -> dict:
    """method -> its extra flags."""
    return {**{m: list(ABLATIONS) for m in AT_INIT}, **AFTER_TRAINING}


def jobs(out: str, data_dir: str, trials: int) -> list:
    """(label, args, optional) in the order they run."""
    order = []
    for model, model_flags in MODELS.items():
        for t in range(trials):
            for method, extra in methods().items():
                args = [*COMMON, *model_flags, f"--pruning={method}", *extra, f"--data_dir={data_dir}",
                        f"--trials={trials}", f"--trial_index={t}", f"--output_dir={out}/{model}_{method}"]
                order.append((f"{model} {method} trial {t}", args, t > 0))
    return order


# ---- report ------------------------------------------------------------------------------------------

def _accuracy(summary, pruning, variant, round_) -> str:
    row = summary[(summary["pruning"] == pruning) & (summary["variant"] == variant) & (summary["round"] == round_)]
    if row.empty:
        return "–"
    r = row.iloc[0]
    return (f"{100 * r.test_accuracy_mean:.2f} [{100 * r.test_accuracy_min:.2f}, {100 * r.test_accuracy_max:.2f}]"
            f" (n={int(r.trials)})")


def levels_table(summary) -> str:
    """One row per method, one column per level: un-ablated (variant lottery) final test accuracy (%)."""
    lottery = summary[(summary["variant"] == "lottery") & (summary["round"] > 0)]
    rounds = sorted(lottery["round"].unique().tolist())
    pct = {r: lottery.loc[lottery["round"] == r, "weights_remaining_pct"].mean() for r in rounds}
    dense = summary[(summary["variant"] == "lottery") & (summary["round"] == 0)]
    lines = [f"Dense network (round 0, all directories): {100 * dense.test_accuracy_mean.mean():.2f}% "
             f"[{100 * dense.test_accuracy_min.min():.2f}, {100 * dense.test_accuracy_max.max():.2f}].", "",
             "| method | " + " | ".join(f"{pct[r]:.2f}% weights" for r in rounds) + " |",
             "|---|" + "---:|" * len(rounds)]
    for method in [*AFTER_TRAINING, *AT_INIT]:
        lines.append(f"| {method} | " + " | ".join(_accuracy(summary, method, "lottery", r) for r in rounds) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(summary) -> str:
    """Round ABLATION_ROUND: each method unmodified and under each ablation, final test accuracy (%)."""
    sub = summary[summary["round"] == ABLATION_ROUND]
    if sub.empty:
        return ""
    pct = sub["weights_remaining_pct"].mean()
    lines = [f"Round {ABLATION_ROUND} ({pct:.2f}% weights):", "",
             "| method | unmodified | shuffle | reinit | invert |", "|---|---:|---:|---:|---:|"]
    for method in ["iterative", *AT_INIT]:
        cells = [_accuracy(summary, method, v, ABLATION_ROUND) for v in ("lottery", "shuffle", "reinit", "invert")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_report(out: str, plan: Plan, trials: int) -> str:
    from lth_tf import report

    figures = common.figures_dir(out)
    parts = plan.header("Pruning at initialization on Fashion-MNIST", "reproduce_pruning_at_init.py", trials)
    for model in MODELS:
        dirs = [os.path.join(out, f"{model}_{m}") for m in methods()]
        dirs = [d for d in dirs if os.path.isdir(d)]
        df = report.load_many(dirs)
        if df.empty:
            continue
        summary = report.summarize(df)
        parts += [f"## {model}", "", "`" + " ".join(COMMON + MODELS[model]) + "`", "",
                  "### Final test accuracy (%), mean [min, max] over trials", "", levels_table(summary),
                  "### Ablations", "", ablation_table(summary)]
        report_dir = os.path.join(out, "report", model)
        proc = subprocess.run([sys.executable, "-m", "lth_tf.report", *dirs, "--out", report_dir], cwd=REPO,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"report on {model}: {proc.stderr.strip()[-500:]}")
            continue
        for name in sorted(os.listdir(report_dir)):
            if name == "methods.png" or name.startswith("ablations_"):
                shutil.copyfile(os.path.join(report_dir, name), os.path.join(figures, f"{model}_{name}"))
        parts += [f"Figures: `figures/{model}_methods.png`, `figures/{model}_ablations_<method>.png`.", ""]
    return common.write_summary(out, parts)


if __name__ == "__main__":
    common.main(__doc__, "out_pruning_at_init", "lth_tf.main", jobs, build_report, TRIALS)
