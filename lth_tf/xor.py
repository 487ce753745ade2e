"""XOR lottery tickets: the XOR appendix of Frankle & Carbin (arXiv 1803.03635 v1).

What it reproduces
------------------
How often a tiny network learns XOR when trained from scratch at 10, 8, 6, 4
and 2 hidden units (Figure 9), and how often a 10-unit network, pruned to 4 or
2 hidden units and reset to its initialisation, still learns it (Figure 10).
Network: 2 inputs, one ReLU hidden layer, one sigmoid output; weights normal
with std 0.1 truncated at 2 std, biases 0 (footnote 4); 10,000 iterations on
the whole training set (the four points) each time.

Two measures per network: DB, the decision boundary is right (logit > 0
exactly on the two points labelled 1), and ZL, "zero loss" (mean cross-entropy
below ``--loss_threshold``).  Below log(2)/4 ZL implies DB, not conversely.

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
printed in a separate, labelled table.  Both live in ``lth_tf.xor_tables``.

Usage
-----
    python -m lth_tf.xor                        # full tables, 1000 trials
    python -m lth_tf.xor --trials=100 --seed=3  # quicker
    python -m lth_tf.xor --flagfile=flags/xor.flags

    >>> from lth_tf import xor, xor_tables
    >>> results = xor.run_experiment(trials=20, iterations=300, learning_rate=0.3)
    >>> base = results[("scratch", 10)]
    >>> cell = xor_tables.joint_rates(results[("iterative", 2, "product")], base)

Flags: ``--trials`` (1000), ``--iterations`` (10000), ``--seed`` (0),
``--optimizer`` (sgd), ``--learning_rate`` (0.01), ``--loss_threshold``
(0.09), ``--relu_grad_at_zero`` (1).  A bad value prints one line and exits
with status 2.  The elapsed time is printed after the tables.

Training, and how its unstated settings were chosen
---------------------------------------------------
z = x W1 + b1, h = relu(z), logit = h w2 + b2, mean binary cross-entropy,
float64 numpy vectorised over trials.  The paper leaves open the optimizer, its
learning rate, the ZL threshold and, as it turns out to matter, the ReLU's
derivative at z = 0: the biases start at exactly 0, so on the point (0, 0)
every hidden unit sits at z = 0.  With relu'(0) = 0 (tf.nn.relu) a unit whose
two incoming weights are negative never gets a gradient; with relu'(0) = 1
(what TensorFlow gives for tf.maximum(z, 0)) the error on (0, 0) reaches its
bias and can revive it.

Sweep (full record: docs/XOR.md): from scratch only, seed 1, 300 trials;
relu'(0) = 1 with sgd at 8 rates from 0.005 to 3 and adam at 6 from 3e-4 to
0.1, relu'(0) = 0 with sgd 0.01-1 and adam 1e-3, 1e-2; the threshold fitted per
setting.  Criterion: squared error over Figure 9's ten cells (percentage
points), the error taken at its worst over thresholds within a factor 1.5 of
the chosen one, so that no fit rests on a knife edge.  The leaders rerun at
seed 2, 1000 trials (DB/ZL for 10, 8, 6, 4, 2 units; that worst-case SSE):

    sgd 0.01,  relu'(0)=1, thr 0.091:  99.2/97.8 98.7/94.9 93.8/81.9 78.1/53.6 28.5/12.1  913
    adam 3e-3, relu'(0)=1, thr 3.4e-5: 99.1/98.8 98.4/97.5 93.5/91.0 80.5/72.5 32.7/18.9  1110
    sgd 0.03,  relu'(0)=1, thr 0.010:  99.2/99.0 98.7/97.8 94.2/91.2 80.4/70.8 32.1/20.4  1537
    sgd 0.1,   relu'(0)=0 (any thr):   93.8 88.0 77.7 54.4 17.6 (DB; ZL = DB)             1885
    paper, Figure 9:                   98.5/92.9 96.8/87.5 92.5/76.8 78.3/55.3 49.1/17.6

Chosen: sgd, learning rate 0.01, relu'(0) = 1, threshold 0.09.  Every
relu'(0) = 0 setting stays near 94/87/77/53/17 DB whatever the optimizer;
with relu'(0) = 1, DB at 10-4 units comes within 0.2-4 points of the paper.
No setting brings 2 units above 34% DB (paper 49.1%).  Without the robustness
term, larger rates fit better (sgd 0.3: SSE 263 at threshold 5.2e-4), but
their final losses bunch so tightly that ZL(2) is 0% at threshold/1.5 and 33%
at x1.5.  The chosen ZL is sensitive too (ZL(4) 38-67% over that band).

The reported run (flags/xor.flags: seed 0, 1000 trials; 118 s wall, 76 s
CPU on a shared 2-core machine), DB/ZL: from scratch 99.6/98.3, 98.5/94.2,
95.0/83.3, 74.5/50.8, 26.9/12.8; 2-unit tickets (joint cells) DB 80.8-84.3,
ZL 78.2-82.2 over the six rows (paper: 78.6-91.5 and 56.1-79.4).  Both tables
beside the paper's, and where they differ: docs/XOR.md.
"""

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
DEFAULT_LOSS_THRESHOLD = 0.09
DEFAULT_RELU_GRAD_AT_ZERO = 1.0  # d relu(z)/dz at z = 0 (see the docstring)
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


def _train_chunk(w1, b1, w2, b2, m, x, y, iterations, lr, optimizer="sgd", relu_grad_at_zero=1.0):
    """Full-batch training, in place, on trial-last arrays.

    w1 [2, H, T], b1/w2/m [H, T], b2 [T], x [P, 2], y [P, 1].
    The ReLU's derivative is 1 for z > 0, 0 for z < 0 and ``relu_grad_at_zero`` at z = 0.
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
        active = z > 0.0
        if relu_grad_at_zero:
            active = active + relu_grad_at_zero * (z == 0.0)
        dz = active * w2 * d[:, None, :]  # [P, H, T]
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
          inputs=XOR_INPUTS, labels=XOR_LABELS, optimizer=None, relu_grad_at_zero=None):
    """Trains all networks at once; returns the new params (the input is not modified).

    Masked-out units are zeroed first and never updated, so they stay exactly zero.
    ``relu_grad_at_zero`` (default DEFAULT_RELU_GRAD_AT_ZERO) is the ReLU's derivative at z = 0.
    """
    optimizer = optimizer or DEFAULT_OPTIMIZER
    g0 = DEFAULT_RELU_GRAD_AT_ZERO if relu_grad_at_zero is None else float(relu_grad_at_zero)
    if not 0.0 <= g0 <= 1.0:
        raise ValueError(f"relu_grad_at_zero must lie in [0, 1]: {relu_grad_at_zero}")
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
        _train_chunk(cw1, cb1, cw2, cb2, m[:, s:e], x, y, iterations, learning_rate, optimizer, g0)
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
    rows can be joined with each other (see lth_tf.xor_tables).
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
_TABLE_NAMES = ("rates", "joint_rates", "conditional_rates", "format_table", "main")


def __getattr__(name):
    # The rates, the tables and the command line live in lth_tf.xor_tables (it imports this module);
    # xor.<name> still finds them.
    if name in _TABLE_NAMES:
        from lth_tf import xor_tables

        return getattr(xor_tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from lth_tf.xor_tables import main

    raise SystemExit(main())
