"""XOR lottery tickets (Frankle & Carbin, arXiv 1803.03635 v1, appendix): hidden units pruned by magnitude,
the survivors reset to their initialisation and retrained; the whole experiment of Figures 9 and 10.

Hidden-unit scores (the appendix's three criteria, on the trained weights of
the current network, hidden bias excluded)::

    input magnitude    s_j = mean_i |W1[i, j]|            (average |w_in|)
    output magnitude   s_j = |w2[j]|                        (|w_out|)
    magnitude product  s_j = |w2[j]| * sum_i |W1[i, j]|     (|w_out| x sum |w_in|)

The lowest-scoring surviving units are removed whole (incoming weights, bias
and outgoing weight become 0 and are held there).  One-shot: train, prune to
the target, reset the survivors (and the output bias) to their initial values,
retrain.  Iterative: prune 2 units at a time, reset and retrain after each:
10 -> 8 -> 6 -> 4 -> 2 (the "4" row is a prefix of the same chain).

Figure 10's pruned cells are joint rates over all trials, as its caption and
footnote 5 define them: #(ten-unit network and ticket both reach DB, resp.
both reach ZL) / #trials.  The conditional rate (divided by the ten-unit
network's own DB, resp. ZL, count: 84.9% = 79.4 / 93.5 in footnote 5) is
printed in a separate, labelled table.  Both live in ``lth_tf.xor.tables``.
"""
import numpy as np

from lth_tf.xor.network import (BASE_HIDDEN, CRITERIA, DEFAULT_ITERATIONS, DEFAULT_LEARNING_RATE,
                                DEFAULT_LOSS_THRESHOLD, DEFAULT_SEED, DEFAULT_TRIALS, HIDDEN_SIZES, ITERATIVE_STEP,
                                PRUNE_TARGETS, apply_mask, concat_params, evaluate, init_params, pad_hidden,
                                slice_params, train)


# ----------------------------------------------------------------------------
# Hidden-unit pruning
# ----------------------------------------------------------------------------
def unit_scores(params, criterion):
    """Magnitude score [trials, hidden] of every hidden unit under ``criterion``.

    As in the appendix: "input" is the mean |w_in| of the unit's incoming
    weights, "output" is |w_out|, "product" is |w_out| * sum |w_in|.  The hidden
    bias is not an incoming weight and takes no part.

    >>> p = {"w1": np.array([[[3.0], [-1.0]]]), "w2": np.array([[-0.5]])}
    >>> [float(unit_scores(p, c)[0, 0]) for c in CRITERIA]
    [2.0, 0.5, 2.0]
    """
    abs_in = np.abs(params["w1"])  # [trials, inputs, hidden]
    output_mag = np.abs(params["w2"])
    if criterion == "input":
        return abs_in.mean(axis=1)
    if criterion == "output":
        return output_mag
    if criterion == "product":
        return output_mag * abs_in.sum(axis=1)
    raise ValueError(f"unknown criterion {criterion!r}; expected one of {CRITERIA}")


