"""Opening a results directory for an experiment: the checks that come before TensorFlow starts.

    with contextlib.ExitStack() as held:
        open_checked(held, cfg, Store(cfg.results_dir()))   # raises ConfigError / StoreError, one line each
        ...                                                 # the directory and its trials stay locked
"""
from __future__ import annotations

import contextlib

from lth_tf.experiment import files, integrity  # no TensorFlow


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
