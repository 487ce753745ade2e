"""lth_tf.xor: XOR lottery tickets, the XOR appendix of Frankle & Carbin (arXiv 1803.03635 v1).

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

Usage
-----
    python -m lth_tf.xor                        # full tables, 1000 trials
    python -m lth_tf.xor --trials=100 --seed=3  # quicker
    python -m lth_tf.xor --flagfile=flags/xor.flags

    >>> from lth_tf import xor
    >>> results = xor.run_experiment(trials=20, iterations=300, learning_rate=0.3)
    >>> base = results[("scratch", 10)]
    >>> cell = xor.joint_rates(results[("iterative", 2, "product")], base)

Flags: ``--trials`` (1000), ``--iterations`` (10000), ``--seed`` (0),
``--optimizer`` (sgd), ``--learning_rate`` (0.01), ``--loss_threshold``
(0.09), ``--relu_grad_at_zero`` (1).  A bad value prints one line and exits
with status 2.  The elapsed time is printed after the tables.

Lives here: network.py (the network: initialisation, numpy training, evaluation, and how its unstated
settings were chosen), tickets.py (hidden-unit scores, one-shot and iterative pruning, run_experiment),
tables.py (the rates and the two tables beside the paper's, the command line), __main__.py
(`python -m lth_tf.xor`). May import: numpy and absl only (nothing else of lth_tf but _env); nothing
imports it.
"""
from lth_tf.xor.network import (  # noqa: F401  (the public names, as `lth_tf.xor.<name>`)
    BASE_HIDDEN,
    CRITERIA,
    CRITERION_NAMES,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_LOSS_THRESHOLD,
    DEFAULT_OPTIMIZER,
    DEFAULT_RELU_GRAD_AT_ZERO,
    DEFAULT_SEED,
    DEFAULT_TRIALS,
    HIDDEN_SIZES,
    INIT_STDDEV,
    ITERATIVE_STEP,
    OPTIMIZERS,
    PRUNE_TARGETS,
    STRATEGIES,
    XOR_INPUTS,
    XOR_LABELS,
    apply_mask,
    concat_params,
    cross_entropy,
    evaluate,
    init_params,
    logits,
    pad_hidden,
    slice_params,
    train,
    truncated_normal,
)
from lth_tf.xor.tables import (  # noqa: F401
    FIGURE9,
    FIGURE10,
    TEXT_CONDITIONAL,
    conditional_rates,
    format_table,
    joint_rates,
    main,
    rates,
)
from lth_tf.xor.tickets import (  # noqa: F401
    MEASURES,
    iterative_prune,
    one_shot_prune,
    prune_mask,
    reset,
    run_experiment,
    unit_scores,
)
