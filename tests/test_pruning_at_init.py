"""Pruning at initialization from the command line: rows, stored masks and the ablations, end to end."""
import csv
import os

import re

import numpy as np
import pytest

from lth_tf.experiment.config import Config, ConfigError
from lth_tf.pruning import masks as pruning

from test_main import TINY, error_line, lth


def load(out, variant, round_, what):
    with np.load(os.path.join(out, "trial_0", variant, f"round_{round_}", f"{what}.npz")) as z:
        return {k: z[k] for k in z.files}


def counts(masks):
    return {name: int(m.sum()) for name, m in masks.items()}


def test_snip_with_its_three_ablations_end_to_end(tmp_path):
    out = str(tmp_path / "snip")
    result = lth(*TINY, "--pruning=snip", "--ablation=none,shuffle,reinit,invert", "--pruning_scope=global",
                 f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["variant"], r["round"]) for r in rows) == [
        ("invert", "1"), ("lottery", "0"), ("lottery", "1"), ("reinit", "1"), ("shuffle", "1")]
    assert {r["pruning"] for r in rows} == {"snip"}
    ticket = load(out, "lottery", 1, "masks")
    initial = dict(np.load(os.path.join(out, "trial_0", "initial_weights.npz")))
    total = sum(m.size for m in ticket.values())
    # Global: IMP's exact count per pool of layers sharing a rate (fc1 and fc2 at 0.2, output at 0.1).
    assert counts(ticket)["fc1"] + counts(ticket)["fc2"] == round((ticket["fc1"].size + ticket["fc2"].size) * 0.8)
    assert counts(ticket)["output"] == round(ticket["output"].size * 0.9)
    # reinit: the mask kept, the weights drawn afresh.
    assert all(np.array_equal(m, ticket[n]) for n, m in load(out, "reinit", 1, "masks").items())
    start = load(out, "reinit", 1, "start_weights")
    assert not np.allclose(start["fc1/kernel"][ticket["fc1"]], initial["fc1/kernel"][ticket["fc1"]])
    # shuffle: the same count per layer, other positions, the initial values where the mask now is.
    shuffled = load(out, "shuffle", 1, "masks")
    assert counts(shuffled) == counts(ticket) and not np.array_equal(shuffled["fc1"], ticket["fc1"])
    np.testing.assert_array_equal(load(out, "shuffle", 1, "start_weights")["fc1/kernel"],
                                  initial["fc1/kernel"] * shuffled["fc1"])
    # invert: the same total, other weights kept.
    inverted = load(out, "invert", 1, "masks")
    assert sum(counts(inverted).values()) == sum(counts(ticket).values())
    assert (inverted["fc1"] & ticket["fc1"]).sum() < ticket["fc1"].sum()
    assert 0 < sum(counts(ticket).values()) < total

    again = lth(*TINY, "--pruning=snip", "--ablation=none,shuffle,reinit,invert", "--pruning_scope=global",
                f"--output_dir={out}")
    assert again.returncode == 0 and again.stdout.count("already finished") == 5


def test_at_init_with_late_rewinding_scores_w_k_and_trains_from_k_to_t(tmp_path):
    # --rewind_iteration=10 of 30: the method scores W_k (round 0's iteration-10 weights) and its rounds train the
    # 20 steps from 10 to 30 from W_k under its mask, the lottery rounds' late-rewinding path; so do its ablations.
    out = str(tmp_path / "late")
    result = lth(*TINY, "--rounds=2", "--pruning=magnitude_init", "--rewind_iteration=10", "--ablation=shuffle",
                 f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.csv")) as f:
        rows = {(r["variant"], int(r["round"])): r for r in csv.DictReader(f)}
    assert sorted(rows) == [("lottery", 0), ("lottery", 1), ("lottery", 2), ("shuffle", 1), ("shuffle", 2)]
    assert int(rows[("lottery", 0)]["iterations"]) == 30
    w_k = dict(np.load(os.path.join(out, "trial_0", "rewind_weights.npz")))
    initial = dict(np.load(os.path.join(out, "trial_0", "initial_weights.npz")))
    assert not np.allclose(w_k["fc1/kernel"], initial["fc1/kernel"])
    sizes = {n: m.size for n, m in load(out, "lottery", 1, "masks").items()}
    for r in (1, 2):
        assert int(rows[("lottery", r)]["iterations"]) == 20 and int(rows[("shuffle", r)]["iterations"]) == 20
        masks, start = load(out, "lottery", r, "masks"), load(out, "lottery", r, "start_weights")
        expect = pruning.level_counts(sizes, {"fc1": 0.2, "fc2": 0.2, "output": 0.1}, r)
        assert counts(masks) == expect
        for name, mask in masks.items():
            w = np.abs(w_k[f"{name}/kernel"])
            assert w[mask].min() >= w[~mask].max()  # the largest |W_k| kept, not the largest |W_0|
            np.testing.assert_array_equal(start[f"{name}/kernel"], w_k[f"{name}/kernel"] * mask)
        assert counts(load(out, "shuffle", r, "masks")) == expect
        np.testing.assert_array_equal(load(out, "shuffle", r, "start_weights")["fc2/kernel"],
                                      w_k["fc2/kernel"] * load(out, "shuffle", r, "masks")["fc2"])


def test_imp_inverted_keeps_the_ticket_counts_among_the_smallest(tmp_path):
    out = str(tmp_path / "imp")
    result = lth(*TINY, "--ablation=invert", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    ticket, inverted = load(out, "lottery", 1, "masks"), load(out, "invert", 1, "masks")
    trained = load(out, "lottery", 0, "weights")
    assert counts(inverted) == counts(ticket)
    for name in ticket:
        w = np.abs(trained[f"{name}/kernel"])
        assert w[inverted[name]].max() <= w[~inverted[name]].min()  # the largest are pruned instead


def test_bad_pruning_at_init_settings_one_line(tmp_path):
    assert "unknown ablation 'flip'" in error_line(lth("--ablation=flip", f"--output_dir={tmp_path}/x", timeout=60))
    for fields, message in (({"ablation": ("flip",)}, "unknown ablation 'flip'; choose from: none, shuffle"),
                            ({"pruning": "synflow", "synflow_iterations": 0}, "--synflow_iterations must be positive"),
                            ({"pruning": "snip", "score_examples_per_class": -1},
                             "--score_examples_per_class must be positive")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Config(**fields).resolve()


def test_at_init_settings_enter_the_hash_only_when_set():
    assert "synflow_iterations" not in Config().resolve().identity()
    assert Config().resolve().identity_hash() == Config(ablation=("shuffle",)).resolve().identity_hash()
    synflow = Config(pruning="synflow").resolve()
    assert synflow.synflow_iterations == 100 and synflow.score_examples_per_class is None
    assert Config(pruning="snip").resolve().score_examples_per_class == 10
    assert Config(ablation=("none", "reinit")).resolve().variants == ("lottery", "reinit")
