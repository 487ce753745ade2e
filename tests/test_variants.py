"""The paper's variants and options, each checked by its defining property on tiny settings.

    python3 -m pytest -q tests/test_variants.py

lenet300_100 runs on MNIST-1D (generated locally); convolutional runs use a small random image Dataset built here.
The variants run once through the command line (module fixture); the options run in-process via experiment.run.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.data.pipelines import Dataset
from lth_tf.experiment import experiment
from lth_tf.experiment import store as store_lib
from lth_tf.experiment.config import Config
from lth_tf.experiment.files import load_npz
from lth_tf.pruning import masks as pruning

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(model="lenet300_100", dataset="mnist1d", iterations=20, eval_every=10)


def fake_images(shape=(8, 8, 1), n_train=120, n_eval=40, seed=0):
    """A random image classification Dataset (labels depend on the mean pixel, so there is something to learn)."""
    rng = np.random.default_rng(seed)

    def split(n):
        x = rng.random((n, *shape), dtype=np.float32)
        y = (x.mean(axis=(1, 2, 3)) * 20).astype(np.int32) % 10
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(n_eval), split(n_eval)
    return Dataset("fake", shape, 10, "random arrays", xt, yt, xv, yv, xs, ys)


def run(tmp_path, images=None, name="run", **fields):
    """Runs an experiment in-process on `images` (a Dataset; None: load the configured one); returns its Store."""
    cfg = Config(output_dir=str(tmp_path / name), **{**TINY, **fields}).resolve()
    store = store_lib.Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, dataset=images)
    return store


def npz(path):
    return load_npz(str(path))


# ---- lottery / reinit / rearrange, from the command line ----------------------------------------------------

@pytest.fixture(scope="module")
def variants_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "lth_tf.main", "--model=lenet300_100", "--dataset=mnist1d", "--rounds=2",
         "--iterations=20", "--eval_every=10", "--variants=lottery,reinit,rearrange", "--quiet",
         f"--output_dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def round_files(root, variant, r, what, trial=0):
    return npz(root / f"trial_{trial}" / variant / f"round_{r}" / f"{what}.npz")


@pytest.mark.parametrize("r", [1, 2])
def test_reinit_same_masks_other_initial_values(variants_dir, r):
    lottery_masks = round_files(variants_dir, "lottery", r, "masks")
    reinit_masks = round_files(variants_dir, "reinit", r, "masks")
    lottery_start = round_files(variants_dir, "lottery", r, "start_weights")
    reinit_start = round_files(variants_dir, "reinit", r, "start_weights")
    assert lottery_masks.keys() == reinit_masks.keys() == {"fc1", "fc2", "output"}
    for name, mask in lottery_masks.items():
        np.testing.assert_array_equal(reinit_masks[name], mask)
        kernel_l, kernel_r = lottery_start[f"{name}/kernel"], reinit_start[f"{name}/kernel"]
        # Same zero pattern (the mask), different values on the survivors.
        np.testing.assert_array_equal(kernel_r != 0, mask)
        np.testing.assert_array_equal(kernel_l != 0, mask)
        assert not np.allclose(kernel_l[mask], kernel_r[mask])
        # ...but drawn from the same initialiser: similar spread.
        assert 0.8 < kernel_r[mask].std() / kernel_l[mask].std() < 1.25


@pytest.mark.parametrize("r", [1, 2])
def test_rearrange_keeps_counts_and_values_not_positions(variants_dir, r):
    lottery_masks = round_files(variants_dir, "lottery", r, "masks")
    moved_masks = round_files(variants_dir, "rearrange", r, "masks")
    lottery_start = round_files(variants_dir, "lottery", r, "start_weights")
    moved_start = round_files(variants_dir, "rearrange", r, "start_weights")
    for name, mask in lottery_masks.items():
        moved = moved_masks[name]
        assert moved.sum() == mask.sum()  # same count per layer
        if mask.sum() < mask.size:
            assert not np.array_equal(moved, mask)  # other positions
        np.testing.assert_array_equal(moved_start[f"{name}/kernel"] != 0, moved)
        # The multiset of surviving initial values is the winning ticket's.
        np.testing.assert_array_equal(np.sort(moved_start[f"{name}/kernel"][moved]),
                                      np.sort(lottery_start[f"{name}/kernel"][mask]))


def test_lottery_rewinds_to_initial_values_and_masks_nest(variants_dir):
    initial = npz(variants_dir / "trial_0" / "initial_weights.npz")
    previous = None
    for r in range(3):
        masks = round_files(variants_dir, "lottery", r, "masks")
        start = round_files(variants_dir, "lottery", r, "start_weights")
        for name, mask in masks.items():
            np.testing.assert_array_equal(start[f"{name}/kernel"], initial[f"{name}/kernel"] * mask)
            if previous is not None:
                assert not (mask & ~previous[name]).any()  # a pruned weight never comes back
                # 20% of the survivors per round, 10% for the output layer.
                rate = 0.1 if name == "output" else 0.2
                assert mask.sum() == round(previous[name].sum() * (1 - rate))
        previous = masks


# ---- one-shot pruning, late rewinding, trials and dropout: one command line run ------------------------------------

@pytest.fixture(scope="module")
def options_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("options") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "lth_tf.main", "--model=lenet300_100", "--dataset=mnist1d", "--rounds=2",
         "--iterations=40", "--eval_every=20", "--pruning=oneshot", "--rewind_iteration=5", "--trials=2",
         "--dropout=0.2", "--variants=lottery", "--quiet", f"--output_dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


RATES = {"fc1": 0.2, "fc2": 0.2, "output": 0.1}


def test_oneshot_prunes_each_level_from_round0_weights(options_dir):
    round0 = round_files(options_dir, "lottery", 0, "weights")
    for r in (1, 2):
        masks = round_files(options_dir, "lottery", r, "masks")
        for name, mask in masks.items():
            w = np.abs(round0[f"{name}/kernel"]).ravel()
            keep = int(round(w.size * (1 - RATES[name]) ** r))
            expected = np.zeros(w.size, bool)
            expected[np.argsort(-w, kind="stable")[:keep]] = True
            np.testing.assert_array_equal(mask.ravel(), expected)
    # Not the iterative mask, which round 2 would take from round 1's trained weights.
    round1 = round_files(options_dir, "lottery", 1, "weights")
    nested = pruning.prune({n: round1[f"{n}/kernel"] for n in RATES}, round_files(options_dir, "lottery", 1, "masks"),
                           RATES)
    oneshot2 = round_files(options_dir, "lottery", 2, "masks")
    assert any(not np.array_equal(nested[n], oneshot2[n]) for n in RATES)


@pytest.mark.parametrize("trial", [0, 1])
def test_rewind_iteration_restores_the_weights_of_iteration_k(options_dir, trial):
    directory = options_dir / f"trial_{trial}"
    initial, rewind = npz(directory / "initial_weights.npz"), npz(directory / "rewind_weights.npz")
    assert rewind.keys() == initial.keys()
    # Round 0 starts from the initialisation; the weights after 5 steps differ from it and from the end of round 0.
    np.testing.assert_array_equal(round_files(options_dir, "lottery", 0, "start_weights", trial)["fc1/kernel"],
                                  initial["fc1/kernel"])
    assert not np.allclose(rewind["fc1/kernel"], initial["fc1/kernel"])
    assert not np.allclose(rewind["fc1/kernel"], round_files(options_dir, "lottery", 0, "weights", trial)["fc1/kernel"])
    for r in (1, 2):
        masks = round_files(options_dir, "lottery", r, "masks", trial)
        start = round_files(options_dir, "lottery", r, "start_weights", trial)
        for key, value in rewind.items():
            layer, weight = key.split("/")
            expected = value * masks[layer] if weight == "kernel" and layer in masks else value
            np.testing.assert_array_equal(start[key], expected)


def test_trials_have_different_initial_weights(options_dir):
    initial = [npz(options_dir / f"trial_{t}" / "initial_weights.npz") for t in range(2)]
    assert all(not np.allclose(initial[0][k], initial[1][k]) for k in initial[0] if k.endswith("kernel"))
    assert all((options_dir / f"trial_{t}" / "lottery" / "round_2" / "result.json").exists() for t in range(2))


# ---- which layers are pruned; dropout ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["conv", "fc"])
def test_prune_layers(tmp_path, which):
    # Config needs a known dataset name; the model is built on the fake images' shape. Dropout on a conv model too.
    store = run(tmp_path, images=fake_images(), name=which, model="conv2", dataset="cifar10", rounds=1,
                iterations=10, prune_layers=which, dropout=0.5 if which == "conv" else 0.0)
    rows = store.results()
    row = next(r for r in rows if r["round"] == 1)
    conv = {k: v for k, v in row.items() if k.startswith("remaining_conv")}
    fc = {k: v for k, v in row.items() if k.startswith("remaining_fc") or k == "remaining_output"}
    assert len(conv) == 2 and len(fc) == 3
    pruned, dense = (conv, fc) if which == "conv" else (fc, conv)
    assert all(v == 1.0 for v in dense.values()), dense
    assert all(v < 1.0 for v in pruned.values()), pruned


def test_late_rewound_rounds_train_from_k_to_t_on_round_0s_grid(options_dir):
    # --rewind_iteration=5, 40 iterations per round, eval_every 20: rounds >= 1 train the 35 steps from 5 to 40
    # and evaluate at 20 and 40 (counted from the start of training), as round 0 does.
    rows = {(r["trial"], r["round"]): r for r in store_lib.Store(str(options_dir)).results()}
    for trial in (0, 1):
        assert int(rows[(trial, 0)]["iterations"]) == 40
        for r in (1, 2):
            assert int(rows[(trial, r)]["iterations"]) == 35
            curve = (options_dir / f"trial_{trial}" / "lottery" / f"round_{r}" / "curve.csv").read_text()
            iterations = [int(line.split(",")[0]) for line in curve.splitlines()[1:]]
            assert iterations == [20, 40]
            assert int(rows[(trial, r)]["early_stop_iteration"]) in (20, 40)


def test_rearrange_keeps_a_layer_that_is_not_pruned_where_it_was(tmp_path):
    # --prune_rate_output=0: the output layer is never pruned, so `rearrange` leaves its initial values in place.
    store = run(tmp_path, rounds=1, prune_rate_output=0.0, variants=("lottery", "rearrange"))
    root = tmp_path / "run"
    rearranged = round_files(root, "rearrange", 1, "start_weights")
    initial = npz(root / "trial_0" / "initial_weights.npz")
    masks = round_files(root, "rearrange", 1, "masks")
    assert masks["output"].all()
    np.testing.assert_array_equal(rearranged["output/kernel"], initial["output/kernel"])
    assert not np.array_equal(masks["fc1"], round_files(root, "lottery", 1, "masks")["fc1"])
    assert store.is_done(0, "rearrange", 1)


def test_pruning_scope_and_trainer_from_the_command_line(tmp_path):
    # Global scope pools fc1 and fc2 (rate 0.2) under one threshold: together they keep exactly 80%, each layer
    # a different fraction; the output layer (rate 0.1) is its own pool. Trained through tfmot's wrappers.
    out = tmp_path / "global"
    proc = subprocess.run(
        [sys.executable, "-m", "lth_tf.main", "--model=lenet300_100", "--dataset=mnist1d", "--rounds=1",
         "--iterations=20", "--eval_every=10", "--pruning_scope=global", "--trainer=tfmot", "--quiet",
         f"--output_dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = (out / "config.json").read_text()
    assert '"pruning_scope": "global"' in config and '"trainer": "tfmot"' in config
    masks = round_files(out, "lottery", 1, "masks")
    pooled = masks["fc1"].sum() + masks["fc2"].sum()
    assert pooled == round(0.8 * (masks["fc1"].size + masks["fc2"].size))
    assert masks["fc1"].mean() != pytest.approx(0.8, abs=1e-3)
    assert masks["output"].sum() == round(0.9 * masks["output"].size)
    weights = round_files(out, "lottery", 1, "weights")
    assert all(np.all(weights[f"{n}/kernel"][~m] == 0.0) for n, m in masks.items())
    bad = subprocess.run([sys.executable, "-m", "lth_tf.main", "--trainer=fast", f"--output_dir={tmp_path / 'x'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "--trainer" in bad.stderr


def test_control_rounds_train_the_controls_at_those_rounds_only(tmp_path):
    """--control_rounds=2: the ticket trains every round; reinit only round 2, on round 2's ticket mask. A later run
    without the restriction (rounds and control rounds are not part of the identity) adds round 1 alone."""
    store = run(tmp_path, rounds=2, variants=("lottery", "reinit"), control_rounds=(2,))
    rows = {(r["variant"], int(r["round"])) for r in store.results()}
    assert rows == {("lottery", 0), ("lottery", 1), ("lottery", 2), ("reinit", 2)}
    assert all(np.array_equal(store.load_round(0, "reinit", 2, "masks")[n], m)
               for n, m in store.load_round(0, "lottery", 2, "masks").items())
    store = run(tmp_path, rounds=2, variants=("lottery", "reinit"))
    assert {(r["variant"], int(r["round"])) for r in store.results()} == rows | {("reinit", 1)}


def test_control_rounds_outside_the_rounds_are_refused():
    with pytest.raises(Exception, match=r"--control_rounds must be rounds in \[1, 2\], got 3"):
        Config(**TINY, rounds=2, control_rounds=(3,)).resolve()
