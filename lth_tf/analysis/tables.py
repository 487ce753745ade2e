"""The summary over trials (mean, min, max per variant, pruning mode and round) and its Markdown tables.

Accuracies are stored as fractions in [0, 1]; the tables show them as percentages.
"""
import json
import math

import numpy as np
import pandas as pd

from lth_tf.analysis import report_convergence

# lth_tf.experiment.config.AT_INIT, repeated here so that the report reads files with nothing else of the package.
AT_INIT = ("random", "magnitude_init", "snip", "grasp", "synflow")
METHOD_LABELS = {"iterative": "IMP (lottery, iterative)", "oneshot": "magnitude after training (one-shot)",
                 "random": "random", "magnitude_init": "magnitude at init", "snip": "SNIP", "grasp": "GraSP",
                 "synflow": "SynFlow"}
ABLATION_ORDER = ("lottery", "shuffle", "reinit", "invert", "rearrange")
_KEY = ["variant", "pruning", "round"]


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


def _method_order(prunings):
    known = ["iterative", "oneshot", *AT_INIT]
    return [p for p in known if p in prunings] + sorted(p for p in prunings if p not in known)


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
