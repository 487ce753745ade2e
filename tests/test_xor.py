"""Properties of lth_tf.xor (the paper's XOR appendix: network.py, tickets.py, tables.py), on small trial counts."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf import xor
from lth_tf.xor import network as xor_network
from lth_tf.xor import tables as xor_tables
from lth_tf.xor import tickets as xor_tickets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# A single-network reference: plain per-network matrices, one network at a time.
# ----------------------------------------------------------------------------
def _reference_train(w1, b1, w2, b2, steps, lr, keep=None, g0=xor.DEFAULT_RELU_GRAD_AT_ZERO):
    """Full-batch gradient descent on ONE network (w1 [2, H], b1 [H], w2 [H], b2 scalar); relu'(0) = g0."""
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
        dz = np.outer(d, w2) * ((z > 0) + g0 * (z == 0))
        g_w1 = x.T @ dz
        g_b1 = dz.sum(axis=0)
        w1 -= lr * g_w1 * keep
        b1 -= lr * g_b1 * keep
        w2 -= lr * g_w2 * keep
        b2 -= lr * g_b2
    return w1, b1, w2, b2


@pytest.mark.parametrize("hidden,g0", [(10, 1.0), (3, 1.0), (10, 0.0), (3, 0.5)])
def test_vectorised_training_matches_single_network_loop(hidden, g0):
    trials, steps, lr = 5, 400, 1.0
    init = xor.init_params(np.random.default_rng(7), trials, hidden)
    trained = xor.train(init, iterations=steps, learning_rate=lr, relu_grad_at_zero=g0)
    again = xor.init_params(np.random.default_rng(7), trials, hidden)  # same seed -> same start
    for t in range(trials):
        w1, b1, w2, b2 = _reference_train(again["w1"][t], again["b1"][t], again["w2"][t], again["b2"][t],
                                          steps, lr, g0=g0)
        np.testing.assert_allclose(trained["w1"][t], w1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["b1"][t], b1, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["w2"][t], w2, atol=1e-6, rtol=0)
        np.testing.assert_allclose(trained["b2"][t], b2, atol=1e-6, rtol=0)
    # Training actually moved the weights, and did not modify its input.
    assert np.abs(trained["w2"] - init["w2"]).max() > 1e-2
    np.testing.assert_array_equal(init["w1"], again["w1"])


def test_masked_training_matches_reference_and_more_than_one_chunk(monkeypatch):
    monkeypatch.setattr(xor_network, "_CHUNK", 3)  # 7 trials -> chunks of 3, 3, 1
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


def test_relu_derivative_at_zero_revives_a_unit_only_through_the_origin_point():
    """A unit with both incoming weights negative sees z < 0 on three points and z = b1 = 0 on (0, 0)."""
    def net():
        return {"w1": np.array([[[-0.1, 0.1], [-0.05, -0.1]]]), "b1": np.zeros((1, 2)),
                "w2": np.array([[-0.2, 0.15]]), "b2": np.zeros(1)}
    # relu'(0) = 0: the unit gets no gradient at all, ever (the second unit does train).
    dead = xor.train(net(), iterations=500, learning_rate=1.0, relu_grad_at_zero=0.0)
    assert dead["w1"][0, 0, 0] == -0.1 and dead["w1"][0, 1, 0] == -0.05
    assert dead["b1"][0, 0] == 0.0 and dead["w2"][0, 0] == -0.2
    assert dead["w2"][0, 1] != 0.15
    # relu'(0) = g0: one step moves only its bias, by the (0, 0) term alone.  At the start every hidden unit
    # outputs 0 on (0, 0), so the logit there is b2 = 0: dLoss/dlogit = (sigmoid(0) - 0) / 4 = 1/8, and
    # b1 <- 0 - lr * g0 * w2 * 1/8.
    for g0 in (1.0, 0.5):
        one = xor.train(net(), iterations=1, learning_rate=1.0, relu_grad_at_zero=g0)
        assert one["b1"][0, 0] == pytest.approx(-1.0 * g0 * (-0.2) / 8, abs=1e-15)
        np.testing.assert_array_equal(one["w1"][0, :, 0], [-0.1, -0.05])  # x = 0 there: no weight gradient
    alive = xor.train(net(), iterations=500, learning_rate=1.0, relu_grad_at_zero=1.0)
    assert alive["b1"][0, 0] > 0.0 and alive["w2"][0, 0] != -0.2  # now active on (0, 0), and training
    with pytest.raises(ValueError):
        xor.train(net(), iterations=1, relu_grad_at_zero=1.5)


