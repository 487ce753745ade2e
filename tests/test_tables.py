"""lth_tf.analysis.tables: the summary over trials, against hand-computed numbers."""
import pytest

from lth_tf.analysis.results import load_results
from lth_tf.analysis.tables import summarize

from test_report import results  # noqa: F401  (a fixture)


def test_summarize_known_numbers(results):
    s = summarize(load_results(results))
    assert len(s) == 6
    lot = s[s.variant == "lottery"].set_index("round")
    assert list(lot["weights_remaining_pct"]) == pytest.approx([100.0, 50.0, 25.0])
    assert list(lot["early_stop_iteration_mean"]) == pytest.approx([1100, 700, 500])
    assert list(lot["early_stop_iteration_min"]) == [1000, 600, 400]
    assert list(lot["early_stop_iteration_max"]) == [1200, 800, 600]
    assert list(lot["test_accuracy_at_early_stop_mean"]) == pytest.approx([0.96, 0.97, 0.96])
    assert list(lot["test_accuracy_at_early_stop_min"]) == pytest.approx([0.95, 0.96, 0.95])
    assert list(lot["test_accuracy_at_early_stop_max"]) == pytest.approx([0.97, 0.98, 0.97])
    assert list(lot["test_accuracy_mean"]) == pytest.approx([0.95, 0.96, 0.95])
    assert list(lot["trials"]) == [2, 2, 2]
    rei = s[s.variant == "reinit"].set_index("round")
    assert list(rei["early_stop_iteration_mean"]) == pytest.approx([1050, 1500, 1900])


def test_summarize_counts_partial_trials(results):
    df = load_results(results)
    df = df[~((df.trial == 1) & (df["round"] == 2))]
    s = summarize(df).set_index(["variant", "round"])
    assert s.loc[("lottery", 2), "trials"] == 1
    assert s.loc[("lottery", 2), "early_stop_iteration_mean"] == 600
