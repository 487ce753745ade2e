"""The XOR appendix's two tables (Frankle & Carbin, arXiv 1803.03635 v1, Figures 9 and 10) from per-trial outcomes.

An outcome is {"boundary": bool [trials], "zero_loss": bool [trials]} (see ``lth_tf.xor.run_experiment``);
trial i of every pruned row is a ticket of trial i of the ten-unit row, ``base`` below.

Figure 9 (from scratch): rate[k] = #outcome[k] / #trials.

Figure 10 (pruned), as the paper defines its cells.  The caption counts only the runs in which both the
original ten-unit network and the pruned ticket found the right boundary (DB cell) or reached zero loss (ZL
cell), and footnote 5 reads its 2-unit ZL cell, 79.4%, as a share of all networks (79.4% of networks started
with ten units, reached zero loss and were pruned into two-unit networks that also did), so::

    joint[k]       = #(base[k] & ticket[k]) / #trials               the printed cell
    conditional[k] = #(base[k] & ticket[k]) / #base[k] = joint[k] / rate(base)[k]

with k the same measure on both sides.  The text's "84.9%" is the conditional: 79.4 / 93.5, "of the 93.5% of
ten hidden unit networks that reached zero loss".
"""
import numpy as np

from lth_tf.xor import network, tickets

MEASURES = tickets.MEASURES

# The paper's numbers, percent of 1000 trials: Figure 9 {hidden: (DB, ZL)}; Figure 10 {(strategy, criterion):
# {width: (DB, ZL)}} (its first row is one-shot, the other three iterative); and the conditional rates the text
# quotes for iterative magnitude product (A.2: "99% and 97%" at four units; 92.8% and 84.9% at two).
FIGURE9 = {10: (98.5, 92.9), 8: (96.8, 87.5), 6: (92.5, 76.8), 4: (78.3, 55.3), 2: (49.1, 17.6)}
FIGURE10 = {
    ("one-shot", "product"): {10: (99.2, 93.3), 4: (98.0, 90.3), 2: (82.4, 65.3)},
    ("iterative", "input"): {10: (98.9, 93.5), 4: (97.9, 92.2), 2: (83.8, 76.5)},
    ("iterative", "output"): {10: (99.0, 93.3), 4: (96.9, 85.9), 2: (78.6, 56.1)},
    ("iterative", "product"): {10: (98.5, 92.9), 4: (97.6, 90.3), 2: (91.5, 79.4)},
}
TEXT_CONDITIONAL = {("iterative", "product"): {4: (99.0, 97.0), 2: (92.8, 84.9)}}


def rates(outcome):
    """Rates over all trials: {"boundary": fraction, "zero_loss": fraction}."""
    return {k: float(np.mean(np.asarray(outcome[k], bool))) for k in MEASURES}


def joint_rates(outcome, base):
    """Figure 10's cells: #(base[k] and outcome[k]) / #trials, per measure k.

    >>> joint_rates({"boundary": [1, 1, 0, 1], "zero_loss": [1, 0, 0, 1]},
    ...             {"boundary": [1, 1, 1, 0], "zero_loss": [1, 1, 0, 0]})
    {'boundary': 0.5, 'zero_loss': 0.25}
    """
    return {k: float(np.mean(np.asarray(base[k], bool) & np.asarray(outcome[k], bool))) for k in MEASURES}


def conditional_rates(outcome, base):
    """#(base[k] and outcome[k]) / #base[k], per measure k; NaN where no trial satisfies base[k].

    ``base`` is the ten-unit outcome (each measure conditioned on itself, as the paper's text does), or one
    bool array that conditions both measures.

    >>> conditional_rates({"boundary": [1, 1, 0, 1], "zero_loss": [1, 0, 0, 1]},
    ...                   {"boundary": [1, 1, 1, 0], "zero_loss": [1, 1, 0, 0]})
    {'boundary': 0.6666666666666666, 'zero_loss': 0.5}
    """
    out = {}
    for k in MEASURES:
        cond = np.asarray(base[k] if isinstance(base, dict) else base, bool)
        n = int(cond.sum())
        out[k] = int((cond & np.asarray(outcome[k], bool)).sum()) / n if n else float("nan")
    return out


