"""XOR lottery tickets: the XOR appendix of Frankle & Carbin (arXiv 1803.03635).

What it reproduces
------------------
The paper's XOR experiment (it opened arXiv v1 and is an appendix of the later
versions): how often a tiny network learns XOR when trained from scratch at
various widths (Figure 9), and how often a 10-hidden-unit network, pruned down
to 4 or 2 hidden units and reset to its original initialisation, still learns
it (Figure 10).  Every network has 2 inputs, one ReLU hidden layer and one
sigmoid output unit, weights drawn from a normal distribution with standard
deviation 0.1 truncated at 2 standard deviations.

Two measures per network: DB, the decision boundary is right (logit > 0
exactly on the two points labelled 1), and ZL, "zero loss" (mean cross-entropy
below ``--loss_threshold``).  They are separate measures: a network can find
the boundary without reaching the threshold.

Hidden-unit scores (the appendix's three pruning criteria, computed on the
trained weights of the current network, hidden bias excluded)::

    input magnitude    s_j = mean_i |W1[i, j]|            (average |w_in|)
    output magnitude   s_j = |w2[j]|                        (|w_out|)
    magnitude product  s_j = |w2[j]| * sum_i |W1[i, j]|     (|w_out| x sum |w_in|)

The lowest-scoring surviving units are removed whole (incoming weights, bias
and outgoing weight become 0 and are held there).  One-shot: train, prune to
the target, reset the survivors (and the output bias) to their initial values,
retrain.  Iterative: prune 2 units at a time, reset and retrain after each:
10 -> 8 -> 6 -> 4 -> 2 (the "4" row is a prefix of the same chain).

Figure 10's pruned columns are conditional, as the paper's footnote 5 says:
only trials whose ten-unit network succeeded (DB and ZL) are counted, and a
pruned cell is #(ten-unit success and ticket reaches DB, resp. ZL) / #(ten-unit
success).  The paper's conditioning set was 79.4% of all trials; the run
prints its own, and the unconditional rate in brackets.

Usage
-----
    python -m lth_tf.xor                        # full table, 1000 trials
    python -m lth_tf.xor --trials=100 --seed=3  # quicker
    python -m lth_tf.xor --flagfile=flags/xor.flags

    >>> from lth_tf import xor
    >>> results = xor.run_experiment(trials=20, iterations=300, learning_rate=0.3)
    >>> ok = xor.base_success(results)                     # ten-unit DB and ZL, per trial
    >>> cell = xor.conditional_rates(results[("one-shot", 2, "product")], ok)

Flags: ``--trials`` (1000), ``--iterations`` (10000), ``--seed`` (0),
``--optimizer`` (sgd), ``--learning_rate`` (0.01), ``--loss_threshold``
(0.06).  A bad value prints a one-line error and exits with status 2.  The
elapsed time is printed after the tables.  The full default run takes about
1.5 minutes of CPU on one core (92 s CPU, 3 min wall on a loaded 2-core box).

Training, and how its settings were chosen
------------------------------------------
Data: the four XOR points as one full batch.  Network: z = x W1 + b1,
h = relu(z), logit = h w2 + b2; biases start at zero; ReLU'(0) = 0.  Loss: mean
binary cross-entropy.  Training is float64 numpy, vectorised over trials.

The paper does not state the optimizer or the zero-loss threshold, and its
Figure 9 table could not be consulted while writing this (the stored copies of
the paper that could be searched end before the appendix).  What was assumed
from the issue and the footnote: 10 hidden units reach ZL in about 79.4% of
trials (taken as the footnote's conditioning set); 2 hidden units find the
boundary in about half the trials and only about a third of those reach ZL.

Chosen: full-batch gradient descent ("sgd"), learning rate 0.01, 10,000
iterations, ZL threshold 0.06.  Calibration sweep (seed 1, i.e. not the
reported seed, from-scratch networks only, % of trials, "ZL|DB" = ZL among
the DB networks):

* Which optimizer and horizon.  300 trials, threshold fitted per setting to
  ZL(10) = 79.4% and ZL|DB(2) = 1/3, then moved by x1.5 and /1.5:

    =====================  ========  ================  ================
    setting                DB 10/2   ZL 10/2 at fit    ZL 10 at /1.5, x1.5
    =====================  ========  ================  ================
    sgd 1.0, 10000 it      95.5/19.0 95.0/10.0 (1.6e-4)   35.5, 95.5
    adam 0.01, 10000 it    95.0/19.0 74.5/12.0 (4.0e-6)   39.5, 93.5
    adam 0.001, 10000 it   95.0/21.0 91.5/10.5 (4.0e-4)   71.5, 95.0
    sgd 0.01, 10000 it     91.7/14.0 76.7/4.7  (5.6e-2)   59.0, 84.7
    sgd 1.0, 100 it        91.3/13.0 80.7/4.7  (7.1e-2)   69.3, 84.7
    =====================  ========  ================  ================

  After 10,000 steps at a large learning rate every network that found the
  boundary has a loss within a factor ~3 of the same value (it decays like
  1/t), so any threshold either splits them on a knife edge or lets DB = ZL
  (the old default: learning rate 1.0, threshold 1e-3, DB = ZL in every row).
  At lr x iterations = 100 (gradient-flow time 100: sgd 0.01 x 10,000 and
  0.1 x 1,000 gave the same rates within 0.4 points) the late plateau escapers still
  have a visibly higher loss, so ZL measures "converged within the budget"
  and is far less sensitive to the threshold.
* Which threshold, sgd 0.1 x 1,000 (the same flow time), 500 trials:

    =========  ==============  ==============  ==============
    threshold  10: DB/ZL       4: DB/ZL        2: DB/ZL (ZL|DB)
    =========  ==============  ==============  ==============
    0.04       92.6/62.8       51.8/16.0       18.6/3.0 (16%)
    0.05       92.6/73.4       51.8/21.8       18.6/5.2 (28%)
    0.06       92.6/78.4       51.8/26.0       18.6/7.2 (39%)
    0.07       92.6/82.0       51.8/31.0       18.6/8.2 (44%)
    =========  ==============  ==============  ==============

  0.06 matches both assumed targets best.

The reported default run (seed 0, 1000 trials), from scratch, DB/ZL:
10: 94.2/81.9, 8: 87.6/67.9, 6: 77.5/52.4, 4: 50.4/27.3, 2: 17.3/6.5 (ZL|DB
38% at 2 units); 819 ten-unit successes (81.9%) form Figure 10's condition.

What does not match: with this initialisation and data, no optimizer, rate
or horizon tried brings 2 hidden units to "about half" DB; every setting gave
7-23% (sgd and adam alike, the largest rates the lowest; biases drawn like
the weights, or inputs in {-1, 1}, gave 22-24% in a side check).  So the 2-unit
row matches the paper in its ZL/DB ratio, not in its DB level.  Rates are percentages of finite
samples: at 1000 trials a rate near 50% has a standard error of ~1.6 points.
"""
import time

