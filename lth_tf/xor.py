"""XOR lottery tickets: the XOR appendix of Frankle & Carbin (arXiv 1803.03635).

What it reproduces
------------------
The paper's XOR experiment (the XOR appendix / table of arXiv 1803.03635; it was
the opening experiment of v1): how often a tiny network learns XOR when trained
from scratch at various widths, and how often a 10-hidden-unit network, pruned
down to 4 or 2 hidden units and reset to its original initialisation, still
learns it.  Every network has 2 inputs, one ReLU hidden layer and one sigmoid
output unit, weights drawn from a normal distribution with standard deviation
0.1 truncated at 2 standard deviations, and is trained for 10,000 iterations.
Rows of the printed table, each a percentage over ``--trials`` (1,000) trials:

* networks of 10, 8, 6, 4 and 2 hidden units trained from scratch;
* the 10-unit networks (the very same trials as the "10" row) pruned to 4 and
  to 2 hidden units, by three hidden-unit magnitude criteria -- input magnitude
  (L2 norm of the unit's incoming weights), output magnitude (|outgoing
  weight|) and magnitude product (input norm x |outgoing weight|) -- either
  one-shot (train, prune to the target in one step, reset the survivors to
  their initial values, retrain) or iteratively (train, prune the 2 lowest
  units, reset, retrain, repeat: 10 -> 8 -> 6 -> 4 -> 2).

Columns: "Decision boundary" (all four XOR points on the right side of the
boundary), "Zero loss" (training loss below ``--loss_threshold``) and
"Success" (both at once -- the paper's notion of a network that learned XOR).

Usage
-----
    python -m lth_tf.xor                        # full table, 1000 trials
    python -m lth_tf.xor --trials=100 --seed=3  # quicker
    python -m lth_tf.xor --flagfile=flags/xor.flags

Flags: ``--trials`` (1000), ``--iterations`` (10000), ``--seed`` (0),
``--learning_rate`` (1.0), ``--loss_threshold`` (1e-3).  A bad value prints a
one-line error and exits with status 2.  The elapsed time is printed after the
table.  The full default run needs about one minute of CPU time (one core; 2.5
minutes of wall time on a loaded, shared 2-core machine).

Choices (the appendix text could not be consulted verbatim while writing this;
where it is silent or unavailable, the most faithful reading was taken):

* Data: the four XOR points (0,0)->0, (0,1)->1, (1,0)->1, (1,1)->0, used as one
  full batch (rather than points sampled in the unit square).
* Network: z = x W1 + b1, h = relu(z), logit = h w2 + b2, p = sigmoid(logit).
  W1 and w2 are truncated normal (std 0.1, redrawn beyond 2 std); biases start
  at zero (the TensorFlow default).  ReLU'(0) = 0.
* Loss and optimiser: mean binary cross-entropy over the four points,
  minimised by plain full-batch gradient descent, learning rate 1.0, for
  10,000 iterations.  (With the four points as one batch, "SGD" is exactly
  this.)  Training is float64 numpy with a hand-written forward and backward
  pass, vectorised over trials: all networks of a stage train at once as
  tensors of shape [trials, ...] (internally trial-last, in cache-sized chunks;
  pruned units are dropped from the batch, which is exact since they are zero).
* Success: correct decision boundary (logit > 0 exactly on the two points
  labelled 1) AND near-zero loss, i.e. mean cross-entropy < 1e-3.  Exact zero
  is unreachable in floating point in 10,000 steps; at learning rate 1.0 a
  network that has found XOR has a loss near 1.4e-4 by then, while a network
  stuck with one point misclassified has a loss above ln(2)/4 ~ 0.17.
* Pruning removes whole hidden units: the unit's incoming weights, bias and
  outgoing weight become zero and are held at zero by a mask on the gradients.
  The criteria are scored on the trained weights of the current (already
  pruned) network; the input norm excludes the hidden bias.  Survivors -- and
  the output bias -- are reset to their values at initialisation before each
  retraining.  Ties are broken towards the lower unit index.
* The "pruned to 4" iterative row is the 10 -> 8 -> 6 -> 4 prefix of the same
  chain that continues to 2 units.  Rates are over all trials, not only over
  the trials whose 10-unit network succeeded.
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
DEFAULT_LEARNING_RATE = 1.0
DEFAULT_LOSS_THRESHOLD = 1e-3
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


def _train_chunk(w1, b1, w2, b2, m, x, y, iterations, lr):
    """Full-batch gradient descent, in place, on trial-last arrays.

    w1 [2, H, T], b1/w2/m [H, T], b2 [T], x [P, 2], y [P, 1].
    """
    inv_p = 1.0 / x.shape[0]
    for _ in range(iterations):
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
        w1 -= lr * g_w1
        b1 -= lr * g_b1
        w2 -= lr * g_w2
        b2 -= lr * g_b2


def train(params, mask=None, iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE,
          inputs=XOR_INPUTS, labels=XOR_LABELS):
    """Trains all networks at once; returns the new params (the input is not modified).

    Masked-out units are zeroed first and never updated, so they stay exactly zero.
    """
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
        _train_chunk(cw1, cb1, cw2, cb2, m[:, s:e], x, y, iterations, learning_rate)
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
    """Magnitude score [trials, hidden] of every hidden unit under ``criterion``."""
    input_norm = np.sqrt(np.sum(params["w1"] ** 2, axis=1))
    output_mag = np.abs(params["w2"])
    if criterion == "input":
        return input_norm
    if criterion == "output":
        return output_mag
    if criterion == "product":
        return input_norm * output_mag
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


def _train_together(jobs, iterations, learning_rate):
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
                        iterations, learning_rate)
        start = 0
        for i, _, cols, mask_arg in members:
            n = mask_arg.shape[0]
            part = slice_params(trained, start, start + n)
            start += n
            width = jobs[i][1].shape[1]
            out[i] = part if cols is None else _scatter(part, cols, width)
    return out


def one_shot_prune(initial, trained, keep, criterion, iterations=DEFAULT_ITERATIONS,
                   learning_rate=DEFAULT_LEARNING_RATE):
    """Prune ``trained`` to ``keep`` units at once, reset to ``initial``, retrain.

    Returns (mask, retrained params).
    """
    full = np.ones(initial["b1"].shape, dtype=bool)
    mask = prune_mask(trained, full, keep, criterion)
    return mask, train(reset(initial, mask), mask, iterations, learning_rate)


def iterative_prune(initial, trained, keep, criterion, step=ITERATIVE_STEP,
                    iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE):
    """Prune ``step`` units at a time (reset and retrain after each) down to ``keep``.

    Returns a list of (units, mask, retrained params), one per round, in order.
    """
    mask = np.ones(initial["b1"].shape, dtype=bool)
    units = mask.shape[1]
    rounds = []
    while units > keep:
        units = max(keep, units - step)
        mask = prune_mask(trained, mask, units, criterion)
        trained = train(reset(initial, mask), mask, iterations, learning_rate)
        rounds.append((units, mask, trained))
    return rounds


def _rates(outcome):
    return {k: float(np.mean(outcome[k])) for k in ("boundary", "zero_loss", "success")}


def run_experiment(trials=DEFAULT_TRIALS, iterations=DEFAULT_ITERATIONS, seed=DEFAULT_SEED,
                   learning_rate=DEFAULT_LEARNING_RATE, loss_threshold=DEFAULT_LOSS_THRESHOLD,
                   hidden_sizes=HIDDEN_SIZES, targets=PRUNE_TARGETS, criteria=CRITERIA):
    """Runs the whole appendix experiment; returns {row key: rates}.

    Row keys: ("scratch", hidden) and (strategy, target, criterion); rates are
    fractions in [0, 1] for "boundary", "zero_loss" and "success".
    The pruned rows start from the trained networks of the BASE_HIDDEN scratch row.
    """
    if BASE_HIDDEN not in hidden_sizes:
        raise ValueError(f"hidden_sizes must include {BASE_HIDDEN}")
    if not targets or not all(0 < t < BASE_HIDDEN for t in targets):
        raise ValueError(f"pruning targets must lie in 1..{BASE_HIDDEN - 1}: {targets}")
    rng = np.random.default_rng(seed)
    initial = {h: init_params(rng, trials, h) for h in hidden_sizes}
    width = max(hidden_sizes)

    def outcome(p):
        return _rates(evaluate(p, loss_threshold=loss_threshold))

    results = {}
    # Stage 1: every from-scratch width (each h-unit network is a zero-padded, masked
    # width-`width` network; _train_together trains each width as a dense batch).
    jobs = [pad_hidden(initial[h], width) for h in hidden_sizes]
    for h, p in zip(hidden_sizes, _train_together(jobs, iterations, learning_rate)):
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
        trained = _train_together(jobs, iterations, learning_rate)
        for key, p in zip(keys, trained):
            if key[0] == "iterative":
                iter_trained[key[2]] = p
            if key[0] == "one-shot" or key[1] in targets:
                results[key] = outcome(p)
        jobs, keys = [], []
    return results


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def format_table(results, trials, iterations=DEFAULT_ITERATIONS, learning_rate=DEFAULT_LEARNING_RATE,
                 loss_threshold=DEFAULT_LOSS_THRESHOLD, seed=DEFAULT_SEED):
    """The appendix table as text, rates as percentages."""
    head = ("Network", "Decision boundary", "Zero loss", "Success")
    rows = []
    for key in results:
        if key[0] == "scratch":
            rows.append((f"{key[1]} hidden units, trained from scratch", key))
    for t in sorted({k[1] for k in results if k[0] != "scratch"}, reverse=True):
        for s in STRATEGIES:
            for c in CRITERIA:
                key = (s, t, c)
                if key in results:
                    rows.append((f"10 -> {t} units, {s}, {CRITERION_NAMES[c]}", key))
    w0 = max(len(head[0]), *(len(r[0]) for r in rows))
    widths = [w0] + [len(h) for h in head[1:]]
    lines = [
        f"XOR: percent of {trials} trials ({iterations} iterations of full-batch gradient descent, "
        f"learning rate {learning_rate:g}, seed {seed})",
        f"Success = correct decision boundary on all four XOR points AND loss < {loss_threshold:g}",
        "",
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))),
        "  ".join("-" * w for w in widths),
    ]
    previous_group = None
    for label, key in rows:
        group = "scratch" if key[0] == "scratch" else key[1]
        if previous_group is not None and group != previous_group:
            lines.append("")
        previous_group = group
        r = results[key]
        cells = [f"{100.0 * r[k]:.1f}%" for k in ("boundary", "zero_loss", "success")]
        lines.append("  ".join([label.ljust(w0)] + [c.rjust(w) for c, w in zip(cells, widths[1:])]))
    return "\n".join(lines)


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
    flags.DEFINE_float("learning_rate", DEFAULT_LEARNING_RATE, "Gradient-descent learning rate.",
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
                             learning_rate=fv.learning_rate, loss_threshold=fv.loss_threshold)
    elapsed = time.perf_counter() - start
    print(format_table(results, fv.trials, fv.iterations, fv.learning_rate, fv.loss_threshold, fv.seed))
    print(f"\nElapsed: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
