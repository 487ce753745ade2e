"""Properties of lth_tf.xor (the paper's XOR appendix), on small trial counts."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf import xor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# A single-network reference: plain per-network matrices, one network at a time.
# ----------------------------------------------------------------------------
def _reference_train(w1, b1, w2, b2, steps, lr, keep=None):
    """Full-batch gradient descent on ONE network (w1 [2, H], b1 [H], w2 [H], b2 scalar)."""
    w1, b1, w2, b2 = w1.copy(), b1.copy(), w2.copy(), float(b2)
    x, y = xor.XOR_INPUTS, xor.XOR_LABELS
    keep = np.ones(b1.shape) if keep is None else keep.astype(float)
    for _ in range(steps):
        z = x @ w1 + b1  # [4, H]
        h = np.maximum(z, 0.0)
        out = h @ w2 + b2  # [4]
        p = 1.0 / (1.0 + np.exp(-out))
        d = (p - y) / len(y)
        g_w2 = h.T @ d
        g_b2 = d.sum()
        dz = np.outer(d, w2) * (z > 0)
        g_w1 = x.T @ dz
        g_b1 = dz.sum(axis=0)
        w1 -= lr * g_w1 * keep
        b1 -= lr * g_b1 * keep
        w2 -= lr * g_w2 * keep
        b2 -= lr * g_b2
    return w1, b1, w2, b2


@pytest.mark.parametrize("hidden", [10, 3])
def test_vectorised_training_matches_single_network_loop(hidden):
    trials, steps, lr = 5, 400, 1.0
    init = xor.init_params(np.random.default_rng(7), trials, hidden)
    trained = xor.train(init, iterations=steps, learning_rate=lr)
    again = xor.init_params(np.random.default_rng(7), trials, hidden)  # same seed -> same start
    for t in range(trials):
        w1, b1, w2, b2 = _reference_train(again["w1"][t], again["b1"][t], again["w2"][t], again["b2"][t],
                                          steps, lr)
        np.testing.assert_allclose(trained["w1"][t], w1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["b1"][t], b1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["w2"][t], w2, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["b2"][t], b2, atol=1e-6, rtol=0)
    # Training actually moved the weights, and did not modify its input.
    assert np.abs(trained["w2"] - init["w2"]).max() > 1e-2
    np.testing.assert_array_equal(init["w1"], again["w1"])


def test_masked_training_matches_reference_and_more_than_one_chunk(monkeypatch):
    monkeypatch.setattr(xor, "_CHUNK", 3)  # 7 trials -> chunks of 3, 3, 1
    trials, hidden, steps = 7, 6, 150
    init = xor.init_params(np.random.default_rng(3), trials, hidden)
    mask = np.random.default_rng(4).random((trials, hidden)) < 0.6
    trained = xor.train(init, mask, iterations=steps, learning_rate=0.5)
    for t in range(trials):
        keep = mask[t]
        w1, b1, w2, b2 = _reference_train(init["w1"][t] * keep, init["b1"][t] * keep, init["w2"][t] * keep,
                                          init["b2"][t], steps, 0.5, keep)
        np.testing.assert_allclose(trained["w1"][t], w1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["w2"][t], w2, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["b2"][t], b2, atol=1e-6, rtol=0)


def test_batched_jobs_equal_separate_masked_training():
    """run_experiment's batching (pruned units dropped, equal widths merged) changes nothing."""
    rng = np.random.default_rng(8)
    init = xor.init_params(rng, 5, 10)
    trained = xor.train(init, iterations=50)
    jobs = []
    for keep, crit in ((4, "input"), (2, "product"), (4, "output"), (8, "input")):
        m = xor.prune_mask(trained, np.ones((5, 10), bool), keep, crit)
        jobs.append((xor.reset(init, m), m))
    ragged = rng.random((5, 10)) < 0.5  # different unit counts per trial: trained masked, not compacted
    jobs.append((init, ragged))
    jobs.append(xor.pad_hidden(xor.init_params(rng, 5, 6), 10))
    together = xor._train_together(jobs, 200, 1.0)
    for (params, mask), got in zip(jobs, together):
        want = xor.train(params, mask, iterations=200, learning_rate=1.0)
        for k in ("w1", "b1", "w2", "b2"):
            np.testing.assert_allclose(got[k], want[k], atol=1e-12, rtol=0)
        assert not got["w2"][~mask].any()