import numpy as np

from lth_tf import _env  # noqa: F401  (project convention: selects legacy Keras before any TF import)

XOR_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_LABELS = np.array([0.0, 1.0, 1.0, 0.0])

INIT_STDDEV = 0.1
HIDDEN_SIZES = (10, 8, 6, 4, 2)
BASE_HIDDEN = 10
PRUNE_TARGETS = (4, 2)
ITERATIVE_STEP = 2
CRITERIA = ("input", "output", "product")
CRITERION_NAMES = {
    "input": "input magnitude",
    "output": "output magnitude",
    "product": "magnitude product",
}
STRATEGIES = ("one-shot", "iterative")

DEFAULT_TRIALS = 1000
DEFAULT_ITERATIONS = 10000
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_OPTIMIZER = "sgd"
OPTIMIZERS = ("sgd", "adam")
DEFAULT_LOSS_THRESHOLD = 0.06
DEFAULT_SEED = 0

_CHUNK = 1024  # trials trained together per inner loop: keeps the working set in cache
_PARAM_KEYS = ("w1", "b1", "w2", "b2")


# ----------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------
def truncated_normal(rng, shape, stddev=INIT_STDDEV):
    """Normal(0, stddev) samples, redrawn until all lie within 2 stddev."""
    values = rng.standard_normal(shape)
    while True:
        outside = np.abs(values) > 2.0
        count = int(outside.sum())
        if not count:
            return values * stddev
        values[outside] = rng.standard_normal(count)


