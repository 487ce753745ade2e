"""The report's two measures: footnote 1's convergence (figures and a table for fully-connected models, every
figure titled with its measure), computed from curve.csv for rounds stored before the column existed."""
import json
import os

import pandas as pd
import pytest

from lth_tf import report
from test_report import PNG_MAGIC, make_results

GRID = list(range(100, 4001, 100))
# Test loss per round of trial 0: flat (converges at 2000), a blip at 1500 (3500), rising (never).
LOSSES = [[0.5] * len(GRID), [2.0 if t == 1500 else 0.5 for t in GRID], [0.5 + 0.002 * i for i in range(len(GRID))]]
# Trial 1's rows carry the columns (stored by today's lth_tf): they are used as stored.
STORED = [(2200, 0.90), (3000, 0.91), (None, None)]


def convergence_results(root, model="lenet300_100"):
    root = make_results(root)
    for trial in (0, 1):
        for variant in ("lottery", "reinit"):
            for rnd in range(3):
                rdir = os.path.join(root, f"trial_{trial}", variant, f"round_{rnd}")
                pd.DataFrame({"iteration": GRID, "train_loss": 0.1, "val_loss": 0.4, "val_accuracy": 0.5,
                              "test_loss": LOSSES[rnd], "test_accuracy": [t / 10_000 for t in GRID]}).to_csv(
                    os.path.join(rdir, "curve.csv"), index=False)
                if trial == 1:
                    path = os.path.join(rdir, "result.json")
                    row = json.load(open(path))
                    row["convergence_iteration"], row["test_accuracy_at_convergence"] = STORED[rnd]
                    json.dump(row, open(path, "w"))
    config = os.path.join(root, "config.json")
    data = json.load(open(config))
    data["config"]["model"] = model
    json.dump(data, open(config, "w"))
    return root


def test_rows_without_the_column_get_it_from_their_curve_and_stored_ones_are_kept(tmp_path):
    df = report.load_results(convergence_results(tmp_path / "r"))
    lottery = df[df.variant == "lottery"].set_index(["trial", "round"])
    assert list(lottery.loc[0, "convergence_iteration"].fillna(-1)) == [2000, 3500, -1]
    assert list(lottery.loc[0, "test_accuracy_at_convergence"].fillna(-1)) == pytest.approx([0.20, 0.35, -1])
    assert list(lottery.loc[1, "convergence_iteration"].fillna(-1)) == [2200, 3000, -1]


def test_summary_counts_converged_trials_and_averages_over_them(tmp_path):
    s = report.summarize(report.load_results(convergence_results(tmp_path / "r")))
    lot = s[s.variant == "lottery"].set_index("round")
    assert list(lot["convergence_iteration_mean"].iloc[:2]) == [2100, 3250]
    assert list(lot["convergence_iteration_min"].iloc[:2]) == [2000, 3000]
    assert list(lot["test_accuracy_at_convergence_mean"].iloc[:2]) == pytest.approx([0.55, 0.63])
    assert list(lot["converged"]) == [2, 2, 0] and list(lot["trials"]) == [2, 2, 2]
    assert pd.isna(lot.loc[2, "convergence_iteration_mean"])


def test_a_fully_connected_model_gets_both_measures_each_figure_titled_with_its_own(tmp_path, monkeypatch):
    titles = {}
    real = report.plot_vs_weights

    def recording(summary, stat, ylabel, path, scale=1.0, title=None):
        titles[os.path.basename(path)] = title
        return real(summary, stat, ylabel, path, scale=scale, title=title)

    monkeypatch.setattr(report, "plot_vs_weights", recording)
    out = str(tmp_path / "out")
    paths = report.write_report(convergence_results(tmp_path / "r"), out)
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["accuracy.png", "accuracy_at_convergence.png", "convergence.png", "curves.png",
                     "early_stop.png", "histograms.png", "summary.md"]
    for name in ("convergence.png", "accuracy_at_convergence.png"):
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    assert all("early stop: minimum validation loss" in titles[n] for n in ("early_stop.png", "accuracy.png"))
    assert all("convergence: footnote 1, moving average of test loss" in titles[n]
               for n in ("convergence.png", "accuracy_at_convergence.png"))
    md = open(os.path.join(out, "summary.md")).read()
    assert "Measure: early stop: minimum validation loss" in md
    section = md.split("## Convergence (arXiv v1 footnote 1)")[1]
    lottery = section.split("### Variant: lottery")[1].split("### Variant")[0]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lottery.splitlines()
            if ln.startswith("|")]
    assert rows[2:] == [["0", "100.0", "2100 [2000, 2200]", "55.00 [20.00, 90.00]", "2 / 2"],
                        ["1", "50.0", "3250 [3000, 3500]", "63.00 [35.00, 91.00]", "2 / 2"],
                        ["2", "25.0", "not converged", "not converged", "0 / 2"]]


def test_a_convolutional_model_keeps_the_early_stop_report_only(tmp_path):
    out = str(tmp_path / "out")
    paths = report.write_report(convergence_results(tmp_path / "r", model="conv2"), out)
    assert sorted(os.path.basename(p) for p in paths) == ["accuracy.png", "curves.png", "early_stop.png",
                                                          "histograms.png", "summary.md"]
    assert "footnote 1" not in open(os.path.join(out, "summary.md")).read()
