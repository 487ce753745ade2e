"""Report on a results directory written by ``lth_tf.store``: figures and a Markdown summary.

Reads files only (no TensorFlow), so it starts fast and can run while trials are still training::

    python -m lth_tf.report RESULTS_DIR [RESULTS_DIR ...] [--out DIR] [--rounds 0,3,7]

From Python or a notebook::

    from lth_tf import report
    df = report.load_results("results/run1")      # one row per finished (trial, variant, round)
    table = report.summarize(df)                  # mean / min / max over trials
    paths = report.write_report("results/run1", "results/run1/report")

The table is built from ``trial_*/*/round_*/result.json`` (written last, so its presence marks a finished round),
which merges trials written by several processes into one directory; ``results.csv`` is only a fallback when no
``result.json`` exists. Unfinished rounds are ignored and unreadable ``result.json`` files are skipped with a
warning line on stderr.

Figures (after Frankle & Carbin, ICLR 2019):
  early_stop.png  early-stop iteration (minimum validation loss) vs percent of weights remaining (Figures 3, 4)
  accuracy.png    test accuracy at early stop vs percent of weights remaining (Figures 3 and 4)
  convergence.png, accuracy_at_convergence.png
                  fully-connected models only: the same for arXiv v1 footnote 1's convergence (moving average
                  of test loss), the v1 paper's measure for lenet-300-100 (lth_tf.report_convergence)
  curves.png      test accuracy vs training iteration at chosen rounds (Figure 2)
  histograms.png  initial values of the surviving weights, per layer, at chosen rounds (Figure 8)
  summary.md      settings and one table per variant
  instability_*   when RESULTS_DIR holds an instability sweep's tables (lth_tf.instability): Figures 2, 3 and 5
                  of Frankle et al. (ICML 2020) and instability.md, drawn by lth_tf.instability_report

Pruning at initialization (Frankle et al., ICLR 2021). Each --pruning method writes its own directory (the
method is part of the configuration's hash), so pass them all, IMP's and one-shot's too, for one network:

    python -m lth_tf.report results/snip results/grasp results/synflow results/imp results/oneshot --out rep

Their rows are merged (told apart by `pruning`), and when any row comes from a method at initialization the
report adds (final test accuracy, mean over trials, error bars min/max):
  methods.png               every method's un-ablated rounds (variant lottery) against weights remaining, with
                            IMP (`iterative`) and magnitude pruning after training (`oneshot`) as references
  ablations_<method>.png    one per method (IMP and one-shot included): the method and its ablations
                            (shuffle, reinit, invert; rearrange too where it ran)
  summary.md                a section "Pruning at initialization" with those numbers

Accuracies are stored as fractions in [0, 1]; the report shows them as percentages.
"""
import glob
import json
import math
import os
import re
import sys

import numpy as np
import pandas as pd

from lth_tf import report_convergence

__all__ = [
    "ReportError",
    "load_config",
    "load_results",
    "summarize",
    "default_rounds",
    "load_curve",
    "surviving_initial_weights",
    "format_summary",
    "plot_vs_weights",
    "plot_curves",
    "plot_histograms",
    "write_report",
    "load_many",
    "plot_methods",
    "plot_ablations",
    "format_at_init",
    "main",
]

# lth_tf.config.AT_INIT, repeated here so that the report reads files with nothing else of the package.
AT_INIT = ("random", "magnitude_init", "snip", "grasp", "synflow")
METHOD_LABELS = {"iterative": "IMP (lottery, iterative)", "oneshot": "magnitude after training (one-shot)",
                 "random": "random", "magnitude_init": "magnitude at init", "snip": "SNIP", "grasp": "GraSP",
                 "synflow": "SynFlow"}
ABLATION_ORDER = ("lottery", "shuffle", "reinit", "invert", "rearrange")
_ROUND_DIR_RE = re.compile(r"trial_(\d+)[/\\]([^/\\]+)[/\\]round_(\d+)$")
_KEY = ["variant", "pruning", "round"]