def init_params(rng, trials, hidden, stddev=INIT_STDDEV):
    """Initial parameters of ``trials`` independent 2-hidden-1 networks.

    Returns a dict of float64 arrays: w1 [trials, 2, hidden], b1 [trials, hidden],
    w2 [trials, hidden], b2 [trials].
    """
    return {
        "w1": truncated_normal(rng, (trials, 2, hidden), stddev),
        "b1": np.zeros((trials, hidden)),
        "w2": truncated_normal(rng, (trials, hidden), stddev),
        "b2": np.zeros(trials),
    }


def pad_hidden(params, hidden):
    """Zero-pads networks to ``hidden`` units; returns (params, mask [trials, hidden]).

    A zero unit that is masked out is exactly absent, so a padded h-unit network
    computes and trains exactly like the h-unit network.
    """
    trials, h = params["b1"].shape
    if h > hidden:
        raise ValueError(f"cannot pad {h} hidden units to {hidden}")
    out = {
        "w1": np.zeros((trials, 2, hidden)),
        "b1": np.zeros((trials, hidden)),
        "w2": np.zeros((trials, hidden)),
        "b2": np.array(params["b2"], dtype=np.float64),
    }
    out["w1"][:, :, :h] = params["w1"]
    out["b1"][:, :h] = params["b1"]
    out["w2"][:, :h] = params["w2"]
    mask = np.zeros((trials, hidden), dtype=bool)
    mask[:, :h] = True
    return out, mask


def apply_mask(params, mask):
    """Copy of ``params`` with every masked-out hidden unit zeroed (b2 untouched)."""
    m = np.asarray(mask, dtype=bool)
    return {
        "w1": np.where(m[:, None, :], params["w1"], 0.0),
        "b1": np.where(m, params["b1"], 0.0),
        "w2": np.where(m, params["w2"], 0.0),
        "b2": np.array(params["b2"], dtype=np.float64),
    }


def concat_params(param_list):
    return {k: np.concatenate([p[k] for p in param_list], axis=0) for k in _PARAM_KEYS}


def slice_params(params, start, stop):
    return {k: params[k][start:stop] for k in _PARAM_KEYS}


# ----------------------------------------------------------------------------
# Forward pass, evaluation, training
# ----------------------------------------------------------------------------
def logits(params, inputs=XOR_INPUTS):
    """Output logits [trials, points]."""
    z = np.einsum("pi,tih->tph", inputs, params["w1"]) + params["b1"][:, None, :]
    h = np.maximum(z, 0.0)
    return np.einsum("tph,th->tp", h, params["w2"]) + params["b2"][:, None]


def cross_entropy(logit, labels=XOR_LABELS):
    """Mean binary cross-entropy per trial, computed stably from logits."""
    return np.mean(np.logaddexp(0.0, logit) - labels * logit, axis=-1)


def evaluate(params, inputs=XOR_INPUTS, labels=XOR_LABELS, loss_threshold=DEFAULT_LOSS_THRESHOLD):
    """Per-trial outcome: loss, boundary (all points right), zero_loss, success."""
    logit = logits(params, inputs)
    loss = cross_entropy(logit, labels)
    positive = labels > 0.5
    boundary = np.all(np.where(positive, logit > 0.0, logit < 0.0), axis=-1)
    zero_loss = loss < loss_threshold
    return {"loss": loss, "boundary": boundary, "zero_loss": zero_loss, "success": boundary & zero_loss}


