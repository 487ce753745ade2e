"""Figures and a table from an instability sweep's tables (lth_tf.experiment.stability), after Frankle, Dziugaite, Roy &
Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis" (ICML 2020). Reads the two CSV files only;
``python -m lth_tf.report ROOT`` calls it when ROOT holds them.

  instability_paths.png       error along the path (1 - a) W1 + a W2 for each k, dense network (Figure 2)
  instability_paths_imp.png   the same for the IMP subnetwork and its controls at the chosen round
  instability_vs_k.png        instability of the dense network against k, log x axis, min/max over trials (Figure 3)
  instability_imp.png         instability and test accuracy against k at the chosen round: IMP subnetworks,
                              random pruning, random reinitialisation; the dense accuracy for reference (Figure 5)
  instability.md              mean [min, max] over trials per (k, variant, round)

    from lth_tf.analysis import instability_report
    instability_report.write("results/inst", "results/inst/report", round_=3)
"""
import os

import numpy as np
import pandas as pd

from lth_tf.analysis.figures import _save
from lth_tf.experiment.files import atomic_write

PATHS, SUMMARY = "instability.csv", "instability_summary.csv"
_COLORS = {"lottery": "tab:blue", "random": "tab:green", "reinit": "tab:orange"}
_LABELS = {"lottery": "IMP subnetwork", "random": "random pruning", "reinit": "random reinitialisation"}


def has_results(root) -> bool:
    return os.path.exists(os.path.join(root, SUMMARY)) and os.path.exists(os.path.join(root, PATHS))


def load(root):
    """(path rows, summary rows) as DataFrames."""
    return pd.read_csv(os.path.join(root, PATHS)), pd.read_csv(os.path.join(root, SUMMARY))


def _figure(figsize):
    from lth_tf.analysis.figures import _new_figure
    return _new_figure(figsize)


def _k_axis(ax, ks):
    """Log x axis that also shows k = 0 (linear below the smallest positive k)."""
    positive = [k for k in ks if k > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.set_xticks(sorted(set(ks)))
    ax.set_xticklabels([str(int(k)) for k in sorted(set(ks))])
    ax.set_xlabel("Rewind iteration k")
    ax.grid(True, alpha=0.3)


def plot_paths(paths, out, round_, variants=("lottery",)):
    """Test and train error against a for each k (mean over trials, band min/max); one panel per split and
    variant."""
    sub = paths[(paths["round"] == round_) & paths["variant"].isin(variants)]
    if sub.empty:
        return None
    variants = [v for v in variants if v in set(sub["variant"])]
    fig = _figure((5.0 * 2, 3.4 * len(variants)))
    ks = sorted(sub["rewind_iteration"].unique())
    cmap = __import__("matplotlib").colormaps["viridis"]
    for row, variant in enumerate(variants):
        for col, split in enumerate(("test", "train")):
            ax = fig.add_subplot(len(variants), 2, 2 * row + col + 1)
            part = sub[(sub["variant"] == variant) & (sub["split"] == split)]
            for i, k in enumerate(ks):
                g = part[part["rewind_iteration"] == k].groupby("alpha")["error"].agg(["mean", "min", "max"])
                if g.empty:
                    continue
                color = cmap(i / max(1, len(ks) - 1))
                ax.plot(g.index, 100 * g["mean"], color=color, label=f"k={int(k)}")
                ax.fill_between(g.index, 100 * g["min"], 100 * g["max"], color=color, alpha=0.2)
            weights = part["weights_remaining"].iloc[0] if not part.empty else 1.0
            name = "Dense network" if round_ == 0 else _LABELS.get(variant, variant)  # round 0 is not pruned
            ax.set_title(f"{name}, {100 * weights:.1f}% weights: {split} error", fontsize=9)
            ax.set_xlabel("Interpolation a")
            ax.set_ylabel("Error (%)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)




def _errorbar(ax, g, stat, scale, **style):
    g = g.sort_values("rewind_iteration")
    mean, lo, hi = (scale * g[f"{stat}_{s}"].to_numpy() for s in ("mean", "min", "max"))
    ax.errorbar(g["rewind_iteration"], mean, yerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)],
                marker="o", markersize=3.5, capsize=3, **style)