def _pct(x):
    return "n/a" if np.isnan(x) else f"{100.0 * x:.1f}"


def _row(label, cells, first=30, cell=9):
    return f"{label:<{first}}" + "".join(f"{c:>{cell}}" for c in cells)


def _groups(names, first=30, cell=9):
    """A heading over pairs of cells (DB, ZL)."""
    return " " * first + "".join(f"{n:>{2 * cell}}" for n in names)


def _paper_row(numbers, widths):
    return _row("  paper", [f"{v:.1f}" if v is not None else "" for w in widths
                            for v in numbers.get(w, (None, None))])


def format_table(results, trials, iterations=network.DEFAULT_ITERATIONS, learning_rate=network.DEFAULT_LEARNING_RATE,
                 loss_threshold=network.DEFAULT_LOSS_THRESHOLD, seed=network.DEFAULT_SEED, optimizer=None,
                 relu_grad_at_zero=None):
    """Figure 9 and Figure 10 (joint cells, as the paper prints them) as text, then the conditional rates,
    each with the paper's numbers on a "paper" line below the matching row."""
    optimizer = optimizer or network.DEFAULT_OPTIMIZER
    g0 = network.DEFAULT_RELU_GRAD_AT_ZERO if relu_grad_at_zero is None else relu_grad_at_zero
    base_h = network.BASE_HIDDEN
    opt_name = "full-batch gradient descent" if optimizer == "sgd" else "full-batch Adam"
    lines = [
        f"XOR ({trials} trials, {iterations} iterations of {opt_name}, learning rate {learning_rate:g}, "
        f"ReLU'(0) = {g0:g}, seed {seed})",
        f"DB = decision boundary (all four points on the right side); ZL = zero loss "
        f"(mean cross-entropy < {loss_threshold:g})",
        "",
        "Figure 9: trained from scratch, percent of all trials",
        f"{'Hidden units':<14}{'DB':>7}{'ZL':>7}{'paper DB':>10}{'paper ZL':>10}",
    ]
    for h in sorted((k[1] for k in results if k[0] == "scratch"), reverse=True):
        r = rates(results[("scratch", h)])
        paper = [f"{v:.1f}" for v in FIGURE9[h]] if h in FIGURE9 else ["", ""]
        lines.append(f"{h:<14}{_pct(r['boundary']):>7}{_pct(r['zero_loss']):>7}{paper[0]:>10}{paper[1]:>10}")

    base = results[("scratch", base_h)]
    targets = sorted({k[1] for k in results if k[0] != "scratch"}, reverse=True)
    widths = [base_h] + targets
    rows = [(s, c) for s in network.STRATEGIES for c in network.CRITERIA
            if any((s, t, c) in results for t in targets)]
    label = {(s, c): f"{s[0].upper() + s[1:]}, {network.CRITERION_NAMES[c]}" for s, c in rows}
    heading = _groups([f"{w} units" if w == base_h else f"{w} units (pruned)" for w in widths])
    measures = _row("Strategy", ["DB", "ZL"] * len(widths))
    lines += [
        "",
        f"Figure 10: {base_h}-unit networks pruned by hidden-unit magnitude and reset to their initialisation.",
        f"Percent of all {trials} trials in which the {base_h}-unit network AND its pruned ticket both found the "
        "boundary (DB),",
        "resp. both reached zero loss (ZL), as the paper's caption and footnote 5 define the cells. The "
        f"{base_h}-unit columns are",
        "the same networks in every row here (the paper trained a new set per row).",
        heading, measures,
    ]
    cells = []
    for w in widths:
        key = ("scratch", w)
        r = rates(results[key]) if key in results else {k: float("nan") for k in MEASURES}
        cells += [_pct(r[k]) for k in MEASURES]
    lines.append(_row("From scratch (Figure 9)", cells))
    for s, c in rows:
        cells = []
        for w in widths:
            out = base if w == base_h else results.get((s, w, c))
            r = joint_rates(out, base) if out is not None else {k: float("nan") for k in MEASURES}
            cells += [_pct(r[k]) for k in MEASURES]
        lines.append(_row(label[(s, c)], cells))
        if (s, c) in FIGURE10:
            lines.append(_paper_row(FIGURE10[(s, c)], widths))

    n_db, n_zl = int(np.sum(base["boundary"])), int(np.sum(base["zero_loss"]))
    lines += [
        "",
        f"Conditional (not the paper's cells): percent of the trials whose {base_h}-unit network succeeded in the "
        f"same measure",
        f"(DB: {n_db} trials, ZL: {n_zl} trials); the paper's text quotes these for iterative magnitude product.",
        _groups([f"{w} units (pruned)" for w in targets]),
        _row("Strategy", ["DB", "ZL"] * len(targets)),
    ]
    for s, c in rows:
        cells = []
        for w in targets:
            out = results.get((s, w, c))
            r = conditional_rates(out, base) if out is not None else {k: float("nan") for k in MEASURES}
            cells += [_pct(r[k]) for k in MEASURES]
        lines.append(_row(label[(s, c)], cells))
        if (s, c) in TEXT_CONDITIONAL:
            lines.append(_paper_row(TEXT_CONDITIONAL[(s, c)], targets))
    return "\n".join(line.rstrip() for line in lines)