def _train_chunk(w1, b1, w2, b2, m, x, y, iterations, lr, optimizer="sgd"):
    """Full-batch training, in place, on trial-last arrays.

    w1 [2, H, T], b1/w2/m [H, T], b2 [T], x [P, 2], y [P, 1].
    ``optimizer`` "sgd": w -= lr * g.  "adam": Kingma & Ba with beta1 0.9,
    beta2 0.999, epsilon 1e-8 (TensorFlow's defaults) in TensorFlow's form:
    w -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon).
    """
    inv_p = 1.0 / x.shape[0]
    params = (w1, b1, w2, b2)
    if optimizer == "adam":
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
    for step in range(1, iterations + 1):
        z = np.tensordot(x, w1, axes=(1, 0))  # [P, H, T]
        z += b1
        h = np.maximum(z, 0.0)
        out = (h * w2).sum(axis=1)  # [P, T]
        out += b2
        p = 1.0 / (1.0 + np.exp(-out))
        d = (p - y) * inv_p  # dLoss/dlogit, [P, T]
        g_w2 = (h * d[:, None, :]).sum(axis=0)
        g_b2 = d.sum(axis=0)
        dz = (z > 0.0) * w2 * d[:, None, :]  # [P, H, T]
        g_w1 = np.tensordot(x, dz, axes=(0, 0))  # [2, H, T]
        g_b1 = dz.sum(axis=0)
        g_w1 *= m
        g_b1 *= m
        g_w2 *= m
        grads = (g_w1, g_b1, g_w2, g_b2)
        if optimizer == "adam":
            # A masked unit has zero gradient, so its moments and its update stay exactly zero.
            scale = lr * np.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
            for param, g, a, b in zip(params, grads, m1, m2):
                a *= beta1
                a += (1.0 - beta1) * g
                b *= beta2
                b += (1.0 - beta2) * g * g
                param -= scale * a / (np.sqrt(b) + eps)
        else:
            for param, g in zip(params, grads):
                param -= lr * g


def train(params, mask=None, iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE,
          inputs=XOR_INPUTS, labels=XOR_LABELS, optimizer=None):
    """Trains all networks at once; returns the new params (the input is not modified).

    Masked-out units are zeroed first and never updated, so they stay exactly zero.
    """
    optimizer = optimizer or DEFAULT_OPTIMIZER
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    if mask is None:
        mask = np.ones(params["b1"].shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    start = apply_mask(params, mask)
    # Trial-last layout: reductions and elementwise ops then run over long contiguous rows.
    w1 = np.ascontiguousarray(start["w1"].transpose(1, 2, 0))
    b1 = np.ascontiguousarray(start["b1"].T)
    w2 = np.ascontiguousarray(start["w2"].T)
    b2 = start["b2"].copy()
    m = np.ascontiguousarray(mask.T.astype(np.float64))
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)[:, None]
    trials = b2.shape[0]
    for s in range(0, trials, _CHUNK):
        e = min(s + _CHUNK, trials)
        cw1, cb1, cw2, cb2 = w1[:, :, s:e].copy(), b1[:, s:e].copy(), w2[:, s:e].copy(), b2[s:e].copy()
        _train_chunk(cw1, cb1, cw2, cb2, m[:, s:e], x, y, iterations, learning_rate, optimizer)
        w1[:, :, s:e], b1[:, s:e], w2[:, s:e], b2[s:e] = cw1, cb1, cw2, cb2
    return {
        "w1": w1.transpose(2, 0, 1).copy(),
        "b1": b1.T.copy(),
        "w2": w2.T.copy(),
        "b2": b2,
    }


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


def _train_together(jobs, iterations, learning_rate, optimizer=None):
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
                        iterations, learning_rate, optimizer=optimizer)
        start = 0
        for i, _, cols, mask_arg in members:
            n = mask_arg.shape[0]
            part = slice_params(trained, start, start + n)
            start += n
            width = jobs[i][1].shape[1]
            out[i] = part if cols is None else _scatter(part, cols, width)
    return out


def one_shot_prune(initial, trained, keep, criterion, iterations=DEFAULT_ITERATIONS,
                   learning_rate=DEFAULT_LEARNING_RATE, optimizer=None):
    """Prune ``trained`` to ``keep`` units at once, reset to ``initial``, retrain.

    Returns (mask, retrained params).
    """
    full = np.ones(initial["b1"].shape, dtype=bool)
    mask = prune_mask(trained, full, keep, criterion)
    return mask, train(reset(initial, mask), mask, iterations, learning_rate, optimizer=optimizer)


def iterative_prune(initial, trained, keep, criterion, step=ITERATIVE_STEP,
                    iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE, optimizer=None):
    """Prune ``step`` units at a time (reset and retrain after each) down to ``keep``.

    Returns a list of (units, mask, retrained params), one per round, in order.
    """
    mask = np.ones(initial["b1"].shape, dtype=bool)
    units = mask.shape[1]
    rounds = []
    while units > keep:
        units = max(keep, units - step)
        mask = prune_mask(trained, mask, units, criterion)
        trained = train(reset(initial, mask), mask, iterations, learning_rate, optimizer=optimizer)
        rounds.append((units, mask, trained))
    return rounds