def test_truncated_normal_initialisation():
    p = xor.init_params(np.random.default_rng(0), 2000, 10)
    assert p["w1"].shape == (2000, 2, 10) and p["w2"].shape == (2000, 10)
    assert p["b1"].shape == (2000, 10) and p["b2"].shape == (2000,)
    for w in (p["w1"], p["w2"]):
        assert np.abs(w).max() <= 0.2
        assert 0.07 < w.std() < 0.1  # truncation at 2 std shrinks the std to ~0.088
    assert not p["b1"].any() and not p["b2"].any()


def test_evaluate_boundary_and_zero_loss():
    # A hand-made XOR solver: h1 = relu(x0 - x1), h2 = relu(x1 - x0), logit = s*(h1 + h2) - s/2.
    def solver(s):
        return {"w1": np.array([[[1.0, -1.0], [-1.0, 1.0]]]), "b1": np.zeros((1, 2)),
                "w2": np.array([[s, s]]), "b2": np.array([-s / 2])}
    strong, weak = xor.evaluate(solver(40.0)), xor.evaluate(solver(1.0))
    assert strong["boundary"][0] and strong["zero_loss"][0] and strong["success"][0]
    assert weak["boundary"][0] and not weak["zero_loss"][0] and not weak["success"][0]
    wrong = solver(40.0)
    wrong["b2"] = np.array([20.0])  # everything classified 1
    out = xor.evaluate(wrong)
    assert not out["boundary"][0] and not out["success"][0]


# ----------------------------------------------------------------------------
# Pruning criteria
# ----------------------------------------------------------------------------
# Six units whose rankings differ by criterion:
#   input norms      0.1  0.6  0.3  0.5  0.2  0.4
#   |output weight|  0.9  0.05 0.8  0.1  0.7  0.2
#   product          .09  .03  .24  .05  .14  .08
_NORMS = np.array([0.1, 0.6, 0.3, 0.5, 0.2, 0.4])
_OUT = np.array([0.9, -0.05, -0.8, 0.1, 0.7, -0.2])
_ANGLES = np.array([0.3, 2.0, 3.5, 4.4, 5.9, 1.1])


def _known_params(perm=None):
    norms, out, ang = _NORMS, _OUT, _ANGLES
    if perm is not None:
        norms, out, ang = norms[perm], out[perm], ang[perm]
    w1 = np.stack([norms * np.cos(ang), norms * np.sin(ang)])[None]
    return {"w1": w1, "b1": np.full((1, 6), 5.0), "w2": out[None], "b2": np.zeros(1)}


EXPECTED = {
    ("input", 2): {1, 3}, ("input", 4): {1, 3, 5, 2},
    ("output", 2): {0, 2}, ("output", 4): {0, 2, 4, 5},
    ("product", 2): {2, 4}, ("product", 4): {2, 4, 0, 5},
}


@pytest.mark.parametrize("criterion,keep", sorted(EXPECTED))
def test_each_criterion_removes_exactly_the_intended_units(criterion, keep):
    params = _known_params()
    mask = xor.prune_mask(params, np.ones((1, 6), bool), keep, criterion)
    assert set(np.flatnonzero(mask[0])) == EXPECTED[(criterion, keep)]
    # Per-trial independence: a second trial with permuted units keeps the permuted units.
    perm = np.array([4, 0, 5, 1, 3, 2])
    both = xor.concat_params([params, _known_params(perm)])
    mask2 = xor.prune_mask(both, np.ones((2, 6), bool), keep, criterion)
    np.testing.assert_array_equal(mask2[0], mask[0])
    assert {int(perm[i]) for i in np.flatnonzero(mask2[1])} == EXPECTED[(criterion, keep)]