def test_batched_jobs_equal_separate_masked_training():
    """run_experiment's batching (pruned units dropped, equal widths merged) changes nothing."""
    rng = np.random.default_rng(8)
    init = xor.init_params(rng, 5, 10)
    trained = xor.train(init, iterations=50, learning_rate=1.0)
    jobs = []
    for keep, crit in ((4, "input"), (2, "product"), (4, "output"), (8, "input")):
        m = xor.prune_mask(trained, np.ones((5, 10), bool), keep, crit)
        jobs.append((xor.reset(init, m), m))
    ragged = rng.random((5, 10)) < 0.5  # different unit counts per trial: trained masked, not compacted
    jobs.append((init, ragged))
    jobs.append(xor.pad_hidden(xor.init_params(rng, 5, 6), 10))
    together = xor_tickets._train_together(jobs, 200, 1.0)
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
# Pruning criteria (the appendix's scores)
# ----------------------------------------------------------------------------
# Six units with hand-computed scores.  Columns of W1 (incoming weights):
#   unit   w_in          mean|w_in|  sum|w_in|  L2 norm  |w_out|  |w_out|*sum
#   0      ( 3.0,  0.0)  1.5         3.0        3.0      0.1      0.3
#   1      ( 2.0, -2.0)  2.0         4.0        2.83     0.2      0.8
#   2      ( 0.5,  0.5)  0.5         1.0        0.71     3.0      3.0
#   3      (-1.0,  0.2)  0.6         1.2        1.02     0.4      0.48
#   4      ( 0.1, -0.05) 0.075       0.15       0.11     4.0      0.6
#   5      ( 2.9,  0.0)  1.45        2.9        2.9      0.25     0.725
# L2 norms rank units 0 > 5 > 1 but mean |w_in| ranks 1 > 0 > 5, and the
# L2-based product ranks 5 above 1 where |w_out| * sum |w_in| ranks 1 above 5.
_W1 = np.array([[3.0, 2.0, 0.5, -1.0, 0.1, 2.9],
                [0.0, -2.0, 0.5, 0.2, -0.05, 0.0]])
_W2 = np.array([0.1, -0.2, 3.0, 0.4, -4.0, -0.25])
HAND_SCORES = {
    "input": [1.5, 2.0, 0.5, 0.6, 0.075, 1.45],
    "output": [0.1, 0.2, 3.0, 0.4, 4.0, 0.25],
    "product": [0.3, 0.8, 3.0, 0.48, 0.6, 0.725],
}


def _known_params(perm=None):
    w1, w2 = (_W1, _W2) if perm is None else (_W1[:, perm], _W2[perm])
    return {"w1": w1[None].copy(), "b1": np.full((1, 6), 5.0), "w2": w2[None].copy(), "b2": np.zeros(1)}


EXPECTED = {
    ("input", 2): {1, 0}, ("input", 4): {1, 0, 5, 3},
    ("output", 2): {4, 2}, ("output", 4): {4, 2, 3, 5},
    ("product", 2): {2, 1}, ("product", 4): {2, 1, 5, 4},
}


