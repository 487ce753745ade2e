"""convergence_iteration and test_accuracy_at_convergence in result.json and results.csv: computed from each
round's own curve (stacked trials too), and an older directory without the columns still resumes.
(tests/test_experiment.py checks that the paper's rule leaves its 40-iteration rounds not converged.)"""
import csv
import functools
import json
import os

import pytest
from test_experiment import run as experiment_run

from lth_tf.data import loading
from lth_tf.experiment import experiment
from lth_tf.experiment import store as store_lib
from lth_tf.training import convergence

OLD_COLUMNS = ["trial", "variant", "round", "pruning", "weights_remaining", "early_stop_iteration",
               "test_accuracy_at_early_stop", "val_loss_at_early_stop", "test_accuracy", "test_loss",
               "iterations", "train_seconds"]
NEW = ["convergence_iteration", "test_accuracy_at_convergence"]


@pytest.fixture(scope="module")
def mnist1d():
    return loading.load("mnist1d")


@pytest.fixture
def short_rule(monkeypatch):
    """Footnote 1's rule on a scale a 60-iteration round can meet: a 20-iteration window and span and a loose
    tolerance, so a round evaluated at 20, 40, 60 converges at 40 (the average exists from 20, one change)."""
    rule = functools.partial(convergence.at_convergence, window=20, span=20, tolerance=10.0)
    monkeypatch.setattr(experiment.convergence, "at_convergence", rule)
    return rule


def run(path, dataset, **overrides):
    """test_experiment's tiny run, one 60-iteration round; returns the store and the (trial, variant, round)s."""
    store, events = experiment_run(path, dataset, **{"rounds": 1, "iterations": 60, **overrides})
    return store, [(e.trial, e.variant, e.round) for e in events if e.kind == "round"]


def curve(store, trial, variant, round_):
    with open(os.path.join(store.round_dir(trial, variant, round_), "curve.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def table(store):
    with open(os.path.join(store.root, "results.csv")) as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_each_stacked_trial_stores_the_rule_applied_to_its_own_curve(tmp_path, mnist1d, short_rule):
    store, trained = run(tmp_path, mnist1d, trials=2, parallel_trials=2)
    assert sorted(trained) == [(0, "lottery", 0), (0, "lottery", 1), (1, "lottery", 0), (1, "lottery", 1)]
    accuracies = set()
    for row in store.results():
        points = curve(store, row["trial"], "lottery", row["round"])
        at_40 = next(p for p in points if p["iteration"] == 40)
        assert row["convergence_iteration"] == 40
        assert row["test_accuracy_at_convergence"] == pytest.approx(at_40["test_accuracy"], abs=1e-9)
        accuracies.add(round(row["test_accuracy_at_convergence"], 9))
    assert len(accuracies) > 1  # not one network's number copied to every trial
    _, cells = table(store)
    assert [c["convergence_iteration"] for c in cells] == ["40"] * 4


def test_an_older_directory_without_the_columns_resumes_and_gets_them_for_new_rounds(tmp_path, mnist1d,
                                                                                     short_rule, monkeypatch):
    store, _ = run(tmp_path, mnist1d, rounds=1)
    # Make it a directory of the lth_tf before these columns: result.json rows and results.csv without them,
    # results.csv's hash recorded as lth_tf records it.
    for r in (0, 1):
        path = os.path.join(store.round_dir(0, "lottery", r), "result.json")
        row = json.load(open(path))
        for name in NEW:
            del row[name]
        with open(path, "w") as f:
            json.dump(row, f, sort_keys=True)
    with monkeypatch.context() as m:
        m.setattr(store_lib, "COLUMNS", OLD_COLUMNS)
        store.write_results_csv()
    header, _ = table(store)
    assert not set(NEW) & set(header)

    store, trained = run(tmp_path, mnist1d, rounds=2)
    assert trained == [(0, "lottery", 2)]  # rounds 0 and 1 are kept, not retrained
    header, cells = table(store)
    assert header[:len(OLD_COLUMNS) + 2] == OLD_COLUMNS + NEW
    assert [c["convergence_iteration"] for c in cells] == ["", "", "40"]  # older rows: empty, not invented
