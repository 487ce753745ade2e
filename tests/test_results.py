"""lth_tf.analysis.results: a results directory as one table (trials merged, unfinished and corrupt rounds
skipped, results.csv as fallback), default rounds and surviving initial weights."""
import os

import numpy as np
import pandas as pd
import pytest

from lth_tf.analysis.results import ReportError, default_rounds, load_results, surviving_initial_weights

from test_report import COLUMNS, _row, results  # noqa: F401  (results: a fixture)


def test_load_results_merges_trials_and_skips_unfinished_and_corrupt(results, capsys):
    df = load_results(results)
    assert len(df) == 2 * 2 * 3
    assert sorted(df["trial"].unique()) == [0, 1]
    assert sorted(df["variant"].unique()) == ["lottery", "reinit"]
    assert sorted(df["round"].unique()) == [0, 1, 2]
    assert set(df["pruning"]) == {"iterative"}
    row = df[(df.trial == 1) & (df.variant == "reinit") & (df["round"] == 2)].iloc[0]
    assert row.early_stop_iteration == 1800 and row.test_accuracy_at_early_stop == pytest.approx(0.88)
    assert row.round_dir == os.path.join(results, "trial_1", "reinit", "round_2")
    err = capsys.readouterr().err
    assert "warning" in err and os.path.join("trial_0", "reinit", "round_3", "result.json") in err
    assert len(err.strip().splitlines()) == 1


def test_load_results_falls_back_to_csv_and_handles_empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_results(str(empty)).empty
    pd.DataFrame([_row(0, "lottery", 0), _row(0, "lottery", 1)], columns=COLUMNS).to_csv(
        empty / "results.csv", index=False)
    df = load_results(str(empty))
    assert list(df["round"]) == [0, 1]
    with pytest.raises(ReportError):
        load_results(str(tmp_path / "nope"))


def test_default_rounds_and_surviving_weights(results):
    df = load_results(results)
    assert default_rounds(df) == [0, 1, 2]
    vals = surviving_initial_weights(os.path.join(results, "trial_1", "lottery", "round_1"))
    assert list(vals) == ["fc1", "output"]
    np.testing.assert_array_equal(vals["fc1"], np.arange(1, 7) + 100)  # 6 of 12 survive, initial values
    np.testing.assert_array_equal(vals["output"], -np.arange(1, 4))