class ReportError(Exception):
    """A results directory that cannot be reported on (missing, or no finished rounds)."""


def _warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def load_config(results_dir):
    """Returns ``(hash, config dict)`` from ``config.json``; ``(None, {})`` if it is missing or unreadable."""
    path = os.path.join(results_dir, "config.json")
    if not os.path.exists(path):
        return None, {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        _warn(f"cannot read {path}: {e}")
        return None, {}
    if not isinstance(data, dict):
        return None, {}
    config = data.get("config", {})
    return data.get("hash"), config if isinstance(config, dict) else {}


def _round_dir(results_dir, trial, variant, rnd):
    return os.path.join(results_dir, f"trial_{int(trial)}", str(variant), f"round_{int(rnd)}")


def load_results(results_dir):
    """One row per finished (trial, variant, round), merged over all ``trial_*`` directories.

    Columns are those of ``result.json`` (the ``results.csv`` contract) plus ``round_dir`` (the round's directory).
    ``trial``/``variant``/``round`` come from the directory names when the JSON lacks them; ``pruning`` defaults to
    ``"iterative"``. Sorted by variant, pruning, trial, round. Raises ``ReportError`` if ``results_dir`` is not a
    directory; returns an empty DataFrame if nothing is finished.
    """
    if not os.path.isdir(results_dir):
        raise ReportError(f"results directory not found: {results_dir}")
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "trial_*", "*", "round_*", "result.json"))):
        rdir = os.path.dirname(path)
        m = _ROUND_DIR_RE.search(os.path.relpath(rdir, results_dir))
        if not m:
            continue
        try:
            with open(path) as f:
                row = json.load(f)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            _warn(f"skipping unreadable {path}: {e}")
            continue
        # The directory names are authoritative for where the round's files are.
        row["trial"], row["variant"], row["round"] = int(m.group(1)), m.group(2), int(m.group(3))
        row["round_dir"] = rdir
        if "convergence_iteration" not in row:  # stored before lth_tf kept it: from the round's curve
            row.update(report_convergence.from_curve(load_curve(rdir)))
        rows.append(row)

    if rows:
        df = pd.DataFrame(rows)
    else:
        csv = os.path.join(results_dir, "results.csv")
        df = pd.DataFrame()
        if os.path.exists(csv):
            try:
                df = pd.read_csv(csv)
            except (OSError, ValueError) as e:
                _warn(f"skipping unreadable {csv}: {e}")
                df = pd.DataFrame()
            if len(df) and not {"trial", "variant", "round"} <= set(df.columns):
                _warn(f"skipping {csv}: no trial/variant/round columns")
                df = pd.DataFrame()
            if len(df):
                df["round_dir"] = [_round_dir(results_dir, t, v, r)
                                   for t, v, r in zip(df["trial"], df["variant"], df["round"])]
    if df.empty:
        return df

    if "pruning" not in df.columns:
        df["pruning"] = "iterative"
    df["pruning"] = df["pruning"].fillna("iterative").astype(str)
    df["variant"] = df["variant"].astype(str)
    df["trial"] = df["trial"].astype(int)
    df["round"] = df["round"].astype(int)
    for col in ("weights_remaining", "early_stop_iteration", "test_accuracy_at_early_stop", "test_accuracy",
                "val_loss_at_early_stop", "test_loss", "iterations", "train_seconds", *report_convergence.STATS):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.drop_duplicates(subset=["trial", "variant", "round"], keep="last")
    front = ["trial", "variant", "pruning", "round"]
    df = df[front + [c for c in df.columns if c not in front]]
    return df.sort_values(["variant", "pruning", "trial", "round"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------------
# Summary


def summarize(df):
    """Aggregates over trials, one row per (variant, pruning, round).

    Columns: variant, pruning, round, weights_remaining (mean fraction), weights_remaining_pct,
    early_stop_iteration_{mean,min,max}, test_accuracy_at_early_stop_{mean,min,max}, test_accuracy_mean
    (final accuracy), trials (number of finished trials), then report_convergence.SUMMARY_COLUMNS:
    convergence_iteration_{mean,min,max}, test_accuracy_at_convergence_{mean,min,max} over the trials that
    converged (arXiv v1 footnote 1) and converged (how many did).
    """
    cols = ["variant", "pruning", "round", "weights_remaining", "weights_remaining_pct",
            "early_stop_iteration_mean", "early_stop_iteration_min", "early_stop_iteration_max",
            "test_accuracy_at_early_stop_mean", "test_accuracy_at_early_stop_min", "test_accuracy_at_early_stop_max",
            "test_accuracy_mean", "test_accuracy_min", "test_accuracy_max", "trials",
            *report_convergence.SUMMARY_COLUMNS]
    if df is None or df.empty:
        return pd.DataFrame(columns=cols)
    df = df.copy()
    if "pruning" not in df.columns:
        df["pruning"] = "iterative"
    for col in ("weights_remaining", "early_stop_iteration", "test_accuracy_at_early_stop", "test_accuracy",
                *report_convergence.STATS):
        if col not in df.columns:
            df[col] = np.nan
    g = df.groupby(_KEY, sort=True)
    out = pd.DataFrame({
        "weights_remaining": g["weights_remaining"].mean(),
        "early_stop_iteration_mean": g["early_stop_iteration"].mean(),
        "early_stop_iteration_min": g["early_stop_iteration"].min(),
        "early_stop_iteration_max": g["early_stop_iteration"].max(),
        "test_accuracy_at_early_stop_mean": g["test_accuracy_at_early_stop"].mean(),
        "test_accuracy_at_early_stop_min": g["test_accuracy_at_early_stop"].min(),
        "test_accuracy_at_early_stop_max": g["test_accuracy_at_early_stop"].max(),
        "test_accuracy_mean": g["test_accuracy"].mean(),
        "test_accuracy_min": g["test_accuracy"].min(),
        "test_accuracy_max": g["test_accuracy"].max(),
        "trials": g["trial"].nunique(),
        **report_convergence.aggregate(g),
    }).reset_index()
    out["weights_remaining_pct"] = 100.0 * out["weights_remaining"]
    return out[cols]


def _fmt_num(x, digits):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_iter(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.0f}"


def _fmt_pct_weights(p):
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p >= 99.95:
        return "100.0"
    return f"{p:.1f}" if p >= 1 else f"{p:.2f}" if p >= 0.1 else f"{p:.3f}"


def _md_table(header, rows, right=True):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    just = str.rjust if right else str.ljust
    line = lambda cells: "| " + " | ".join(just(str(c), w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join(("-" * (w + 1) + ":") if right else ":" + "-" * (w + 1) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def _group_label(variant, pruning, several_prunings):
    return f"{variant} ({pruning})" if several_prunings else str(variant)


def format_summary(summary):
    """Markdown tables (one per variant and pruning mode) for the output of ``summarize``."""
    if summary.empty:
        return "_No finished rounds._\n"
    header = ["Round", "Weights remaining (%)", "Early-stop iteration mean [min, max]",
              "Test acc. at early stop (%) mean [min, max]", "Final test acc. (%) mean", "Trials"]
    parts = []
    for (variant, pruning), sub in summary.groupby(["variant", "pruning"], sort=True):
        rows = []
        for r in sub.sort_values("round").itertuples(index=False):
            rows.append([
                int(r.round),
                _fmt_pct_weights(r.weights_remaining_pct),
                f"{_fmt_iter(r.early_stop_iteration_mean)} "
                f"[{_fmt_iter(r.early_stop_iteration_min)}, {_fmt_iter(r.early_stop_iteration_max)}]",
                f"{_fmt_num(100 * r.test_accuracy_at_early_stop_mean, 2)} "
                f"[{_fmt_num(100 * r.test_accuracy_at_early_stop_min, 2)}, "
                f"{_fmt_num(100 * r.test_accuracy_at_early_stop_max, 2)}]",
                _fmt_num(100 * r.test_accuracy_mean, 2),
                int(r.trials),
            ])
        parts.append(f"### Variant: {variant} ({pruning} pruning)" + "\n\n" + _md_table(header, rows) + "\n")
    return "\n".join(parts)


def _format_settings(config_hash, config):
    lines = ["## Settings", ""]
    rows = []
    if config_hash is not None:
        rows.append(["hash", f"`{config_hash}`"])
    for k, v in config.items():
        rows.append([str(k), json.dumps(v) if not isinstance(v, str) else v])
    if not rows:
        lines.append("_No config.json._")
    else:
        lines.append(_md_table(["Setting", "Value"], rows, right=False))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Per-round files


def default_rounds(df, variant="lottery"):
    """Round 0, a middle round and the last finished round of ``variant`` (or of all variants if it has none)."""
    sub = df[df["variant"] == variant] if (df["variant"] == variant).any() else df
    rounds = sorted(sub["round"].unique().tolist())
    if not rounds:
        return []
    picked = [rounds[0], rounds[len(rounds) // 2], rounds[-1]]
    return sorted(set(int(r) for r in picked))


def _curve_variant(df):
    return "lottery" if (df["variant"] == "lottery").any() else sorted(df["variant"].unique())[0]


def _main_pruning(sub):
    prunings = sorted(sub["pruning"].unique())
    return "iterative" if "iterative" in prunings else prunings[0]


def load_curve(round_dir):
    """The round's ``curve.csv`` as a DataFrame, or None if it is missing or unreadable."""
    path = os.path.join(round_dir, "curve.csv")
    if not os.path.exists(path):
        return None
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError) as e:
        _warn(f"skipping unreadable {path}: {e}")
        return None
    if "iteration" not in curve.columns:
        _warn(f"skipping {path}: no iteration column")
        return None
    return curve


def _find_kernel(weights, layer, shape):
    key = f"{layer}/kernel"
    if key in weights:
        return weights[key]
    for k in weights:  # e.g. "<layer>/kernel:0" or a nested layer name
        if k.rsplit("/", 1)[0] == layer and "kernel" in k.rsplit("/", 1)[-1] and weights[k].shape == shape:
            return weights[k]
    return None


def _load_npz(path):
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        _warn(f"skipping unreadable {path}: {e}")
        return None


def surviving_initial_weights(round_dir, trial_dir=None):
    """Initial values of the weights that survive pruning in one round, as ``{layer: 1-D array}`` in mask order.

    Masks come from the round's ``masks.npz``; values from its ``start_weights.npz`` (for the lottery variant these
    are the original initial values under the mask), else from the trial's ``initial_weights.npz``. Returns {} if
    the masks are missing.
    """
    return _surviving(round_dir, trial_dir)[0]


def _surviving(round_dir, trial_dir=None):
    """``(surviving_initial_weights, {layer: kernel size})``."""
    masks = _load_npz(os.path.join(round_dir, "masks.npz"))
    if not masks:
        return {}, {}
    if trial_dir is None:
        trial_dir = os.path.dirname(os.path.dirname(os.path.normpath(round_dir)))
    sources = [_load_npz(os.path.join(round_dir, "start_weights.npz")),
               _load_npz(os.path.join(trial_dir, "initial_weights.npz"))]
    out = {}
    for layer, mask in masks.items():
        mask = mask.astype(bool)
        for weights in sources:
            if weights is None:
                continue
            kernel = _find_kernel(weights, layer, mask.shape)
            if kernel is not None and kernel.shape == mask.shape:
                out[layer] = np.asarray(kernel)[mask].ravel()
                break
        else:
            _warn(f"no initial kernel for layer {layer} of {round_dir}")
    return out, {layer: int(m.size) for layer, m in masks.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Figures (matplotlib's object API on an Agg canvas: no pyplot, no global backend change)


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.savefig(path, format="png", bbox_inches="tight")
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


def _method_order(prunings):
    known = ["iterative", "oneshot", *AT_INIT]
    return [p for p in known if p in prunings] + sorted(p for p in prunings if p not in known)


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


def format_at_init(summary):
    """Markdown: final test accuracy (%), mean [min, max] over trials, one row per (method, variant), one column
    per round (its weights remaining)."""
    sub = summary[summary["round"] > 0]
    rounds = sorted(sub["round"].unique().tolist())
    if not rounds:
        return "_No pruned rounds._\n"
    pct = {r: sub.loc[sub["round"] == r, "weights_remaining_pct"].mean() for r in rounds}
    header = ["Method", "Variant", *[f"round {r} ({_fmt_pct_weights(pct[r])}%)" for r in rounds], "Trials"]
    rows = []
    for pruning in _method_order(set(sub["pruning"])):
        for variant in [v for v in ABLATION_ORDER if v in set(sub.loc[sub["pruning"] == pruning, "variant"])] + \
                sorted(set(sub.loc[sub["pruning"] == pruning, "variant"]) - set(ABLATION_ORDER)):
            part = sub[(sub["pruning"] == pruning) & (sub["variant"] == variant)].set_index("round")
            cells = []
            for r in rounds:
                if r not in part.index:
                    cells.append("–")
                    continue
                row = part.loc[r]
                cells.append(f"{_fmt_num(100 * row.test_accuracy_mean, 2)} [{_fmt_num(100 * row.test_accuracy_min, 2)}"
                             f", {_fmt_num(100 * row.test_accuracy_max, 2)}]")
            rows.append([METHOD_LABELS.get(pruning, pruning), variant, *cells, int(part["trials"].max())])
    return _md_table(header, rows) + "\n"


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
            _warn(f"no masks for variant {variant} round {rnd}; left out of histograms.png")
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


# ---------------------------------------------------------------------------------------------------------------------
# Report


def write_report(results_dir, out_dir=None, rounds=None):
    """Writes the figures and ``summary.md`` to ``out_dir`` (default ``results_dir/report``, the first directory's
    when ``results_dir`` is a list of directories, whose rows are merged); returns the written paths.

    ``rounds``: rounds for ``curves.png`` and ``histograms.png`` (default: 0, a middle one and the last).
    Raises ``ReportError`` if ``results_dir`` is missing or holds no finished rounds.
    """
    return _write_report(results_dir, out_dir, rounds)[0]


def load_many(results_dirs):
    """`load_results` of several directories, merged (a later directory's row wins for the same trial, variant,
    pruning and round)."""
    frames = [load_results(d) for d in results_dirs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["trial", "variant", "pruning", "round"],
                                                              keep="last")
    return df.sort_values(["variant", "pruning", "trial", "round"]).reset_index(drop=True)


def _write_report(results_dir, out_dir, rounds, instability_round=None):
    from lth_tf import instability_report

    dirs = [results_dir] if isinstance(results_dir, str) else list(results_dir)
    written = []
    if len(dirs) == 1 and instability_report.has_results(dirs[0]):  # an instability sweep's root: its figures
        out_dir = out_dir or os.path.join(dirs[0], "report")
        written = instability_report.write(dirs[0], out_dir, round_=instability_round)
        if not os.path.isdir(dirs[0]) or not glob.glob(os.path.join(dirs[0], "trial_*")):
            return written, None
    df = load_many(dirs)
    if df.empty:
        raise ReportError(f"no finished rounds (no readable trial_*/*/round_*/result.json) in {', '.join(dirs)}")
    results_dir = dirs[0]
    out_dir = out_dir or os.path.join(results_dir, "report")
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(df)
    written = list(written)

    early = report_convergence.EARLY_STOP
    written.append(plot_vs_weights(summary, "early_stop_iteration", "Early-stop iteration (val. loss)",
                                   os.path.join(out_dir, "early_stop.png"), title=f"Early-stop iteration ({early})"))
    written.append(plot_vs_weights(summary, "test_accuracy_at_early_stop", "Test accuracy at early stop (%)",
                                   os.path.join(out_dir, "accuracy.png"), scale=100.0,
                                   title=f"Test accuracy at early stop ({early})"))
    configs = [load_config(d) for d in dirs]
    fully_connected = report_convergence.applies(config.get("model") for _, config in configs)
    if fully_connected:
        written += report_convergence.plot(summary, out_dir, plot_vs_weights)

    curve_variant = _curve_variant(df)
    available = set(df.loc[df["variant"] == curve_variant, "round"].tolist())
    if rounds is None:
        rounds = default_rounds(df, curve_variant)
    else:
        missing = [r for r in rounds if r not in available]
        if missing:
            _warn(f"rounds {missing} not finished for variant {curve_variant}; left out")
        rounds = [int(r) for r in rounds if r in available]
    if rounds:
        for fn, name in ((plot_curves, "curves.png"), (plot_histograms, "histograms.png")):
            p = fn(df, rounds, os.path.join(out_dir, name), variant=curve_variant)
            if p:
                written.append(p)

    at_init = bool(set(df["pruning"]) & set(AT_INIT))
    if at_init:
        p = plot_methods(summary, os.path.join(out_dir, "methods.png"))
        if p:
            written.append(p)
        for pruning in _method_order(set(summary["pruning"])):
            p = plot_ablations(summary, pruning, os.path.join(out_dir, f"ablations_{pruning}.png"))
            if p:
                written.append(p)

    settings = []
    for d, (config_hash, config) in zip(dirs, configs):
        settings += ([f"Directory `{os.path.abspath(d)}`", ""] if len(dirs) > 1 else []) + \
            [_format_settings(config_hash, config)]
    extra = []
    if at_init:
        extra = ["## Pruning at initialization", "",
                 "Final test accuracy (%) at the end of training, mean [min, max] over trials.", "",
                 format_at_init(summary)]
    text = "\n".join([
        f"# Lottery ticket report: {', '.join(os.path.abspath(d) for d in dirs)}",
        "",
        *settings,
        *extra,
        "## Results",
        "",
        f"Mean over finished trials, [min, max] in brackets. Measure: {report_convergence.EARLY_STOP}.",
        "",
        format_summary(summary),
        *(report_convergence.section(summary, _fmt_pct_weights) if fully_connected else []),
    ])
    md = os.path.join(out_dir, "summary.md")
    with open(md, "w") as f:
        f.write(text)
    written.append(md)
    return written, summary


def _parse_rounds(text):
    if text is None or str(text).strip() == "":
        return None
    try:
        return [int(x) for x in str(text).split(",") if x.strip() != ""]
    except ValueError:
        raise ReportError(f"--rounds must be comma-separated integers, got {text!r}") from None


def main(argv=None):
    """Command line entry point; returns the exit code (0 ok, 2 on a usage or data error)."""
    from absl import flags

    argv = list(sys.argv if argv is None else argv)
    fv = flags.FlagValues()  # private flag set: no clash with flags other lth_tf modules define globally
    flags.DEFINE_string("out", None, "Output directory (default: RESULTS_DIR/report).", flag_values=fv)
    flags.DEFINE_string("rounds", None, "Comma-separated rounds for curves.png and histograms.png "
                        "(default: 0, a middle one and the last).", flag_values=fv)
    flags.DEFINE_integer("instability_round", None, "The IMP round of instability_imp.png (an instability "
                         "sweep; default: the last round).", flag_values=fv)
    usage = "usage: python -m lth_tf.report RESULTS_DIR [RESULTS_DIR ...] [--out DIR] [--rounds 0,3,7]"
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
        print(usage + "\n\n" + (__doc__ or "").split("\n\n")[0] + "\n\n" + fv.get_help())
        return 0
    try:
        rest = fv(argv)
        if len(rest) < 2:
            raise ReportError(f"expected at least one RESULTS_DIR argument ({usage})")
        results_dir = rest[1] if len(rest) == 2 else rest[1:]
        rounds = _parse_rounds(fv.rounds)
        written, summary = _write_report(results_dir, fv.out, rounds, fv.instability_round)
    except (ReportError, flags.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p}")
    if summary is not None:
        print()
        print(format_summary(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