def test_unit_scores_equal_the_hand_computation():
    params = _known_params()
    for criterion, want in HAND_SCORES.items():
        np.testing.assert_allclose(xor.unit_scores(params, criterion)[0], want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        xor.unit_scores(params, "random")


def test_scores_are_mean_abs_and_sum_abs_not_l2_norms():
    """The fixture is built so that an L2-norm score would keep different units."""
    l2 = np.sqrt((_W1 ** 2).sum(axis=0))
    assert set(np.argsort(-l2)[:2]) == {0, 5} != EXPECTED[("input", 2)]
    assert set(np.argsort(-(l2 * np.abs(_W2)))[:2]) == {2, 5} != EXPECTED[("product", 2)]
    # Input magnitude is an average (not a sum): with two inputs it is half the sum.
    params = _known_params()
    np.testing.assert_allclose(xor.unit_scores(params, "input")[0] * 2, np.abs(_W1).sum(axis=0))


def test_hidden_bias_takes_no_part_in_the_scores():
    a, b = _known_params(), _known_params()
    b["b1"] = np.array([[-40.0, 7.0, 0.0, 100.0, -3.0, 2.0]])
    for criterion in xor.CRITERIA:
        np.testing.assert_array_equal(xor.unit_scores(a, criterion), xor.unit_scores(b, criterion))


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


def test_pruning_only_considers_surviving_units():
    mask = np.ones((1, 6), bool)
    mask[0, 1] = False  # the largest mean |w_in| is already pruned
    new = xor.prune_mask(_known_params(), mask, 2, "input")
    assert set(np.flatnonzero(new[0])) == {0, 5}
    with pytest.raises(ValueError):
        xor.prune_mask(_known_params(), mask, 6, "input")


# ----------------------------------------------------------------------------
# Reset, masks, retraining
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("criterion", xor.CRITERIA)
def test_reset_restores_survivors_and_pruned_units_stay_zero(criterion):
    trials, keep = 16, 4
    init = xor.init_params(np.random.default_rng(11), trials, 10)
    trained = xor.train(init, iterations=300, learning_rate=1.0)
    mask = xor.prune_mask(trained, np.ones((trials, 10), bool), keep, criterion)
    assert (mask.sum(axis=1) == keep).all()
    ticket = xor.reset(init, mask)
    m3 = np.broadcast_to(mask[:, None, :], ticket["w1"].shape)
    np.testing.assert_array_equal(ticket["w1"][m3], init["w1"][m3])
    np.testing.assert_array_equal(ticket["w2"][mask], init["w2"][mask])
    np.testing.assert_array_equal(ticket["b1"][mask], init["b1"][mask])
    np.testing.assert_array_equal(ticket["b2"], init["b2"])
    assert not ticket["w1"][~m3].any() and not ticket["w2"][~mask].any() and not ticket["b1"][~mask].any()

    mask2, retrained = xor.one_shot_prune(init, trained, keep, criterion, iterations=300,
                                          learning_rate=1.0)
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
    out = xor.train(init, mask, iterations=200, learning_rate=1.0)
    assert not out["w1"][:, :, 3:].any() and not out["w2"][:, 3:].any() and not out["b1"][:, 3:].any()


@pytest.mark.parametrize("criterion", xor.CRITERIA)
def test_iterative_pruning_goes_10_8_6_4_with_nested_masks(criterion):
    trials = 8
    init = xor.init_params(np.random.default_rng(2), trials, 10)
    trained = xor.train(init, iterations=100, learning_rate=1.0)
    rounds = xor.iterative_prune(init, trained, 4, criterion, iterations=100, learning_rate=1.0)
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
    short = xor.iterative_prune(init, trained, 2, criterion, iterations=10, learning_rate=1.0)
    assert [u for u, _, _ in short] == [8, 6, 4, 2]


# ----------------------------------------------------------------------------
# DB and ZL, and Figure 10's conditioning
# ----------------------------------------------------------------------------
# The default schedule at a tenth of the steps: the same lr x iterations (gradient-flow time).
FAST_ITERS = 1000
FAST_LR = xor.DEFAULT_LEARNING_RATE * xor.DEFAULT_ITERATIONS / FAST_ITERS


def test_db_and_zl_are_distinct_measures_at_the_default_settings():
    rng = np.random.default_rng(0)
    out = {h: xor.evaluate(xor.train(xor.init_params(rng, 200, h), iterations=FAST_ITERS,
                                     learning_rate=FAST_LR)) for h in (10, 2)}
    # A wrong point alone costs log(2) / 4 = 0.173 of mean cross-entropy: below it, ZL implies DB.
    assert xor.DEFAULT_LOSS_THRESHOLD < np.log(2) / 4
    for ev in out.values():
        assert not (ev["zero_loss"] & ~ev["boundary"]).any()
    assert (out[2]["boundary"] & ~out[2]["zero_loss"]).sum() >= 20  # found the boundary, not zero loss
    db10, zl10 = out[10]["boundary"].mean(), out[10]["zero_loss"].mean()
    ratio2 = out[2]["zero_loss"].sum() / out[2]["boundary"].sum()
    assert db10 > 0.9 and zl10 > 0.85
    assert out[2]["boundary"].mean() < db10 - 0.4
    assert ratio2 < zl10 / db10 - 0.2, (ratio2, zl10 / db10)  # small networks reach ZL less often


# Eight hand-made trials.  Ten-unit network and one ticket, per measure (trial 7 has ZL without DB, which
# training cannot produce below log(2)/4, but the definitions must not assume it):
#   trial        0 1 2 3 4 5 6 7
#   base DB      1 1 1 1 1 1 0 0     6 trials
#   base ZL      1 1 1 0 0 0 0 1     4 trials
#   ticket DB    1 1 0 1 0 1 1 1
#   ticket ZL    1 0 1 1 0 0 1 1
#   both DB      1 1 0 1 0 1 0 0     4 -> joint 4/8 = 50.0%, conditional 4/6 = 66.7%
#   both ZL      1 0 1 0 0 0 0 1     3 -> joint 3/8 = 37.5%, conditional 3/4 = 75.0%
# The old reading (ticket rates among the trials whose base reached DB AND ZL, trials 0-2) gives 2/3 and 2/3.
def _hand_results():
    b = lambda bits: np.array([c == "1" for c in bits])  # noqa: E731
    return {
        ("scratch", 10): {"boundary": b("11111100"), "zero_loss": b("11100001")},
        ("scratch", 2): {"boundary": b("10000000"), "zero_loss": b("00000000")},
        ("one-shot", 2, "product"): {"boundary": b("11010111"), "zero_loss": b("10110011")},
    }


def test_joint_and_conditional_rates_equal_the_hand_computation():
    results = _hand_results()
    base, ticket = results[("scratch", 10)], results[("one-shot", 2, "product")]
    assert xor_tables.joint_rates(ticket, base) == {"boundary": 4 / 8, "zero_loss": 3 / 8}
    assert xor_tables.conditional_rates(ticket, base) == {"boundary": 4 / 6, "zero_loss": 3 / 4}
    assert xor_tables.rates(ticket) == {"boundary": 6 / 8, "zero_loss": 5 / 8}
    assert xor_tables.joint_rates(base, base) == xor_tables.rates(base) == {"boundary": 6 / 8, "zero_loss": 4 / 8}
    # One array conditions both measures; an empty condition gives NaN.
    both = base["boundary"] & base["zero_loss"]
    assert xor_tables.conditional_rates(ticket, both) == {"boundary": 2 / 3, "zero_loss": 2 / 3}
    empty = xor_tables.conditional_rates(ticket, np.zeros(8, bool))
    assert np.isnan(empty["boundary"]) and np.isnan(empty["zero_loss"])
    # The old names still resolve through lth_tf.xor.
    assert xor.joint_rates is xor_tables.joint_rates and xor.format_table is xor_tables.format_table


def test_conditional_is_joint_over_the_base_rate_as_in_footnote_5():
    """Footnote 5: 79.4% (joint) of 93.5% (ten-unit ZL) is 84.9% (conditional)."""
    rng = np.random.default_rng(1)
    base = {k: rng.random(1000) < 0.935 for k in xor.MEASURES}
    ticket = {k: rng.random(1000) < 0.85 for k in xor.MEASURES}
    joint, cond = xor_tables.joint_rates(ticket, base), xor_tables.conditional_rates(ticket, base)
    base_rate = xor_tables.rates(base)
    for k in xor.MEASURES:
        assert cond[k] == pytest.approx(joint[k] / base_rate[k], abs=1e-15)
        assert joint[k] <= min(base_rate[k], xor_tables.rates(ticket)[k])


def test_table_prints_joint_cells_and_labels_the_conditional():
    table = xor_tables.format_table(_hand_results(), 8)
    figure10, conditional = table.split("Figure 10")[1].split("Conditional")
    row = next(line for line in figure10.splitlines() if line.startswith("One-shot, magnitude product"))
    # 10 units: base DB 6/8, ZL 4/8; 2 units (pruned): joint 4/8 and 3/8.
    assert row.split()[-4:] == ["75.0", "50.0", "50.0", "37.5"]
    paper = figure10.split(row)[1].splitlines()[1].split()
    assert paper == ["paper", "99.2", "93.3", "82.4", "65.3"]  # the paper's first row, 10 and 2 units
    scratch = next(line for line in figure10.splitlines() if line.startswith("From scratch"))
    assert scratch.split()[-4:] == ["75.0", "50.0", "12.5", "0.0"]
    crow = next(line for line in conditional.splitlines() if line.startswith("One-shot, magnitude product"))
    assert crow.split()[-2:] == ["66.7", "75.0"]
    assert "(DB: 6 trials, ZL: 4 trials)" in conditional and "not the paper's cells" in conditional
    figure9 = table.split("Figure 10")[0]
    assert next(ln for ln in figure9.splitlines() if ln.startswith("2 ")).split() == [
        "2", "12.5", "0.0", "49.1", "17.6"]


def test_run_experiment_batches_agree_with_the_plain_functions():
    trials, iters, lr, seed, thr = 6, 300, 0.5, 9, 0.3
    results = xor.run_experiment(trials=trials, iterations=iters, seed=seed, loss_threshold=thr,
                                 learning_rate=lr)
    expected_keys = {("scratch", h) for h in xor.HIDDEN_SIZES} | {
        (s, t, c) for s in xor.STRATEGIES for t in xor.PRUNE_TARGETS for c in xor.CRITERIA}
    assert set(results) == expected_keys
    rng = np.random.default_rng(seed)
    init = xor.init_params(rng, trials, 10)  # the 10-unit trials are drawn first
    trained = xor.train(init, iterations=iters, learning_rate=lr)

    def same(outcome, params):
        ev = xor.evaluate(params, loss_threshold=thr)
        for k in xor.MEASURES:
            np.testing.assert_array_equal(outcome[k], ev[k])

    same(results[("scratch", 10)], trained)
    _, p = xor.one_shot_prune(init, trained, 2, "product", iterations=iters, learning_rate=lr)
    same(results[("one-shot", 2, "product")], p)
    rounds = xor.iterative_prune(init, trained, 2, "input", iterations=iters, learning_rate=lr)
    same(results[("iterative", 4, "input")], rounds[2][2])
    same(results[("iterative", 2, "input")], rounds[3][2])

    table = xor.format_table(results, trials, iters, lr, thr, seed)
    for line in ("Figure 9", "Figure 10", "From scratch", "One-shot, input magnitude", "Conditional",
                 "Iterative, magnitude product", "10 units", "2 units (pruned)", "79.4"):
        assert line in table
    figure9 = table.split("Figure 10")[0].splitlines()
    assert [line.split()[0] for line in figure9 if line[:1].isdigit()] == ["10", "8", "6", "4", "2"]


def test_pruned_tickets_beat_small_networks_from_scratch():
    results = xor.run_experiment(trials=40, iterations=FAST_ITERS, learning_rate=FAST_LR, seed=2)
    base = results[("scratch", 10)]
    scratch2 = xor_tables.rates(results[("scratch", 2)])
    for s in xor.STRATEGIES:
        for c in xor.CRITERIA:
            ticket = xor_tables.joint_rates(results[(s, 2, c)], base)  # both networks succeeded
            assert ticket["boundary"] > scratch2["boundary"] + 0.3, (s, c)
            assert ticket["zero_loss"] > scratch2["zero_loss"] + 0.3, (s, c)


# ----------------------------------------------------------------------------
# Adam
# ----------------------------------------------------------------------------
def test_adam_first_step_is_lr_times_gradient_sign_and_masks_hold():
    init = xor.init_params(np.random.default_rng(6), 4, 5)
    mask = np.ones((4, 5), bool)
    mask[:, 3:] = False
    sgd = xor.train(init, mask, iterations=1, learning_rate=1.0)  # one step: init - gradient
    adam = xor.train(init, mask, iterations=1, learning_rate=0.01, optimizer="adam")
    start = xor.apply_mask(init, mask)
    for k in ("w1", "b1", "w2", "b2"):
        grad = start[k] - sgd[k]
        # First Adam step, TensorFlow's form (epsilon added after the bias correction of
        # sqrt(v), i.e. as eps / sqrt(1 - beta2)): lr * g / (|g| + eps_hat) ~ lr * sign(g).
        want = start[k] - 0.01 * grad / (np.abs(grad) + 1e-8 / np.sqrt(1 - 0.999))
        np.testing.assert_allclose(adam[k], want, rtol=0, atol=1e-12)
    later = xor.train(init, mask, iterations=50, learning_rate=0.01, optimizer="adam")
    assert not later["w1"][:, :, 3:].any() and not later["w2"][:, 3:].any() and not later["b1"][:, 3:].any()
    with pytest.raises(ValueError):
        xor.train(init, mask, iterations=1, optimizer="rmsprop")


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
    first = capsys.readouterr().out
    assert xor.main(["xor", "--trials=2", "--iterations=5", "--optimizer=adam"]) == 0  # private flags
    second = capsys.readouterr().out
    assert "XOR (3 trials, 20 iterations of full-batch gradient descent, learning rate 0.5, ReLU'(0) = 1" in first
    assert "Figure 9" in first and "Figure 10" in first and "One-shot, output magnitude" in first
    assert "full-batch Adam" in second and "Elapsed:" in second


@pytest.mark.parametrize("argv", [["--trials=0"], ["--trials=abc"], ["--iterations=-5"], ["--seed=-1"],
                                  ["--learning_rate=0"], ["--learning_rate=nan"], ["--loss_threshold=-1"],
                                  ["--optimizer=rmsprop"], ["--no_such_flag"], ["stray"],
                                  ["--relu_grad_at_zero=1.5"], ["--relu_grad_at_zero=-0.1"]])
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
