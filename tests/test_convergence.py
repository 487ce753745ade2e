"""arXiv v1 footnote 1's convergence iteration on hand-made test-loss curves with hand-computed answers.

With evaluations every 100 iterations the 1000-iteration moving average at t is the mean of the 10 losses at
t - 900, ..., t (defined from t = 1000 on), its change at t is (L_t - L_{t-1000}) / 10, and the round has
converged at the first T whose 10 changes at T - 900, ..., T are all below 0.001 (so T >= 2000)."""
import math

import numpy as np
import pytest

from lth_tf.training import convergence

GRID = list(range(100, 5001, 100))


def at(losses, iterations=GRID, **kwargs):
    return convergence.convergence_iteration(iterations, losses, **kwargs)


def test_the_moving_average_is_the_mean_of_the_last_window_and_undefined_before_a_full_one():
    m = convergence.moving_average(GRID, [t / 100 for t in GRID])  # losses 1, 2, 3, ...
    assert np.isnan(m[:9]).all()  # 100 ... 900: less than 1000 iterations seen
    assert m[9] == pytest.approx(5.5) and m[10] == pytest.approx(6.5)  # mean(1..10), mean(2..11)
    # eval_every 300 does not divide 1000: the window (t - 1000, t] holds 4 samples, full from t = 1200 on.
    grid = list(range(300, 3001, 300))
    m = convergence.moving_average(grid, [t / 300 for t in grid])  # losses 1, 2, 3, ...
    assert np.isnan(m[:3]).all() and m[3] == pytest.approx(2.5) and m[4] == pytest.approx(3.5)


def test_a_flat_curve_converges_as_soon_as_a_window_and_a_span_have_passed():
    assert at([0.5] * len(GRID)) == 2000
    # The edge: a round that ends at 1900 cannot tell; one that ends at 2000 can.
    assert at([0.5] * 19, GRID[:19]) is None
    assert at([0.5] * 20, GRID[:20]) == 2000


def test_a_curve_that_flattens_at_1500_converges_at_3400():
    # Falling 0.05 per evaluation until 1500, flat after. The last change >= 0.001 is at 2400, when the loss
    # of 1400 (1.05) leaves the window: (1.0 - 1.05) / 10 = -0.005. The 10 changes 2500 ... 3400 are all 0.
    losses = [1.0 + 0.05 * max(0, 1500 - t) / 100 for t in GRID]
    m = convergence.moving_average(GRID, losses)
    assert abs(m[GRID.index(2400)] - m[GRID.index(2300)]) == pytest.approx(0.005)
    assert at(losses) == 3400


def test_the_tolerance_is_strict_and_compared_with_each_change():
    # A steady slope s per evaluation moves the moving average by exactly s per evaluation.
    assert at([1.0 - 0.0009 * i for i in range(len(GRID))]) == 2000
    assert at([1.0 - 0.0011 * i for i in range(len(GRID))]) is None  # falls too fast, forever
    assert at([1.0 + 0.002 * i for i in range(len(GRID))]) is None  # overfitting: test loss rising steadily
    assert at([1.0 - 0.0011 * i for i in range(len(GRID))], tolerance=0.0012) == 2000


def test_a_blip_restarts_the_count_and_a_small_one_does_not():
    blip = [2.0 if t == 1500 else 1.0 for t in GRID]
    # The blip moves the average by +0.1 at 1500 (it enters) and -0.1 at 2500 (it leaves): the first span of
    # 10 small changes after both is 2600 ... 3500.
    assert at(blip) == 3500
    small = [1.009 if t == 1500 else 1.0 for t in GRID]  # changes of 0.0009: below the tolerance
    assert at(small) == 2000
    late = [2.0 if t == 2500 else 1.0 for t in GRID]  # after convergence at 2000: the first moment stands
    assert at(late) == 2000


def test_a_nan_loss_breaks_the_count_like_a_blip():
    losses = [math.nan if t == 1500 else 1.0 for t in GRID]
    assert at(losses) == 3500  # every window holding the NaN has no average; 2600 ... 3500 are clean


def test_a_late_start_and_a_grid_that_does_not_divide_1000():
    # A round rewound to iteration 100 evaluates at 200, 300, ...: its first full window is 100 ... 1100.
    late = list(range(200, 4001, 100))
    assert at([0.5] * len(late), late) == 2100
    assert at([0.5] * len(late), late, start=0) == 2000  # stated start: the first full window ends at 1000
    # Every 300: the average exists from 1200; T = 2100 needs the average at 900 (none), T = 2400 the one
    # at 1200, so the 4 changes 1500 ... 2400 cover the span.
    grid = list(range(300, 4501, 300))
    assert at([0.5] * len(grid), grid) == 2400


def test_window_and_span_are_keyword_arguments():
    assert at([0.5] * len(GRID), window=500, span=300) == 800  # average from 500, changes 600 ... 800


def test_at_convergence_returns_the_point_of_the_curve_and_none_when_not_converged():
    curve = [{"iteration": t, "test_loss": 0.5, "test_accuracy": t / 10_000} for t in GRID]
    assert convergence.at_convergence(curve) == {"iteration": 2000, "test_loss": 0.5, "test_accuracy": 0.2}
    assert convergence.at_convergence(curve[:19]) is None
    assert convergence.at_convergence([]) is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="increasing"):
        at([1.0, 1.0], [200, 100])
    with pytest.raises(ValueError, match="same length"):
        at([1.0], [100, 200])
    with pytest.raises(ValueError, match="tolerance must be positive"):
        at([1.0] * len(GRID), tolerance=0)


def test_largest_change_is_the_worst_change_of_each_span_and_marks_how_close_a_round_came():
    # Falling 0.05 per evaluation until 1500, flat after: the change at t is (L_t - L_{t-1000}) / 10.
    losses = [1.0 + 0.05 * max(0, 1500 - t) / 100 for t in GRID]
    largest = convergence.largest_change(GRID, losses)
    assert np.isnan(largest[:GRID.index(2000)]).all()  # no span covered by averages before 2000
    assert largest[GRID.index(2000)] == pytest.approx(0.05)  # changes 1100 ... 1500: (-0.05 * 10) / 10
    assert largest[GRID.index(3300)] == pytest.approx(0.005)  # 2400's change is still in the span
    assert largest[GRID.index(3400)] == 0.0
    # A steady rise of 0.002 per evaluation never converges; it came within 0.002 of flat.
    rising = [0.5 + 0.002 * i for i in range(len(GRID))]
    assert np.nanmin(convergence.largest_change(GRID, rising)) == pytest.approx(0.002)
