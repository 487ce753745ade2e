"""The report's figures: matplotlib's object API on an Agg canvas (no pyplot, no global backend change).

After Frankle & Carbin (ICLR 2019): a statistic against the percent of weights remaining, one line per variant
(Figures 3, 4), test accuracy during training at chosen rounds (Figure 2), the initial values of the surviving
weights (Figure 8); and, for pruning at initialization (Frankle et al., ICLR 2021), the methods and their
ablations.
"""
import io
import os

import numpy as np
import pandas as pd

from lth_tf.analysis.results import _curve_variant, _main_pruning, _surviving, _warn, load_curve
from lth_tf.analysis.tables import ABLATION_ORDER, AT_INIT, METHOD_LABELS, _fmt_pct_weights, _group_label, _method_order
from lth_tf.experiment.files import atomic_write

def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Renders to memory, then writes through a temporary file and a rename (files.atomic_write): a full disk
    leaves no half-written figure (files.DiskFullError, one line)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write(path, buffer.getvalue())
    return path


def _thin_ticks(values, max_ticks=10):
    """Distinct tick positions, at most ``max_ticks``, at least 1/max_ticks of the log range apart (so labels
    never collide), always keeping the ends."""
    vals = sorted({round(float(v), 6) for v in values if v > 0 and np.isfinite(v)}, reverse=True)
    if len(vals) <= 2:
        return vals
    gap = (np.log10(vals[0]) - np.log10(vals[-1])) / max_ticks
    kept = [vals[0]]
    for v in vals[1:-1]:
        if np.log10(kept[-1]) - np.log10(v) >= gap and np.log10(v) - np.log10(vals[-1]) >= gap:
            kept.append(v)
    return kept + [vals[-1]]


def _weights_axis(ax, pcts):
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ticks = _thin_ticks(pcts)
    if ticks:
        lo, hi = min(ticks), max(ticks)
        ax.set_xlim(hi * 1.15, lo / 1.15)  # decreasing left to right, as in the paper
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_pct_weights(v)))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Percent of weights remaining")
    ax.grid(True, which="major", alpha=0.3)


_COLORS = {"lottery": "tab:blue", "reinit": "tab:orange", "random": "tab:orange", "random_reinit": "tab:orange",
           "random_pruning": "tab:green", "random_sparse": "tab:green"}
_STYLES = {"iterative": "-", "oneshot": "--"}


def plot_vs_weights(summary, stat, ylabel, path, scale=1.0, title=None):
    """Mean of ``stat`` over trials vs percent of weights remaining, error bars min/max; one line per variant."""
    fig = _new_figure((6.4, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    several = summary["pruning"].nunique() > 1
    fallback = iter(["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"])
    colors = {}
    for (variant, pruning), sub in summary.groupby(["variant", "pruning"], sort=True):
        sub = sub.sort_values("round")
        sub = sub[np.isfinite(sub[f"{stat}_mean"]) & (sub["weights_remaining_pct"] > 0)]
        if sub.empty:
            continue
        if variant not in colors:
            colors[variant] = _COLORS.get(variant) or next(fallback, None)
        x = sub["weights_remaining_pct"].to_numpy()
        mean = scale * sub[f"{stat}_mean"].to_numpy()
        lo = scale * sub[f"{stat}_min"].to_numpy()
        hi = scale * sub[f"{stat}_max"].to_numpy()
        ax.errorbar(x, mean, yerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)],
                    color=colors[variant], linestyle=_STYLES.get(pruning, ":"), marker="o", markersize=3.5,
                    capsize=3, linewidth=1.5, elinewidth=1, label=_group_label(variant, pruning, several))
    _weights_axis(ax, summary["weights_remaining_pct"])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9)
    return _save(fig, path)


def _plot_groups(groups, stat, ylabel, path, title, scale=100.0):
    """groups: [(label, summary rows)]; mean of ``stat`` vs weights remaining, error bars min/max."""
    fig = _new_figure((6.8, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap, pcts, plotted = colormaps["tab10"], [], 0
    for i, (label, sub) in enumerate(groups):
        sub = sub.sort_values("weights_remaining_pct", ascending=False)
        sub = sub[np.isfinite(sub[f"{stat}_mean"]) & (sub["weights_remaining_pct"] > 0)]
        if sub.empty:
            continue
        x = sub["weights_remaining_pct"].to_numpy()
        mean, lo, hi = (scale * sub[f"{stat}_{k}"].to_numpy() for k in ("mean", "min", "max"))
        reference = label.startswith(("IMP", "magnitude after"))
        ax.errorbar(x, mean, yerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)], color=cmap(i % 10),
                    linestyle="--" if reference else "-", marker="o", markersize=3.5, capsize=3, linewidth=1.5,
                    elinewidth=1, label=label)
        pcts += list(x)
        plotted += 1
    if not plotted:
        return None
    _weights_axis(ax, pcts)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_methods(summary, path, stat="test_accuracy"):
    """Pruning at initialization: every method's un-ablated rounds on one plot, IMP and one-shot as references.
    Rounds 0 of the methods at initialization (the dense network again) are left to IMP's curve."""
    lottery = summary[summary["variant"] == "lottery"]
    groups = []
    for pruning in _method_order(set(lottery["pruning"])):
        sub = lottery[lottery["pruning"] == pruning]
        if pruning in AT_INIT or (pruning == "oneshot" and "iterative" in set(lottery["pruning"])):
            sub = sub[sub["round"] > 0]
        groups.append((METHOD_LABELS.get(pruning, pruning), sub))
    return _plot_groups(groups, stat, "Test accuracy (%), end of training", path,
                        "Pruning at initialization vs after training")


