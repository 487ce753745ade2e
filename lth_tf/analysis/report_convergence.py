"""The report's convergence part: arXiv v1 footnote 1's measure beside the early stop (lth_tf.report uses it).

Two measures of how fast a round learns are stored for every round (lth_tf.experiment.store's results.csv):
  early stop    `early_stop_iteration`: the evaluation of minimum validation loss. The paper's measure for its
                convolutional networks (arXiv v1 footnote 2, Section 3) and, in the ICLR version, for all.
  convergence   `convergence_iteration`: the moment the 1000-iteration moving average of test loss changed by
                less than 0.001 for 1000 consecutive iterations (arXiv v1 footnote 1; lth_tf.training.convergence
                says exactly how it is read). The v1 paper's measure for its fully-connected network, lenet-300-100,
                in Figures 2 and 3. Empty when the round did not converge.

The report draws the convergence figures for the fully-connected models only, `lenet300_100` (v1) and
`lenet300_100_iclr` (the same network with the ICLR version's training), since footnote 1 defines the measure
for fully-connected networks; they are left out when no round converged (the rule needs at least 2000
iterations at the paper's settings). Files (beside early_stop.png and accuracy.png, Figure 3 style):
  convergence.png               convergence iteration vs percent of weights remaining (mean over the trials
                                that converged, error bars min/max)
  accuracy_at_convergence.png   test accuracy at that iteration vs percent of weights remaining

Rounds stored before lth_tf kept the columns get them from their curve.csv (`from_curve`), so an older results
directory reports both measures too.
"""
import numpy as np

from lth_tf.training import convergence

# lth_tf.models.specs' models without image input, repeated so that the report reads files with nothing else.
FULLY_CONNECTED = ("lenet300_100", "lenet300_100_iclr")
EARLY_STOP = "early stop: minimum validation loss"
CONVERGENCE = "convergence: footnote 1, moving average of test loss"
STATS = ("convergence_iteration", "test_accuracy_at_convergence")
SUMMARY_COLUMNS = ["convergence_iteration_mean", "convergence_iteration_min", "convergence_iteration_max",
                   "test_accuracy_at_convergence_mean", "test_accuracy_at_convergence_min",
                   "test_accuracy_at_convergence_max", "converged"]


def from_curve(curve) -> dict:
    """The two columns computed from a round's curve.csv (a DataFrame, or None): {} when the curve cannot say
    (missing, no test_loss), else their values, None when the round did not converge."""
    if curve is None or not {"iteration", "test_loss", "test_accuracy"} <= set(curve.columns) or curve.empty:
        return {}
    point = convergence.at_convergence(curve[["iteration", "test_loss", "test_accuracy"]].to_dict("records"))
    if point is None:
        return {"convergence_iteration": None, "test_accuracy_at_convergence": None}
    return {"convergence_iteration": int(point["iteration"]),
            "test_accuracy_at_convergence": float(point["test_accuracy"])}


def aggregate(groups) -> dict:
    """Summary columns over trials from a groupby of rows: mean/min/max over the trials that converged, and
    `converged`, how many did (NaN-skipping, as pandas' reductions are)."""
    out = {}
    for stat in STATS:
        out.update({f"{stat}_mean": groups[stat].mean(), f"{stat}_min": groups[stat].min(),
                    f"{stat}_max": groups[stat].max()})
    out["converged"] = groups["convergence_iteration"].count()
    return out


def applies(models) -> bool:
    """Whether the report shows footnote 1's measure: some directory holds a fully-connected model."""
    return any(m in FULLY_CONNECTED for m in models)


def _range(mean, lo, hi, scale=1.0, digits=0):
    if mean is None or not np.isfinite(mean):
        return "not converged"
    return f"{scale * mean:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def format_table(summary, fmt_pct) -> str:
    """Markdown: one table per (variant, pruning) of the convergence columns of `summarize`; `fmt_pct` formats
    the percent of weights remaining (the report's)."""
    if summary.empty:
        return "_No finished rounds._\n"
    header = ["Round", "Weights remaining (%)", "Convergence iteration mean [min, max]",
              "Test acc. at convergence (%) mean [min, max]", "Converged / trials"]
    parts = []
    for (variant, pruning), sub in summary.groupby(["variant", "pruning"], sort=True):
        rows = [[str(int(r.round)), fmt_pct(r.weights_remaining_pct),
                 _range(r.convergence_iteration_mean, r.convergence_iteration_min, r.convergence_iteration_max),
                 _range(r.test_accuracy_at_convergence_mean, r.test_accuracy_at_convergence_min,
                        r.test_accuracy_at_convergence_max, 100.0, 2),
                 f"{int(r.converged)} / {int(r.trials)}"]
                for r in sub.sort_values("round").itertuples(index=False)]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
        table = [line(header), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"] + [line(r) for r in rows]
        parts.append(f"### Variant: {variant} ({pruning} pruning), {CONVERGENCE}\n\n" + "\n".join(table) + "\n")
    return "\n".join(parts)


def section(summary, fmt_pct) -> list:
    """The summary.md lines of the convergence section."""
    lines = ["## Convergence (arXiv v1 footnote 1)", "",
             "The v1 paper's measure for its fully-connected network: the first evaluation at which the "
             "1000-iteration moving average of test loss had changed by less than 0.001 between every two "
             "successive evaluations for 1000 iterations (the end of that stretch; lth_tf.training.convergence). Mean "
             "[min, max] over the trials that converged; a round that never did counts as not converged.", ""]
    if not (summary["converged"] > 0).any():
        lines += ["_No round converged by this rule within its iterations (it needs at least window + span = "
                  "2000 iterations at the paper's settings)._", ""]
    return lines + [format_table(summary, fmt_pct)]


def plot(summary, out_dir, plot_vs_weights) -> list:
    """convergence.png and accuracy_at_convergence.png through the report's `plot_vs_weights`; [] when no round
    converged."""
    import os

    if not (summary["converged"] > 0).any():
        return []
    return [plot_vs_weights(summary, "convergence_iteration", "Convergence iteration (test loss, footnote 1)",
                            os.path.join(out_dir, "convergence.png"),
                            title=f"Convergence iteration ({CONVERGENCE})"),
            plot_vs_weights(summary, "test_accuracy_at_convergence", "Test accuracy at convergence (%)",
                            os.path.join(out_dir, "accuracy_at_convergence.png"), scale=100.0,
                            title=f"Test accuracy at convergence ({CONVERGENCE})")]
