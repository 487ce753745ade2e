"""Report on a results directory written by ``lth_tf.experiment.store``: figures and a Markdown summary.

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
                  of test loss), the v1 paper's measure for lenet-300-100 (lth_tf.analysis.report_convergence)
  curves.png      test accuracy vs training iteration at chosen rounds (Figure 2)
  histograms.png  initial values of the surviving weights, per layer, at chosen rounds (Figure 8)
  summary.md      settings and one table per variant
  instability_*   when RESULTS_DIR holds an instability sweep's tables (lth_tf.instability): Figures 2, 3 and 5
                  of Frankle et al. (ICML 2020) and instability.md, drawn by lth_tf.analysis.instability_report

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
import os
import sys

from lth_tf.analysis import report_convergence
from lth_tf.experiment.files import StoreError, atomic_write
from lth_tf.analysis.figures import plot_ablations, plot_curves, plot_histograms, plot_methods, plot_vs_weights
from lth_tf.analysis.results import (ReportError, _curve_variant, _warn, default_rounds, load_config, load_curve,
                                     load_many, load_results, surviving_initial_weights)
from lth_tf.analysis.tables import (AT_INIT, _fmt_pct_weights, _format_settings, _method_order, format_at_init,
                                    format_summary, summarize)

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


def write_report(results_dir, out_dir=None, rounds=None):
    """Writes the figures and ``summary.md`` to ``out_dir`` (default ``results_dir/report``, the first directory's
    when ``results_dir`` is a list of directories, whose rows are merged); returns the written paths.

    ``rounds``: rounds for ``curves.png`` and ``histograms.png`` (default: 0, a middle one and the last).
    Raises ``ReportError`` if ``results_dir`` is missing or holds no finished rounds.
    """
    return _write_report(results_dir, out_dir, rounds)[0]


def _write_report(results_dir, out_dir, rounds, instability_round=None):
    from lth_tf.analysis import instability_report

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
    atomic_write(md, text.encode())
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
    except (StoreError, OSError) as e:  # a full disk (files.DiskFullError) or an unwritable --out: one line
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(f"wrote {p}")
    if summary is not None:
        print()
        print(format_summary(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