def plot_ablations(summary, pruning, path, stat="test_accuracy"):
    """One method (pruning mode) and its ablations: shuffle, reinit, invert (and rearrange where it ran)."""
    sub = summary[(summary["pruning"] == pruning) & (summary["round"] > 0)]
    variants = [v for v in ABLATION_ORDER if v in set(sub["variant"])]
    variants += sorted(v for v in set(sub["variant"]) if v not in variants)
    if len(variants) < 2:
        return None
    groups = [(v if v != "lottery" else f"{METHOD_LABELS.get(pruning, pruning)} (unmodified)",
               sub[sub["variant"] == v]) for v in variants]
    return _plot_groups(groups, stat, "Test accuracy (%), end of training", path,
                        f"Ablations: {METHOD_LABELS.get(pruning, pruning)}")


def plot_curves(df, rounds, path, variant=None):
    """Test accuracy vs training iteration at ``rounds`` (mean over trials, band min/max), legend by weights left."""
    variant = variant or _curve_variant(df)
    sub = df[df["variant"] == variant]
    sub = sub[sub["pruning"] == _main_pruning(sub)]
    fig = _new_figure((6.4, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    plotted = 0
    for i, rnd in enumerate(rounds):
        rows = sub[sub["round"] == rnd]
        curves = []
        for rdir, t in zip(rows["round_dir"], rows["trial"]):
            c = load_curve(rdir)
            if c is not None and "test_accuracy" in c.columns:
                curves.append(c[["iteration", "test_accuracy"]].assign(trial=t))
        if not curves:
            _warn(f"no curve for variant {variant} round {rnd}; left out of curves.png")
            continue
        allc = pd.concat(curves)
        g = allc.groupby("iteration")["test_accuracy"]
        it = g.mean().index.to_numpy()
        color = cmap(i / max(len(rounds) - 1, 1) * 0.85)
        pct = 100.0 * rows["weights_remaining"].mean()
        ntr = len(curves)
        label = f"{_fmt_pct_weights(pct)}% (round {rnd}" + (f", {ntr} trials)" if ntr > 1 else ")")
        ax.plot(it, 100 * g.mean().to_numpy(), color=color, linewidth=1.5, label=label)
        if ntr > 1:
            ax.fill_between(it, 100 * g.min().to_numpy(), 100 * g.max().to_numpy(), color=color, alpha=0.15)
        plotted += 1
    ax.set_xlabel("Training iterations")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"Test accuracy during training ({variant})")
    ax.grid(True, alpha=0.3)
    if plotted:
        ax.legend(title="Weights remaining", fontsize=9)
    return _save(fig, path) if plotted else None


def plot_histograms(df, rounds, path, variant=None):
    """Per prunable layer (rows) and round (columns): histogram of the surviving weights' initial values."""
    variant = variant or _curve_variant(df)
    sub = df[df["variant"] == variant]
    sub = sub[sub["pruning"] == _main_pruning(sub)]
    columns = []  # (round, pct, trial, {layer: values})
    sizes = {}
    for rnd in rounds:
        rows = sub[sub["round"] == rnd].sort_values("trial")
        for r in rows.itertuples(index=False):
            vals, layer_sizes = _surviving(r.round_dir)
            if vals:
                columns.append((rnd, 100.0 * r.weights_remaining, r.trial, vals))
                sizes.update(layer_sizes)
                break
        else:
            if not any(os.path.exists(os.path.join(r.round_dir, "masks.npz")) for r in rows.itertuples(index=False)):
                _warn(f"no masks for variant {variant} round {rnd}; left out of histograms.png")  # (damaged: told)
    if not columns:
        return None
    layers = []
    for _, _, _, vals in columns:
        layers += [k for k in vals if k not in layers]
    nrow, ncol = len(layers), len(columns)
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure((3.0 * ncol + 0.6, 2.2 * nrow + 0.6))
    for i, layer in enumerate(layers):
        # Shared bins per layer: the range of the densest (first) column.
        ref = next((v[layer] for _, _, _, v in columns if layer in v and v[layer].size), np.zeros(1))
        lim = float(np.max(np.abs(ref))) if ref.size else 1.0
        bins = np.linspace(-lim, lim, 41) if lim > 0 else 41
        for j, (rnd, pct, trial, vals) in enumerate(columns):
            ax = fig.add_subplot(nrow, ncol, i * ncol + j + 1)
            v = vals.get(layer)
            if v is not None and v.size:
                ax.hist(v, bins=bins, color="tab:blue", alpha=0.85)
            layer_pct = 100.0 * (v.size if v is not None else 0) / max(sizes.get(layer, 1), 1)
            ax.set_title(f"{layer}: {_fmt_pct_weights(layer_pct)}% left (round {rnd}, "
                         f"{_fmt_pct_weights(pct)}% overall)", fontsize=8.5)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            if i == nrow - 1:
                ax.set_xlabel("Initial value", fontsize=8)
            if j == 0:
                ax.set_ylabel("Count", fontsize=8)
    trials = sorted({c[2] for c in columns})
    fig.suptitle(f"Initial values of surviving weights ({variant}, trial {', '.join(map(str, trials))})",
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