def run_experiment(trials=DEFAULT_TRIALS, iterations=DEFAULT_ITERATIONS, seed=DEFAULT_SEED,
                   learning_rate=DEFAULT_LEARNING_RATE, loss_threshold=DEFAULT_LOSS_THRESHOLD,
                   hidden_sizes=HIDDEN_SIZES, targets=PRUNE_TARGETS, criteria=CRITERIA, optimizer=None):
    """Runs the whole appendix experiment; returns {row key: per-trial outcome}.

    Row keys: ("scratch", hidden) and (strategy, target, criterion).  Each value
    is {"boundary": bool [trials], "zero_loss": bool [trials]}; trial i of every
    pruned row is a ticket of trial i of the ("scratch", BASE_HIDDEN) row, so
    rows can be conditioned on each other (see ``conditional_rates``).
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
    for h, p in zip(hidden_sizes, _train_together(jobs, iterations, learning_rate, optimizer)):
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
        trained = _train_together(jobs, iterations, learning_rate, optimizer)
        for key, p in zip(keys, trained):
            if key[0] == "iterative":
                iter_trained[key[2]] = p
            if key[0] == "one-shot" or key[1] in targets:
                results[key] = outcome(p)
        jobs, keys = [], []
    return results


# ----------------------------------------------------------------------------
# Rates and the report
# ----------------------------------------------------------------------------
MEASURES = ("boundary", "zero_loss")


def base_success(results):
    """Trials whose ten-unit network found the boundary AND reached zero loss."""
    base = results[("scratch", BASE_HIDDEN)]
    return np.asarray(base["boundary"], bool) & np.asarray(base["zero_loss"], bool)


def rates(outcome):
    """Unconditional rates: {"boundary": fraction, "zero_loss": fraction} over all trials."""
    return {k: float(np.mean(outcome[k])) for k in MEASURES}


def conditional_rates(outcome, condition):
    """Rates over the trials where ``condition`` holds (Figure 10's pruned columns).

    rate[k] = #(condition & outcome[k]) / #condition, i.e. only runs where the
    ten-unit network succeeded and the ticket achieved k count; NaN if no trial
    satisfies ``condition``.

    >>> conditional_rates({"boundary": [1, 1, 0, 1], "zero_loss": [1, 0, 0, 0]}, [1, 1, 1, 0])
    {'boundary': 0.6666666666666666, 'zero_loss': 0.3333333333333333}
    """
    condition = np.asarray(condition, bool)
    n = int(condition.sum())
    if n == 0:
        return {k: float("nan") for k in MEASURES}
    return {k: int((np.asarray(outcome[k], bool) & condition).sum()) / n for k in MEASURES}


def _pct(x):
    return "n/a" if np.isnan(x) else f"{100.0 * x:.1f}"


def format_table(results, trials, iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE,
                 loss_threshold=DEFAULT_LOSS_THRESHOLD, seed=DEFAULT_SEED, optimizer=None):
    """The appendix's two tables as text: Figure 9 (from scratch) and Figure 10 (pruned).

    Figure 10's pruned cells read "conditional [unconditional]": the percentage
    over the trials whose ten-unit network succeeded, then over all trials.
    """
    optimizer = optimizer or DEFAULT_OPTIMIZER
    opt_name = "full-batch gradient descent" if optimizer == "sgd" else "full-batch Adam"
    lines = [
        f"XOR ({trials} trials, {iterations} iterations of {opt_name}, learning rate {learning_rate:g}, "
        f"seed {seed})",
        f"DB = decision boundary (all four points on the right side); ZL = zero loss "
        f"(mean cross-entropy < {loss_threshold:g})",
        "",
        "Figure 9: trained from scratch, percent of all trials",
        f"{'Hidden units':<14}{'DB':>7}{'ZL':>7}",
    ]
    scratch = sorted((k[1] for k in results if k[0] == "scratch"), reverse=True)
    for h in scratch:
        r = rates(results[("scratch", h)])
        lines.append(f"{h:<14}{_pct(r['boundary']):>7}{_pct(r['zero_loss']):>7}")

    cond = base_success(results)
    targets = sorted({k[1] for k in results if k[0] != "scratch"}, reverse=True)
    widths = [BASE_HIDDEN] + targets
    cell = 15
    lines += [
        "",
        f"Figure 10: {BASE_HIDDEN}-unit networks pruned by hidden-unit magnitude and reset to their "
        "initialisation.",
        f"Pruned rows: percent of the {int(cond.sum())} trials ({_pct(cond.mean())}% of {trials}) whose "
        f"{BASE_HIDDEN}-unit network reached both DB and ZL",
        "(the paper's footnote 5: 79.4%), then [percent of all trials]. From scratch: independent "
        "networks, all trials.",
        f"{'':<30}" + "".join(f"{f'{w} hidden units':^{2 * cell}}" for w in widths),
        f"{'Strategy':<30}" + "".join(f"{'DB':>{cell}}{'ZL':>{cell}}" for _ in widths),
    ]
    row = []
    for w in widths:
        key = ("scratch", w)
        r = rates(results[key]) if key in results else {k: float("nan") for k in MEASURES}
        row += [_pct(r[k]) for k in MEASURES]
    lines.append(f"{'From scratch':<30}" + "".join(f"{c:>{cell}}" for c in row))
    base = results[("scratch", BASE_HIDDEN)]
    for s in STRATEGIES:
        for c in CRITERIA:
            if not any((s, t, c) in results for t in targets):
                continue
            row = []
            for w in widths:
                out = base if w == BASE_HIDDEN else results.get((s, w, c))
                if out is None:
                    row += ["n/a", "n/a"]
                    continue
                cr, ur = conditional_rates(out, cond), rates(out)
                row += [f"{_pct(cr[k])} [{_pct(ur[k])}]" for k in MEASURES]
            label = f"{s[0].upper() + s[1:]}, {CRITERION_NAMES[c]}"
            lines.append(f"{label:<30}" + "".join(f"{x:>{cell}}" for x in row))
    return "\n".join(line.rstrip() for line in lines)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def _define_flags(flag_values):
    import math

    from absl import flags

    flags.DEFINE_integer("trials", DEFAULT_TRIALS, "Independent networks per table row.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("iterations", DEFAULT_ITERATIONS, "Gradient-descent iterations per training.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Random seed of the initialisations.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_float("learning_rate", DEFAULT_LEARNING_RATE, "Learning rate of the optimizer.",
                       flag_values=flag_values)
    flags.DEFINE_enum("optimizer", DEFAULT_OPTIMIZER, list(OPTIMIZERS),
                      "sgd: full-batch gradient descent; adam: full-batch Adam (TensorFlow defaults).",
                      flag_values=flag_values)
    flags.DEFINE_float("loss_threshold", DEFAULT_LOSS_THRESHOLD,
                       "A network 'reaches zero loss' when its mean cross-entropy is below this.",
                       flag_values=flag_values)
    flags.register_validator("learning_rate", lambda v: math.isfinite(v) and v > 0,
                             message="--learning_rate must be a positive finite number",
                             flag_values=flag_values)
    flags.register_validator("loss_threshold", lambda v: math.isfinite(v) and v > 0,
                             message="--loss_threshold must be a positive finite number",
                             flag_values=flag_values)


def main(argv=None):
    """Entry point of ``python -m lth_tf.xor``; flags live on a private FlagValues."""
    import sys

    from absl import flags

    argv = list(sys.argv if argv is None else argv)
    fv = flags.FlagValues()
    _define_flags(fv)
    if any(a in ("-h", "--help", "-help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(f"usage: python -m lth_tf.xor [flags]\n\n{fv.get_help()}")
        return 0
    try:
        rest = fv(argv)
        if len(rest) > 1:
            raise flags.Error(f"unexpected argument(s): {' '.join(rest[1:])}")
    except flags.Error as e:
        message = " ".join(str(e).split())
        print(f"lth_tf.xor: error: {message}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run_experiment(trials=fv.trials, iterations=fv.iterations, seed=fv.seed,
                             learning_rate=fv.learning_rate, loss_threshold=fv.loss_threshold,
                             optimizer=fv.optimizer)
    elapsed = time.perf_counter() - start
    print(format_table(results, fv.trials, fv.iterations, fv.learning_rate, fv.loss_threshold, fv.seed,
                       fv.optimizer))
    print(f"\nElapsed: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
