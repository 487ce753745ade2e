"""Lottery-ticket experiments from Python: `lth_tf.run_experiment`, the command line's experiment as a function;
and `open_checked`, the checks before TensorFlow starts that it shares with the command lines (main.py,
instability.py).

It writes the same results directory as `python -m lth_tf.main` (config.json, rounds, results.csv; report,
export and a rerun of the command line read it), resumes what is there, and returns the results table:

    import lth_tf
    import tf_keras as keras

    def my_model():                                   # an untrained tf_keras model, logits out
        inputs = keras.Input(shape=(40,))
        x = keras.layers.Dense(64, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(10)(x))

    rows = lth_tf.run_experiment(model=my_model, dataset="mnist1d", rounds=3, iterations=600,
                                 variants=("lottery", "reinit"), output_dir="results/mine")
    # rows: one dict per finished (trial, variant, round), the rows of results.csv;
    # pandas.DataFrame(rows) for a DataFrame.

    # your own arrays: (x_train, y_train, x_test, y_test), labels 0..K-1
    rows = lth_tf.run_experiment(model=my_model, data=(x_train, y_train, x_test, y_test), rounds=3)

`model` is a function (as `--model=package.module:function`; its name `module:qualname` and its built
architecture are the configuration's identity) or a model name (`"conv2"`). `data` arrays are used as given
(cast to float32 features, int32 labels): normalise them yourself. A tenth of the training examples (seeded by
`seed`) is held out for validation (early stopping), as the command line does for its datasets; the dataset's
name in the configuration is `arrays_<digest of the arrays>`. Errors in the configuration raise
lth_tf.experiment.config.ConfigError (a ValueError) with the command line's one-line message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import numpy as np

from lth_tf.data import datasets
from lth_tf.experiment import files, integrity  # no TensorFlow
from lth_tf.experiment.config import Config, ConfigError
from lth_tf.experiment.store import Store


def run_experiment(config: Config | None = None, *, model=None, data=None, on_event=None, **fields) -> list:
    """Runs (or resumes) the experiment; returns the results table: a list of dicts, one per finished
    (trial, variant, round), with results.csv's columns.

    config: a Config (None: Config()'s defaults); fields: Config fields to replace in it (rounds=3, ...).
    model: a function returning an untrained tf_keras model, or a model name.
    data: (x_train, y_train, x_test, y_test) numpy arrays, instead of a named dataset.
    on_event: called with each progress event (lth_tf.experiment.plan.Event); nothing is printed.
    """
    cfg = dataclasses.replace(config or Config(), **fields)
    if callable(model):
        from lth_tf.models import user
        name = user.name_of(model)
        user.register(name, model)
        cfg = dataclasses.replace(cfg, model=name)
    elif model is not None:
        cfg = dataclasses.replace(cfg, model=str(model))
    dataset = None
    if data is not None:
        arrays, spec, name = _arrays(data)
        datasets.DATASETS[name] = spec  # this process's registry: Config.resolve reads shapes and sizes there
        cfg = dataclasses.replace(cfg, dataset=name)
    cfg = cfg.resolve()
    if cfg.strategy != "default":  # strategies configure TensorFlow before its first op: a fresh process's job
        raise ConfigError(f"strategy={cfg.strategy!r} runs from the command line (python -m lth_tf.main, "
                          f"lth_tf.launch), not from run_experiment")
    store = Store(cfg.results_dir())
    with contextlib.ExitStack() as held:
        open_checked(held, cfg, store)
        from lth_tf.data import loading  # starts TensorFlow
        from lth_tf.experiment import distribute, experiment
        if cfg.deterministic:
            distribute.enable_determinism(cfg.seed)
        if data is not None:
            dataset = _dataset(name, spec, arrays, cfg.seed)
        else:
            dataset = loading.load(cfg.dataset, cfg.data_dir, seed=cfg.seed)
        return experiment.run(cfg, store, on_event=on_event, dataset=dataset)


def open_checked(held: contextlib.ExitStack, cfg, store, chief: bool = True) -> None:
    """Everything that can be checked before TensorFlow starts, so that a refusal is one line and comes before
    the data loads: the directory (or --trial_index trial) lock, then config.json checked and written under the
    config lock (two processes can neither run one trial nor both pass the configuration check), every trial's
    lock (a --trial_index run started beside a full run is refused at once, not when the full run reaches its
    trial), and the damaged-file check. The locks stay held until `held` closes. A non-chief worker only reads
    the chief's directory. Raises config.ConfigError or store.StoreError (one line each)."""
    if not chief:
        files.check_writable(store.root)
        store.check_compatible(cfg.identity_hash(), cfg.identity())
        return
    lock = ".lock" if cfg.trial_index is None else f"trial_{cfg.trial_index}/.lock"
    held.enter_context(store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity(), lock_name=lock))
    for trial in cfg.trial_ids():
        held.enter_context(store.trial_lock(trial))
    integrity.check(store, cfg.trial_ids())


def _arrays(data) -> tuple:
    """Checks (x_train, y_train, x_test, y_test); returns the arrays, their DatasetSpec and name."""
    try:
        x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in data)
    except (TypeError, ValueError):
        raise ConfigError("data must be four arrays (x_train, y_train, x_test, y_test)") from None
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise ConfigError(f"data: {len(x_tr)} training examples with {len(y_tr)} labels, {len(x_te)} test examples "
                          f"with {len(y_te)} labels; they must match")
    if x_tr.shape[1:] != x_te.shape[1:] or len(x_tr) < 2 or len(x_te) < 1:
        raise ConfigError(f"data: training examples of shape {x_tr.shape[1:]} and test examples of shape "
                          f"{x_te.shape[1:]}; they must agree, with at least 2 training and 1 test example")
    labels = np.concatenate([y_tr.ravel(), y_te.ravel()])
    if y_tr.ndim != 1 or y_te.ndim != 1 or not np.all(np.equal(np.mod(labels, 1), 0)) or labels.min() < 0:
        raise ConfigError("data: labels must be one whole number >= 0 per example (class indices, not one-hot)")
    x_tr, x_te = x_tr.astype(np.float32, copy=False), x_te.astype(np.float32, copy=False)
    y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)
    digest = hashlib.sha256()
    for a in (x_tr, y_tr, x_te, y_te):
        digest.update(str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    spec = datasets.DatasetSpec(tuple(int(d) for d in x_tr.shape[1:]), int(labels.max()) + 1,
                                max(1, len(x_tr) // 10), len(x_tr), loader="arrays")
    return (x_tr, y_tr, x_te, y_te), spec, f"arrays_{digest.hexdigest()[:12]}"


def _dataset(name: str, spec, arrays: tuple, seed: int):
    """The Dataset the experiment trains on: the validation split held out of train as loading.load does."""
    from lth_tf.data import loading, pipelines
    x_tr, y_tr, x_te, y_te = arrays
    train, val = loading.split_indices(len(x_tr), spec.validation_size, seed)
    return pipelines.Dataset(name, spec.input_shape, spec.num_classes, "arrays passed to run_experiment",
                             x_tr[train], y_tr[train], x_tr[val], y_tr[val], x_te, y_te)
