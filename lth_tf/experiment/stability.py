"""The instability sweep over rewind iterations (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

For each k in `rewind_iterations` the ordinary experiment runs with --rewind_iteration=k in its own store,
ROOT/rewind_<k>/ (IMP masks found with rewinding to k; the trial's W_k is its rewind_weights.npz), and with
`plan.PairSpec` each trial then trains two copies per (round, variant) from W_k to T with different SGD
noise and measures the error barrier on the linear path between them (lth_tf.experiment.interpolation):

    instability = max_a error((1 - a) W1 + a W2) - (error(W1) + error(W2)) / 2      stable: instability < threshold

The tables at ROOT (a public contract), regenerated from the stores' pair results after every k:

    instability.csv          trial, variant, rewind_iteration, round, alpha, weights_remaining, split, error
    instability_summary.csv  trial, variant, rewind_iteration, round, weights_remaining, instability_test,
                             instability_train, accuracy_end_points, stable

    cfg = Config(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=300).resolve()
    stability.sweep(cfg, [0, 100], plan.PairSpec(variants=("lottery", "random")), "results/inst")
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re

from lth_tf.experiment.config import Config
from lth_tf.experiment.files import _csv_bytes, atomic_write
from lth_tf.experiment.store import Store

PATH_COLUMNS = ["trial", "variant", "rewind_iteration", "round", "alpha", "weights_remaining", "split", "error"]
SUMMARY_COLUMNS = ["trial", "variant", "rewind_iteration", "round", "weights_remaining", "instability_test",
                   "instability_train", "accuracy_end_points", "stable"]


def store_dir(root: str, k: int) -> str:
    return os.path.join(root, f"rewind_{k}")


def config_for(config: Config, k: int, root: str) -> Config:
    """The experiment whose rounds the pairs at rewind iteration k start from: IMP with rewinding to k."""
    return dataclasses.replace(config, rewind_iteration=int(k), variants=("lottery",),
                               output_dir=store_dir(root, k)).resolve()


def sweep(config: Config, rewind_iterations, pairs, root: str, on_event=None, dataset=None,
          threshold: float = 0.02, lock_name: str = ".lock", stores=None) -> list:
    """Runs every unfinished round and pair for each k; writes and returns the summary rows.

    on_event(k, event) receives the experiment's events (lth_tf.experiment.plan.Event). stores: {k: Store} already
    opened (locked, configuration checked) by the caller, as the command line does before TensorFlow starts;
    the stores of other k are opened here with `lock_name`, one at a time."""
    from lth_tf.data import loading as data_lib
    from lth_tf.experiment import experiment

    dataset = dataset or data_lib.load(config.dataset, config.data_dir, seed=config.seed)
    for k in rewind_iterations:
        cfg = config_for(config, k, root)
        emit = (lambda event, k=k: on_event(k, event)) if on_event else None
        if stores and k in stores:
            experiment.run(cfg, stores[k], on_event=emit, dataset=dataset, pairs=pairs)
        else:
            store = Store(cfg.results_dir())
            with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity(), lock_name=lock_name):
                experiment.run(cfg, store, on_event=emit, dataset=dataset, pairs=pairs)
        write_tables(root, threshold)
    return write_tables(root, threshold)


def pair_results(root: str) -> list:
    """Every finished pair under ROOT/rewind_*/, sorted by (rewind_iteration, trial, variant, round)."""
    rows = []
    for directory in glob.glob(os.path.join(root, "rewind_*")):
        if re.fullmatch(r"rewind_\d+", os.path.basename(directory)):
            rows.extend(Store(directory).pair_results())
    return sorted(rows, key=lambda r: (r["rewind_iteration"], r["trial"], r["variant"], r["round"]))


def tables(root: str, threshold: float = 0.02) -> tuple:
    """(path rows, summary rows) of every finished pair under ROOT."""
    path_rows, summary_rows = [], []
    for result in pair_results(root):
        key = {name: result[name] for name in ("trial", "variant", "rewind_iteration", "round")}
        for split, errors in sorted(result["errors"].items()):
            for alpha, err in zip(result["alphas"], errors):
                path_rows.append(dict(key, alpha=alpha, weights_remaining=result["weights_remaining"],
                                      split=split, error=err))
        summary_rows.append(dict(key, **{name: result[name] for name in SUMMARY_COLUMNS if name in result},
                                 stable=bool(result["instability_test"] < threshold)))
    return path_rows, summary_rows


def write_tables(root: str, threshold: float = 0.02) -> list:
    """Writes ROOT/instability.csv and ROOT/instability_summary.csv; returns the summary rows."""
    path_rows, summary_rows = tables(root, threshold)
    atomic_write(os.path.join(root, "instability.csv"), _csv_bytes(path_rows, PATH_COLUMNS))
    atomic_write(os.path.join(root, "instability_summary.csv"), _csv_bytes(summary_rows, SUMMARY_COLUMNS))
    return summary_rows