# ----------------------------------------------------------------------------
# Command line of ``python -m lth_tf.xor``
# ----------------------------------------------------------------------------
def _define_flags(flag_values):
    import math

    from absl import flags

    def positive(name):
        flags.register_validator(name, lambda v: math.isfinite(v) and v > 0,
                                 message=f"--{name} must be a positive finite number", flag_values=flag_values)

    flags.DEFINE_integer("trials", network.DEFAULT_TRIALS, "Independent networks per table row.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("iterations", network.DEFAULT_ITERATIONS, "Gradient-descent iterations per training.",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("seed", network.DEFAULT_SEED, "Random seed of the initialisations.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_float("learning_rate", network.DEFAULT_LEARNING_RATE, "Learning rate of the optimizer.",
                       flag_values=flag_values)
    flags.DEFINE_enum("optimizer", network.DEFAULT_OPTIMIZER, list(network.OPTIMIZERS),
                      "sgd: full-batch gradient descent; adam: full-batch Adam (TensorFlow defaults).",
                      flag_values=flag_values)
    flags.DEFINE_float("loss_threshold", network.DEFAULT_LOSS_THRESHOLD,
                       "A network 'reaches zero loss' when its mean cross-entropy is below this.",
                       flag_values=flag_values)
    flags.DEFINE_float("relu_grad_at_zero", network.DEFAULT_RELU_GRAD_AT_ZERO,
                       "The ReLU's derivative at z = 0 in backpropagation, in [0, 1] (1: as TensorFlow "
                       "differentiates tf.maximum(z, 0); 0: as tf.nn.relu).", flag_values=flag_values)
    positive("learning_rate")
    positive("loss_threshold")
    flags.register_validator("relu_grad_at_zero", lambda v: math.isfinite(v) and 0 <= v <= 1,
                             message="--relu_grad_at_zero must lie in [0, 1]", flag_values=flag_values)


def main(argv=None):
    """Entry point of ``python -m lth_tf.xor``; flags live on a private FlagValues."""
    import sys
    import time

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
    results = tickets.run_experiment(trials=fv.trials, iterations=fv.iterations, seed=fv.seed,
                                 learning_rate=fv.learning_rate, loss_threshold=fv.loss_threshold,
                                 optimizer=fv.optimizer, relu_grad_at_zero=fv.relu_grad_at_zero)
    elapsed = time.perf_counter() - start
    print(format_table(results, fv.trials, fv.iterations, fv.learning_rate, fv.loss_threshold, fv.seed,
                       fv.optimizer, fv.relu_grad_at_zero))
    print(f"\nElapsed: {elapsed:.1f} s")
    return 0
