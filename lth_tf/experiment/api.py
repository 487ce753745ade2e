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
(cast to float32 features, int32 labels): normalise them yourself. A tenth of the training examples (at most
5,000; seeded by `seed`) is held out for validation (early stopping), as the command line does for its datasets
(lth_tf.data.arrays); the dataset's name in the configuration is `arrays_<digest of the arrays>`, which means
them in this process (`arrays.remember`). Errors in the configuration raise
lth_tf.experiment.config.ConfigError (a ValueError) with the command line's one-line message.
"""
from __future__ import annotations

import contextlib
import dataclasses

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
    if data is not None:  # the arrays become dataset arrays_<digest> in this process (lth_tf.data.arrays.remember)
        cfg = dataclasses.replace(cfg, dataset=_remember(data))
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
        dataset = loading.load(cfg.dataset, cfg.data_dir, seed=cfg.seed)
        return experiment.run(cfg, store, on_event=on_event, dataset=dataset)


def open_checked(held: contextlib.ExitStack, cfg, store, chief: bool = True) -> None:
    """Everything that can be checked before TensorFlow starts, so that a refusal is one line and comes before
    the data loads: the directory's layout (no symbolic links inside), the directory (or --trial_index trial)
    lock, then under the config lock: config.json checked (two processes can neither run one trial nor both pass
    the configuration check), every trial's lock (a --trial_index run started beside a full run is refused at
    once, not when the full run reaches its trial) and the damaged-file check, and only then config.json
    written. The locks stay held until `held` closes. A non-chief worker only reads
    the chief's directory. Raises config.ConfigError or store.StoreError (one line each)."""
    if not chief:
        files.check_writable(store.root)
        store.check_compatible(cfg.identity_hash(), cfg.identity())
        return
    lock = ".lock" if cfg.trial_index is None else f"trial_{cfg.trial_index}/.lock"

    def check():  # before config.json is written: a refused run leaves it as it was
        for trial in cfg.trial_ids():
            held.enter_context(store.trial_lock(trial))
        integrity.check(store, cfg.trial_ids())
    held.enter_context(store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity(), lock_name=lock, check=check))


def _remember(data) -> str:
    """Checks (x_train, y_train, x_test, y_test) and remembers them (lth_tf.data.arrays) as `arrays_<digest>`."""
    from lth_tf.data import arrays
    try:
        x_tr, y_tr, x_te, y_te = data
        checked = arrays.check(x_tr, y_tr, x_te, y_te, where="data")
    except (TypeError, ValueError):
        raise ConfigError("data must be four arrays (x_train, y_train, x_test, y_test)") from None
    except datasets.DataError as e:
        raise ConfigError(str(e)) from None
    name = f"arrays_{arrays.spec_of(checked).fingerprint[:12]}"
    arrays.remember(name, *checked)
    return name