def test_unit_scores_and_hidden_bias_excluded():
    params = _known_params()
    np.testing.assert_allclose(xor.unit_scores(params, "input")[0], _NORMS)
    np.testing.assert_allclose(xor.unit_scores(params, "output")[0], np.abs(_OUT))
    np.testing.assert_allclose(xor.unit_scores(params, "product")[0], _NORMS * np.abs(_OUT))
    with pytest.raises(ValueError):
        xor.unit_scores(params, "random")


def test_pruning_only_considers_surviving_units():
    mask = np.ones((1, 6), bool)
    mask[0, 1] = False  # the largest input norm is already pruned
    new = xor.prune_mask(_known_params(), mask, 2, "input")
    assert set(np.flatnonzero(new[0])) == {3, 5}
    with pytest.raises(ValueError):
        xor.prune_mask(_known_params(), mask, 6, "input")


# ----------------------------------------------------------------------------
# Reset, masks, retraining
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("criterion", xor.CRITERIA)
def test_reset_restores_survivors_and_pruned_units_stay_zero(criterion):
    trials, keep = 16, 4
    init = xor.init_params(np.random.default_rng(11), trials, 10)
    trained = xor.train(init, iterations=300)
    mask = xor.prune_mask(trained, np.ones((trials, 10), bool), keep, criterion)
    assert (mask.sum(axis=1) == keep).all()
    ticket = xor.reset(init, mask)
    m3 = np.broadcast_to(mask[:, None, :], ticket["w1"].shape)
    np.testing.assert_array_equal(ticket["w1"][m3], init["w1"][m3])
    np.testing.assert_array_equal(ticket["w2"][mask], init["w2"][mask])
    np.testing.assert_array_equal(ticket["b1"][mask], init["b1"][mask])
    np.testing.assert_array_equal(ticket["b2"], init["b2"])
    assert not ticket["w1"][~m3].any() and not ticket["w2"][~mask].any() and not ticket["b1"][~mask].any()

    mask2, retrained = xor.one_shot_prune(init, trained, keep, criterion, iterations=300)
    np.testing.assert_array_equal(mask2, mask)
    assert np.all(retrained["w1"][~m3] == 0.0)
    assert np.all(retrained["w2"][~mask] == 0.0)
    assert np.all(retrained["b1"][~mask] == 0.0)
    assert np.abs(retrained["w2"][mask] - init["w2"][mask]).max() > 1e-2  # survivors did train


def test_mask_holds_even_when_pruned_units_start_nonzero():
    init = xor.init_params(np.random.default_rng(5), 4, 6)
    init["b1"][:] = 0.5  # a live bias would make the units fire and receive gradients
    mask = np.zeros((4, 6), bool)
    mask[:, :3] = True
    out = xor.train(init, mask, iterations=200)
    assert not out["w1"][:, :, 3:].any() and not out["w2"][:, 3:].any() and not out["b1"][:, 3:].any()


@pytest.mark.parametrize("criterion", xor.CRITERIA)
def test_iterative_pruning_goes_10_8_6_4_with_nested_masks(criterion):
    trials = 8
    init = xor.init_params(np.random.default_rng(2), trials, 10)
    trained = xor.train(init, iterations=100)
    rounds = xor.iterative_prune(init, trained, 4, criterion, iterations=100)
    assert [units for units, _, _ in rounds] == [8, 6, 4]
    previous = np.ones((trials, 10), bool)
    for units, mask, params in rounds:
        assert (mask.sum(axis=1) == units).all()
        assert not (mask & ~previous).any()  # never revives a pruned unit
        assert not params["w2"][~mask].any()
        previous = mask
    # Each round prunes by the scores of the previous round's retrained network.
    expected = xor.prune_mask(rounds[1][2], rounds[1][1], 4, criterion)
    np.testing.assert_array_equal(rounds[2][1], expected)
    assert [u for u, _, _ in xor.iterative_prune(init, trained, 2, criterion, iterations=10)] == [8, 6, 4, 2]


