"""Convergence as the arXiv v1 paper measures it for its fully-connected networks (footnote 1).

Frankle & Carbin (arXiv v1, 2018), footnote 1: a network has converged at the moment the 1000-iteration moving
average of its *test* loss has changed by less than 0.001 for 1000 consecutive iterations, with the test set
evaluated every 100 iterations. Figures 2 and 3 (lenet-300-100) use it. The convolutional experiments use the
iteration of minimum validation loss instead, which lth_tf stores for every model as `early_stop_iteration`
(training.RoundResult.early_stop); this module adds the footnote's measure, stored as `convergence_iteration`.

How the footnote is read here (the paper gives no formula; these are lth_tf's choices). A round's curve has
test losses L_i at evaluation iterations t_1 < t_2 < ... (every eval_every iterations), and `start` is the
iteration training began at (by default the grid point before the first evaluation, t_1 - (t_2 - t_1): 0 for
an ordinary round, k for a round rewound to iteration k on the same grid).

  moving average   m_i = mean of the L_j with t_i - window < t_j <= t_i: the samples of the last `window`
                   iterations. It is defined only once a full window exists, t_i - window >= start (with
                   eval_every 100: from t = 1000 on, the mean of the 10 samples 100, ..., 1000); before that
                   m_i is NaN.
  change           d_i = |m_i - m_{i-1}|, between successive evaluations (every 100 iterations at the
                   paper's spacing: then d_i = |L_i - L_{i-10}| / 10).
  converged at T   the first evaluation iteration T such that every change d_j with T - span < t_j <= T is
                   below `tolerance`, and those changes cover the whole span: the evaluation before the first
                   of them lies at or before T - span and has a moving average. With eval_every 100 these are
                   the 10 changes from T - 900 to T, comparing m at T - 1000 ... T, so the earliest possible T
                   is 2000 (window + span). A NaN loss makes every change it touches fail.
  reported         T, the end of the span: the footnote names "the moment at which" the average had changed
                   by less than 0.001 for 1000 iterations, a condition that first holds at T, and T is the
                   first iteration at which the rule can be decided from the curve so far (as an online
                   stopping rule would). The start of the stable stretch, T - span, differs by the constant
                   `span`: the order of pruning levels is the same, their ratios are not.
  not converged    no such T within the round: None (an empty cell in results.csv, "not converged" in the
                   report). A round shorter than window + span iterations never converges.

When eval_every does not divide 1000 (say 300), the window holds the ceil(1000 / 300) = 4 samples at
t, t - 300, t - 600, t - 900, and the span ceil(1000 / 300) = 4 changes, comparing m at T - 1200 ... T: both
round up to the evaluation grid, covering at least 1000 iterations. The tolerance is compared with each change
between successive evaluations, whatever their spacing, so only at the paper's 100 is this the footnote's
rule exactly: at a finer spacing each change spans fewer iterations and the same tolerance is easier to meet.

    from lth_tf.training import convergence
    convergence.convergence_iteration([100, 200, ...], [2.3, 1.9, ...])   # int, or None: not converged
    convergence.at_convergence(result.curve)   # that evaluation's point (test_accuracy, ...), or None
    np.nanmin(convergence.largest_change(iterations, losses))   # how close a round that never converged came
"""
from __future__ import annotations

import numpy as np

WINDOW, TOLERANCE, SPAN = 1000, 0.001, 1000  # footnote 1


def _arrays(iterations, losses, start):
    t = np.asarray(iterations, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if t.ndim != 1 or loss.shape != t.shape:
        raise ValueError(f"iterations and losses must be 1-D of the same length, got shapes {t.shape} and "
                         f"{loss.shape}")
    if t.size and np.any(np.diff(t) <= 0):
        raise ValueError("iterations must be strictly increasing")
    if start is None:  # the grid point before the first evaluation
        start = t[0] - (t[1] - t[0]) if t.size > 1 else (t[0] if t.size else 0.0)
    return t, loss, float(start)


def _check(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def moving_average(iterations, losses, *, window: float = WINDOW, start: float | None = None) -> np.ndarray:
    """m_i: the mean of the losses whose iterations fall in (t_i - window, t_i]; NaN until t_i - window >= start
    (no full window yet). See the module docstring."""
    _check(window=window)
    t, loss, start = _arrays(iterations, losses, start)
    out = np.full(t.shape, np.nan)
    for i, ti in enumerate(t):
        if ti - window >= start:
            out[i] = loss[(t > ti - window) & (t <= ti)].mean()
    return out


def largest_change(iterations, losses, *, window: float = WINDOW, span: float = SPAN,
                   start: float | None = None) -> np.ndarray:
    """At each evaluation T: the largest change of the moving average between successive evaluations with
    T - span < t <= T, or NaN unless those changes cover the span and are all defined. The round has converged
    at the first T where this is below the tolerance; its smallest value is how close a round came."""
    _check(span=span)
    t, _, start = _arrays(iterations, losses, start)
    change = np.abs(np.diff(moving_average(iterations, losses, window=window, start=start)))  # at t_1, t_2, ...
    out = np.full(t.shape, np.nan)
    for i in range(1, t.size):
        first = int(np.searchsorted(t, t[i] - span, side="right"))  # the first t_j > T - span
        if first >= 1 and np.isfinite(change[first - 1:i]).all():
            out[i] = change[first - 1:i].max()
    return out


def convergence_iteration(iterations, losses, *, window: float = WINDOW, tolerance: float = TOLERANCE,
                          span: float = SPAN, start: float | None = None) -> int | None:
    """The first evaluation iteration T at which every change of the `window`-iteration moving average of
    `losses` between successive evaluations within (T - span, T] is below `tolerance`, the changes covering the
    span; None if there is none (not converged). Footnote 1's defaults; the reading is the module docstring's."""
    _check(tolerance=tolerance)
    largest = largest_change(iterations, losses, window=window, span=span, start=start)
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(largest < tolerance)  # NaN (no full span yet, or a NaN loss) never hits
    return int(round(float(np.asarray(iterations, dtype=float)[hits[0]]))) if hits.size else None


def at_convergence(curve: list, **kwargs) -> dict | None:
    """The point of a round's curve (dicts with "iteration" and "test_loss", as training.RoundResult.curve) at
    its convergence iteration, or None when it did not converge. kwargs: window, tolerance, span, start."""
    if not curve:
        return None
    iteration = convergence_iteration([p["iteration"] for p in curve], [p["test_loss"] for p in curve], **kwargs)
    return None if iteration is None else next(p for p in curve if p["iteration"] == iteration)
