"""The lottery-ticket hypothesis in one line: the winning ticket against its control at the sparsest level.

At the sparsest round that both the ticket (`lottery`) and a control (`reinit`, or another variant) trained,
the test accuracy at the early-stop iteration and that iteration, averaged over trials; Frankle & Carbin's
Figures 3-5 show the same two measures against the weights remaining. Without a control at that round, the
dense network (round 0) is the comparison.

    >>> comparison(rows)   # the results table: results.csv's rows, or what run_experiment returns
    'at 6.9% of weights: lottery test accuracy 0.712 (early stop 2600) vs reinit 0.583 (early stop 1400)'
"""
from __future__ import annotations


def comparison(rows: list) -> str | None:
    """The line, from results rows (dicts with variant, round, weights_remaining, test_accuracy_at_early_stop,
    early_stop_iteration); None when no pruned lottery round has finished."""
    by = {}
    for row in rows:
        by.setdefault((str(row["variant"]), int(row["round"])), []).append(row)
    pruned = sorted(r for v, r in by if v == "lottery" and r > 0)
    if not pruned:
        return None
    controls = sorted({v for v, r in by if v != "lottery" and r > 0})
    shared = [r for r in pruned if any((v, r) in by for v in controls)]
    level = max(shared) if shared else max(pruned)
    others = [(v, by[(v, level)]) for v in controls if (v, level) in by] if shared else []
    if not others and (("lottery", 0) in by):
        others = [("the dense network", by[("lottery", 0)])]
    ticket = by[("lottery", level)]
    line = f"at {100 * _mean(ticket, 'weights_remaining'):.3g}% of weights: lottery {_measures(ticket)}"
    return line + "".join(f" vs {name} {_measures(group, short=True)}" for name, group in others)


def _mean(rows: list, column: str) -> float:
    return sum(float(row[column]) for row in rows) / len(rows)


def _measures(rows: list, short: bool = False) -> str:
    accuracy = f"{_mean(rows, 'test_accuracy_at_early_stop'):.3f}"
    stop = f"(early stop {_mean(rows, 'early_stop_iteration'):.0f})"
    trials = f", mean of {len(rows)} trials" if len(rows) > 1 and not short else ""
    return f"{'' if short else 'test accuracy '}{accuracy} {stop}{trials}"