# ----------------------------------------------------------------------------
# Real properties of the experiment
# ----------------------------------------------------------------------------
def test_ten_unit_networks_succeed_more_often_than_two_unit_networks():
    rng = np.random.default_rng(0)
    trials = 64
    ten = xor.train(xor.init_params(rng, trials, 10))
    two = xor.train(xor.init_params(rng, trials, 2))
    rate10 = xor.evaluate(ten)["success"].mean()
    rate2 = xor.evaluate(two)["success"].mean()
    assert rate10 > rate2 + 0.3, (rate10, rate2)
    assert rate10 > 0.8


def test_run_experiment_batches_agree_with_the_plain_functions():
    trials, iters, seed = 6, 300, 9
    results = xor.run_experiment(trials=trials, iterations=iters, seed=seed, loss_threshold=0.3)
    expected_keys = {("scratch", h) for h in xor.HIDDEN_SIZES} | {
        (s, t, c) for s in xor.STRATEGIES for t in xor.PRUNE_TARGETS for c in xor.CRITERIA}
    assert set(results) == expected_keys
    rng = np.random.default_rng(seed)
    init = xor.init_params(rng, trials, 10)  # the 10-unit trials are drawn first
    trained = xor.train(init, iterations=iters)

    def rates(p):
        out = xor.evaluate(p, loss_threshold=0.3)
        return {k: float(out[k].mean()) for k in ("boundary", "zero_loss", "success")}

    assert results[("scratch", 10)] == rates(trained)
    _, p = xor.one_shot_prune(init, trained, 2, "product", iterations=iters)
    assert results[("one-shot", 2, "product")] == rates(p)
    rounds = xor.iterative_prune(init, trained, 2, "input", iterations=iters)
    assert results[("iterative", 4, "input")] == rates(rounds[2][2])
    assert results[("iterative", 2, "input")] == rates(rounds[3][2])

    table = xor.format_table(results, trials, iters)
    for line in ("10 hidden units, trained from scratch", "2 hidden units, trained from scratch",
                 "10 -> 4 units, one-shot, input magnitude", "10 -> 2 units, iterative, magnitude product"):
        assert line in table
    assert "Decision boundary" in table and "%" in table


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def test_import_defines_no_global_flags():
    from absl import flags

    before = set(flags.FLAGS)
    importlib.reload(xor)
    assert set(flags.FLAGS) == before
    assert "loss_threshold" not in flags.FLAGS


def test_main_small_run(capsys):
    assert xor.main(["xor", "--trials=3", "--iterations=20", "--seed=1", "--learning_rate=0.5"]) == 0
    assert xor.main(["xor", "--trials=2", "--iterations=5"]) == 0  # flags are private: callable twice
    out = capsys.readouterr().out
    assert "percent of 3 trials" in out and "10 -> 2 units, one-shot, output magnitude" in out
    assert "Elapsed:" in out


@pytest.mark.parametrize("argv", [["--trials=0"], ["--trials=abc"], ["--iterations=-5"], ["--seed=-1"],
                                  ["--learning_rate=0"], ["--learning_rate=nan"], ["--loss_threshold=-1"],
                                  ["--no_such_flag"], ["stray"]])
def test_bad_flags_give_one_line_error(argv, capsys):
    assert xor.main(["xor"] + argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lth_tf.xor: error:")


def test_cli_bad_flag_exits_nonzero_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "lth_tf.xor", "--trials=-3"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("lth_tf.xor: error: flag --trials=-3")
    assert proc.stdout == ""