def prune_mask(params, mask, keep, criterion):
    """Mask that keeps the ``keep`` highest-scoring surviving units of each network."""
    mask = np.asarray(mask, dtype=bool)
    alive = mask.sum(axis=1)
    if np.any(alive < keep) or keep < 0:
        raise ValueError(f"cannot keep {keep} units: some networks have only {alive.min()}")
    score = np.where(mask, unit_scores(params, criterion), -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")  # ties -> lower unit index first
    new_mask = np.zeros_like(mask)
    np.put_along_axis(new_mask, order[:, :keep], True, axis=1)
    return new_mask


def reset(initial_params, mask):
    """The lottery-ticket reset: survivors take their initial values, pruned units are 0."""
    return apply_mask(initial_params, mask)


# ----------------------------------------------------------------------------
# Experiments
# ----------------------------------------------------------------------------
def _compact(params, mask):
    """Gathers the surviving units of networks that all keep the same number of units.

    Returns (params of width k, column index [trials, k]) -- a masked-out unit is
    exactly zero and receives no update, so dropping it changes nothing.
    """
    mask = np.asarray(mask, dtype=bool)
    k = int(mask[0].sum())
    if not (mask.sum(axis=1) == k).all():
        return None
    cols = np.argsort(~mask, axis=1, kind="stable")[:, :k]
    p = apply_mask(params, mask)
    return {
        "w1": np.take_along_axis(p["w1"], cols[:, None, :], axis=2),
        "b1": np.take_along_axis(p["b1"], cols, axis=1),
        "w2": np.take_along_axis(p["w2"], cols, axis=1),
        "b2": p["b2"],
    }, cols


def _scatter(compact, cols, width):
    trials = cols.shape[0]
    out = {"w1": np.zeros((trials, 2, width)), "b1": np.zeros((trials, width)),
           "w2": np.zeros((trials, width)), "b2": compact["b2"]}
    np.put_along_axis(out["w1"], cols[:, None, :], compact["w1"], axis=2)
    np.put_along_axis(out["b1"], cols, compact["b1"], axis=1)
    np.put_along_axis(out["w2"], cols, compact["w2"], axis=1)
    return out


def _train_together(jobs, iterations, learning_rate, optimizer=None, relu_grad_at_zero=None):
    """Trains several (params, mask) jobs at once; returns their trained params in order.

    Jobs whose networks all keep k units are trained as dense k-unit networks
    (pruned units dropped, then put back as zeros), and jobs of equal k share one
    vectorised batch.  The result equals ``train(params, mask, ...)`` per job.
    """
    groups = {}
    for i, (params, mask) in enumerate(jobs):
        packed = _compact(params, mask)
        if packed is None:
            packed = (apply_mask(params, mask), None)
            key = ("masked", i)
            mask_arg = np.asarray(mask, dtype=bool)
        else:
            key = ("dense", packed[1].shape[1])
            mask_arg = np.ones(packed[1].shape, dtype=bool)
        groups.setdefault(key, []).append((i, packed[0], packed[1], mask_arg))
    out = [None] * len(jobs)
    for members in groups.values():
        trained = train(concat_params([m[1] for m in members]), np.concatenate([m[3] for m in members]),
                        iterations, learning_rate, optimizer=optimizer, relu_grad_at_zero=relu_grad_at_zero)
        start = 0
        for i, _, cols, mask_arg in members:
            n = mask_arg.shape[0]
            part = slice_params(trained, start, start + n)
            start += n
            width = jobs[i][1].shape[1]
            out[i] = part if cols is None else _scatter(part, cols, width)
    return out


def one_shot_prune(initial, trained, keep, criterion, iterations=DEFAULT_ITERATIONS,
                   learning_rate=DEFAULT_LEARNING_RATE, optimizer=None, relu_grad_at_zero=None):
    """Prune ``trained`` to ``keep`` units at once, reset to ``initial``, retrain.

    Returns (mask, retrained params).
    """
    full = np.ones(initial["b1"].shape, dtype=bool)
    mask = prune_mask(trained, full, keep, criterion)
    return mask, train(reset(initial, mask), mask, iterations, learning_rate, optimizer=optimizer,
                       relu_grad_at_zero=relu_grad_at_zero)


def iterative_prune(initial, trained, keep, criterion, step=ITERATIVE_STEP,
                    iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE, optimizer=None,
                    relu_grad_at_zero=None):
    """Prune ``step`` units at a time (reset and retrain after each) down to ``keep``.

    Returns a list of (units, mask, retrained params), one per round, in order.
    """
    mask = np.ones(initial["b1"].shape, dtype=bool)
    units = mask.shape[1]
    rounds = []
    while units > keep:
        units = max(keep, units - step)
        mask = prune_mask(trained, mask, units, criterion)
        trained = train(reset(initial, mask), mask, iterations, learning_rate, optimizer=optimizer,
                        relu_grad_at_zero=relu_grad_at_zero)
        rounds.append((units, mask, trained))
    return rounds


def run_experiment(trials=DEFAULT_TRIALS, iterations=DEFAULT_ITERATIONS, seed=DEFAULT_SEED,
                   learning_rate=DEFAULT_LEARNING_RATE, loss_threshold=DEFAULT_LOSS_THRESHOLD,
                   hidden_sizes=HIDDEN_SIZES, targets=PRUNE_TARGETS, criteria=CRITERIA, optimizer=None,
                   relu_grad_at_zero=None):
    """Runs the whole appendix experiment; returns {row key: per-trial outcome}.

    Row keys: ("scratch", hidden) and (strategy, target, criterion).  Each value
    is {"boundary": bool [trials], "zero_loss": bool [trials]}; trial i of every
    pruned row is a ticket of trial i of the ("scratch", BASE_HIDDEN) row, so
    rows can be joined with each other (see lth_tf.xor.tables).
    """
    if BASE_HIDDEN not in hidden_sizes:
        raise ValueError(f"hidden_sizes must include {BASE_HIDDEN}")
    if not targets or not all(0 < t < BASE_HIDDEN for t in targets):
        raise ValueError(f"pruning targets must lie in 1..{BASE_HIDDEN - 1}: {targets}")
    rng = np.random.default_rng(seed)
    initial = {h: init_params(rng, trials, h) for h in hidden_sizes}
    width = max(hidden_sizes)

    def outcome(p):
        ev = evaluate(p, loss_threshold=loss_threshold)
        return {"boundary": ev["boundary"], "zero_loss": ev["zero_loss"]}

    results = {}
    # Stage 1: every from-scratch width (each h-unit network is a zero-padded, masked
    # width-`width` network; _train_together trains each width as a dense batch).
    jobs = [pad_hidden(initial[h], width) for h in hidden_sizes]
    for h, p in zip(hidden_sizes, _train_together(jobs, iterations, learning_rate, optimizer, relu_grad_at_zero)):
        results[("scratch", h)] = outcome(p)
        if h == BASE_HIDDEN:
            base_trained = p
    base_init, _ = pad_hidden(initial[BASE_HIDDEN], width)
    full = np.ones((trials, width), dtype=bool)
    if width > BASE_HIDDEN:
        full[:, BASE_HIDDEN:] = False

    # Stage 2: every one-shot retraining, trained along with the first iterative round.
    jobs, keys = [], []
    for c in criteria:
        for t in targets:
            m = prune_mask(base_trained, full, t, c)
            jobs.append((reset(base_init, m), m))
            keys.append(("one-shot", t, c))
    stop = min(targets)
    units = BASE_HIDDEN
    iter_trained = {c: base_trained for c in criteria}
    iter_masks = {c: full for c in criteria}
    while units > stop:
        units = max(stop, units - ITERATIVE_STEP)
        for c in criteria:
            m = prune_mask(iter_trained[c], iter_masks[c], units, c)
            iter_masks[c] = m
            jobs.append((reset(base_init, m), m))
            keys.append(("iterative", units, c))
        # Later iterative rounds depend on this one: train what is queued so far.
        trained = _train_together(jobs, iterations, learning_rate, optimizer, relu_grad_at_zero)
        for key, p in zip(keys, trained):
            if key[0] == "iterative":
                iter_trained[key[2]] = p
            if key[0] == "one-shot" or key[1] in targets:
                results[key] = outcome(p)
        jobs, keys = [], []
    return results


MEASURES = ("boundary", "zero_loss")