def aggregate(summary):
    """Mean, min and max over trials per (variant, round, k)."""
    stats = ["instability_test", "instability_train", "accuracy_end_points", "weights_remaining"]
    g = summary.groupby(["variant", "round", "rewind_iteration"])[stats].agg(["mean", "min", "max"])
    g.columns = [f"{a}_{b}" for a, b in g.columns]
    g["stable"] = summary.groupby(["variant", "round", "rewind_iteration"])["stable"].sum()
    g["trials"] = summary.groupby(["variant", "round", "rewind_iteration"])["trial"].nunique()
    return g.reset_index()


def plot_vs_k(agg, out, threshold=0.02):
    dense = agg[(agg["variant"] == "lottery") & (agg["round"] == 0)]
    if dense.empty:
        return None
    fig = _figure((5.4, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    _errorbar(ax, dense, "instability_test", 100, color="tab:blue", label="test")
    _errorbar(ax, dense, "instability_train", 100, color="tab:blue", linestyle="--", label="train")
    ax.axhline(100 * threshold, color="gray", linestyle=":", linewidth=1, label=f"{100 * threshold:g}% threshold")
    _k_axis(ax, dense["rewind_iteration"])
    ax.set_ylabel("Instability (%)")
    ax.set_title("Dense network: instability against k", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_imp(agg, out, round_, threshold=0.02):
    sub = agg[agg["round"] == round_]
    if sub.empty:
        return None
    fig = _figure((10.0, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for variant, g in sub.groupby("variant"):
        style = dict(color=_COLORS.get(variant, "tab:red"), label=_LABELS.get(variant, variant))
        _errorbar(ax1, g, "instability_test", 100, **style)
        _errorbar(ax2, g, "accuracy_end_points", 100, **style)
    dense = agg[(agg["variant"] == "lottery") & (agg["round"] == 0)]
    if not dense.empty:
        _errorbar(ax2, dense, "accuracy_end_points", 100, color="gray", linestyle=":", label="dense network")
    ax1.axhline(100 * threshold, color="gray", linestyle=":", linewidth=1)
    weights = 100 * sub["weights_remaining_mean"].iloc[0]
    for ax, label in ((ax1, "Test instability (%)"), (ax2, "Test accuracy at the end points (%)")):
        _k_axis(ax, agg["rewind_iteration"])
        ax.set_ylabel(label)
        ax.set_title(f"Round {round_}: {weights:.1f}% weights remaining", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def table(agg) -> str:
    lines = ["| k | variant | round | weights | instability test (%) | instability train (%) | "
             "end-point accuracy (%) | stable |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in agg.sort_values(["round", "variant", "rewind_iteration"]).iterrows():
        def cell(stat, scale=100):
            return (f"{scale * r[f'{stat}_mean']:.2f} [{scale * r[f'{stat}_min']:.2f}, "
                    f"{scale * r[f'{stat}_max']:.2f}]")
        lines.append(f"| {int(r['rewind_iteration'])} | {r['variant']} | {int(r['round'])} | "
                     f"{100 * r['weights_remaining_mean']:.1f}% | {cell('instability_test')} | "
                     f"{cell('instability_train')} | {cell('accuracy_end_points')} | "
                     f"{int(r['stable'])}/{int(r['trials'])} |")
    return "\n".join(lines) + "\n"


def write(root, out_dir, round_=None, threshold=None) -> list:
    """Writes the figures and instability.md for the sweep at ``root``; returns the written paths.

    round_: the IMP round of instability_imp.png and instability_paths_imp.png (default: the last one).
    threshold: the stability line drawn in the figures (default 0.02; the `stable` column keeps the run's own)."""
    paths, summary = load(root)
    if summary.empty:
        return []
    threshold = 0.02 if threshold is None else threshold
    os.makedirs(out_dir, exist_ok=True)
    agg = aggregate(summary)
    if round_ is None:
        round_ = int(summary["round"].max())
    written = [plot_paths(paths, os.path.join(out_dir, "instability_paths.png"), 0),
               plot_vs_k(agg, os.path.join(out_dir, "instability_vs_k.png"), threshold)]
    if round_ > 0:
        written += [plot_paths(paths, os.path.join(out_dir, "instability_paths_imp.png"), round_,
                               variants=("lottery", "random", "reinit")),
                    plot_imp(agg, os.path.join(out_dir, "instability_imp.png"), round_, threshold)]
    md = os.path.join(out_dir, "instability.md")
    atomic_write(md, (f"# Instability analysis: {os.path.abspath(root)}\n\nMean over trials [min, max]; stable: "
                      f"test instability below the threshold of the run (counted in instability_summary.csv).\n\n"
                      + table(agg)).encode())
    written.append(md)
    return [p for p in written if p]
