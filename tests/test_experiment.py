"""A whole lottery-ticket experiment on a tiny setting: the paper's properties hold in what is stored, and
finished work is never redone."""
import csv
import os

import numpy as np
import pytest

from lth_tf.data import loading
from lth_tf.experiment import experiment
from lth_tf.experiment.config import Config
from lth_tf.experiment.store import Store


@pytest.fixture(scope="module")
def mnist1d():
    return loading.load("mnist1d")


def run(path, dataset, **overrides):
    settings = dict(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=40, eval_every=20,
                    output_dir=str(path))
    settings.update(overrides)
    cfg = Config(**settings).resolve()
    events = []
    store = Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, on_event=events.append, dataset=dataset)
    return store, events


def trained(events):
    return [(e.variant, e.round) for e in events if e.kind == "round"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist1d):
    path = tmp_path_factory.mktemp("exp")
    store, events = run(path, mnist1d, momentum=0.9)
    return store, events


def test_every_round_is_trained_and_recorded(finished):
    store, events = finished
    assert trained(events) == [("lottery", 0), ("lottery", 1), ("lottery", 2)]
    rows = store.results()
    assert [r["round"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["early_stop_iteration"] in (20, 40)
        assert 0.0 <= row["test_accuracy_at_early_stop"] <= 1.0


def test_rounds_too_short_for_footnote_1_are_stored_as_not_converged(finished):
    store, _ = finished
    for row in store.results():  # 40 iterations: the rule needs a 1000-iteration window and span
        assert row["convergence_iteration"] is None and row["test_accuracy_at_convergence"] is None
    with open(os.path.join(store.root, "results.csv")) as f:
        reader = csv.DictReader(f)
        cells = list(reader)
    columns = reader.fieldnames
    assert columns[columns.index("train_seconds") + 1:][:2] == ["convergence_iteration", "test_accuracy_at_convergence"]
    assert {c["convergence_iteration"] for c in cells} == {""}


def test_exact_remaining_fraction_per_layer_with_the_output_layer_at_half_rate(finished):
    store, _ = finished
    sizes = {"fc1": 40 * 300, "fc2": 300 * 100, "output": 100 * 10}
    keep = dict(sizes)
    for r in range(3):
        masks = store.load_round(0, "lottery", r, "masks")
        for name, size in sizes.items():
            assert masks[name].sum() == keep[name], (r, name)
            keep[name] = int(round(keep[name] * (1 - (0.1 if name == "output" else 0.2))))
        row = store.results()[r]
        assert row["weights_remaining"] == pytest.approx(sum(m.sum() for m in masks.values()) / sum(sizes.values()))
        assert row["remaining_output"] == pytest.approx(0.9 ** r, abs=1e-3)
        assert row["remaining_fc1"] == pytest.approx(0.8 ** r, abs=1e-3)


def test_masks_are_nested_across_rounds(finished):
    store, _ = finished
    previous = store.load_round(0, "lottery", 0, "masks")
    for r in (1, 2):
        masks = store.load_round(0, "lottery", r, "masks")
        for name in masks:
            assert not np.any(masks[name] & ~previous[name]), f"round {r}: a pruned weight of {name} came back"
        previous = masks


def test_pruned_weights_are_exactly_zero_after_training_with_momentum(finished):
    store, _ = finished
    for r in (1, 2):
        masks, weights = store.load_round(0, "lottery", r, "masks"), store.load_round(0, "lottery", r, "weights")
        for name, mask in masks.items():
            assert np.all(weights[f"{name}/kernel"][~mask] == 0.0)
            assert np.any(weights[f"{name}/kernel"][mask] != 0.0)


def test_each_round_starts_from_the_initial_values_of_the_survivors(finished):
    store, _ = finished
    initial = store.load_weights(0, "initial")
    for r in (1, 2):
        masks, start = store.load_round(0, "lottery", r, "masks"), store.load_round(0, "lottery", r, "start_weights")
        for key, value in initial.items():
            layer, weight = key.split("/")
            expected = value * masks[layer] if weight == "kernel" else value  # biases: rewound, never pruned
            np.testing.assert_array_equal(start[key], expected)


def test_the_next_mask_comes_from_the_trained_weights(finished):
    store, _ = finished
    weights, masks = store.load_round(0, "lottery", 1, "weights"), store.load_round(0, "lottery", 2, "masks")
    w = np.abs(weights["fc1/kernel"])
    assert w[masks["fc1"]].min() >= w[store.load_round(0, "lottery", 1, "masks")["fc1"] & ~masks["fc1"]].max()


def test_rerun_trains_nothing_and_more_rounds_continue(tmp_path, mnist1d):
    store, events = run(tmp_path, mnist1d, rounds=1)
    assert trained(events) == [("lottery", 0), ("lottery", 1)]
    rows = store.results()
    _, events = run(tmp_path, mnist1d, rounds=1)
    assert trained(events) == [] and [e.kind for e in events].count("skip") == 2
    _, events = run(tmp_path, mnist1d, rounds=2)
    assert trained(events) == [("lottery", 2)]
    assert store.results()[:2] == rows
    m1, m2 = store.load_round(0, "lottery", 1, "masks"), store.load_round(0, "lottery", 2, "masks")
    assert all(not np.any(m2[k] & ~m1[k]) for k in m1)


def test_an_unfinished_round_is_trained_again(tmp_path, mnist1d):
    store, _ = run(tmp_path, mnist1d, rounds=2)
    reference = store.load_round(0, "lottery", 2, "masks")
    import os
    os.remove(os.path.join(store.round_dir(0, "lottery", 2), "result.json"))  # as if killed before finishing
    _, events = run(tmp_path, mnist1d, rounds=2)
    assert trained(events) == [("lottery", 2)]
    for name, mask in store.load_round(0, "lottery", 2, "masks").items():
        np.testing.assert_array_equal(mask, reference[name])  # same mask: it came from round 1's stored weights


def test_a_crash_right_after_round_0_can_still_resume(tmp_path, mnist1d):
    store, _ = run(tmp_path, mnist1d, rounds=0)
    assert store.load_weights(0, "rewind") is not None  # written before round 0's result.json
    import os
    os.remove(os.path.join(store.trial_dir(0), "rewind_weights.npz"))  # an older directory, or a lost file
    _, events = run(tmp_path, mnist1d, rounds=1)
    assert trained(events) == [("lottery", 1)]
    initial = store.load_weights(0, "initial")
    start, masks = store.load_round(0, "lottery", 1, "start_weights"), store.load_round(0, "lottery", 1, "masks")
    np.testing.assert_array_equal(start["fc1/kernel"], initial["fc1/kernel"] * masks["fc1"])
