"""A results directory (lth_tf.experiment.store's layout) as one table: a row per finished (trial, variant, round),
merged over trials written by several processes; a round's curve and the initial values of its surviving weights.

Reads files only (no TensorFlow). The table is built from ``trial_*/*/round_*/result.json`` (written last, so its
presence marks a finished round); ``results.csv`` is only a fallback when no ``result.json`` exists. Unfinished
rounds are ignored and unreadable ``result.json`` files are skipped with a warning line on stderr.
"""
import glob
import json
import os
import re
import sys

import numpy as np
import pandas as pd

from lth_tf.analysis import report_convergence
from lth_tf.experiment.files import DamagedFileError, load_npz

_ROUND_DIR_RE = re.compile(r"trial_(\d+)[/\\]([^/\\]+)[/\\]round_(\d+)$")


class ReportError(Exception):
    """A results directory that cannot be reported on (missing, or no finished rounds)."""


def _warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def load_config(results_dir):
    """Returns ``(hash, config dict)`` from ``config.json``; ``(None, {})`` if it is missing or unreadable."""
    path = os.path.join(results_dir, "config.json")
    if not os.path.exists(path):
        return None, {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        _warn(f"cannot read {path}: {e}")
        return None, {}
    if not isinstance(data, dict):
        return None, {}
    config = data.get("config", {})
    return data.get("hash"), config if isinstance(config, dict) else {}


def _round_dir(results_dir, trial, variant, rnd):
    return os.path.join(results_dir, f"trial_{int(trial)}", str(variant), f"round_{int(rnd)}")


def load_results(results_dir):
    """One row per finished (trial, variant, round), merged over all ``trial_*`` directories.

    Columns are those of ``result.json`` (the ``results.csv`` contract) plus ``round_dir`` (the round's directory).
    ``trial``/``variant``/``round`` come from the directory names when the JSON lacks them; ``pruning`` defaults to
    ``"iterative"``. Sorted by variant, pruning, trial, round. Raises ``ReportError`` if ``results_dir`` is not a
    directory; returns an empty DataFrame if nothing is finished.
    """
    if not os.path.isdir(results_dir):
        raise ReportError(f"results directory not found: {results_dir}")
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "trial_*", "*", "round_*", "result.json"))):
        rdir = os.path.dirname(path)
        m = _ROUND_DIR_RE.search(os.path.relpath(rdir, results_dir))
        if not m:
            continue
        try:
            with open(path) as f:
                row = json.load(f)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            _warn(f"skipping unreadable {path}: {e}")
            continue
        # The directory names are authoritative for where the round's files are.
        row["trial"], row["variant"], row["round"] = int(m.group(1)), m.group(2), int(m.group(3))
        row["round_dir"] = rdir
        if "convergence_iteration" not in row:  # stored before lth_tf kept it: from the round's curve
            row.update(report_convergence.from_curve(load_curve(rdir)))
        rows.append(row)

    if rows:
        df = pd.DataFrame(rows)
    else:
        csv = os.path.join(results_dir, "results.csv")
        df = pd.DataFrame()
        if os.path.exists(csv):
            try:
                df = pd.read_csv(csv)
            except (OSError, ValueError) as e:
                _warn(f"skipping unreadable {csv}: {e}")
                df = pd.DataFrame()
            if len(df) and not {"trial", "variant", "round"} <= set(df.columns):
                _warn(f"skipping {csv}: no trial/variant/round columns")
                df = pd.DataFrame()
            if len(df):
                df["round_dir"] = [_round_dir(results_dir, t, v, r)
                                   for t, v, r in zip(df["trial"], df["variant"], df["round"])]
    if df.empty:
        return df

    if "pruning" not in df.columns:
        df["pruning"] = "iterative"
    df["pruning"] = df["pruning"].fillna("iterative").astype(str)
    df["variant"] = df["variant"].astype(str)
    df["trial"] = df["trial"].astype(int)
    df["round"] = df["round"].astype(int)
    for col in ("weights_remaining", "early_stop_iteration", "test_accuracy_at_early_stop", "test_accuracy",
                "val_loss_at_early_stop", "test_loss", "iterations", "train_seconds", *report_convergence.STATS):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.drop_duplicates(subset=["trial", "variant", "round"], keep="last")
    front = ["trial", "variant", "pruning", "round"]
    df = df[front + [c for c in df.columns if c not in front]]
    return df.sort_values(["variant", "pruning", "trial", "round"]).reset_index(drop=True)


def load_many(results_dirs):
    """`load_results` of several directories, merged (a later directory's row wins for the same trial, variant,
    pruning and round)."""
    frames = [load_results(d) for d in results_dirs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["trial", "variant", "pruning", "round"],
                                                              keep="last")
    return df.sort_values(["variant", "pruning", "trial", "round"]).reset_index(drop=True)


def default_rounds(df, variant="lottery"):
    """Round 0, a middle round and the last finished round of ``variant`` (or of all variants if it has none)."""
    sub = df[df["variant"] == variant] if (df["variant"] == variant).any() else df
    rounds = sorted(sub["round"].unique().tolist())
    if not rounds:
        return []
    picked = [rounds[0], rounds[len(rounds) // 2], rounds[-1]]
    return sorted(set(int(r) for r in picked))


def _curve_variant(df):
    return "lottery" if (df["variant"] == "lottery").any() else sorted(df["variant"].unique())[0]


def _main_pruning(sub):
    prunings = sorted(sub["pruning"].unique())
    return "iterative" if "iterative" in prunings else prunings[0]


def load_curve(round_dir):
    """The round's ``curve.csv`` as a DataFrame, or None if it is missing or unreadable."""
    path = os.path.join(round_dir, "curve.csv")
    if not os.path.exists(path):
        return None
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError) as e:
        _warn(f"skipping unreadable {path}: {e}")
        return None
    if "iteration" not in curve.columns:
        _warn(f"skipping {path}: no iteration column")
        return None
    return curve


def _find_kernel(weights, layer, shape):
    key = f"{layer}/kernel"
    if key in weights:
        return weights[key]
    for k in weights:  # e.g. "<layer>/kernel:0" or a nested layer name
        if k.rsplit("/", 1)[0] == layer and "kernel" in k.rsplit("/", 1)[-1] and weights[k].shape == shape:
            return weights[k]
    return None


def _load_npz(path):
    """The arrays of `path`, or None when it is missing; a damaged one (files.NPZ_ERRORS: truncated, corrupt,
    Python objects) is left out with one warning line, in the words lth_tf.main uses for it."""
    if not os.path.exists(path):
        return None
    try:
        return load_npz(path, "left out of the report (restore it from a copy)")
    except DamagedFileError as e:
        _warn(str(e))
        return None


def surviving_initial_weights(round_dir, trial_dir=None):
    """Initial values of the weights that survive pruning in one round, as ``{layer: 1-D array}`` in mask order.

    Masks come from the round's ``masks.npz``; values from its ``start_weights.npz`` (for the lottery variant these
    are the original initial values under the mask), else from the trial's ``initial_weights.npz``. Returns {} if
    the masks are missing.
    """
    return _surviving(round_dir, trial_dir)[0]


def _surviving(round_dir, trial_dir=None):
    """``(surviving_initial_weights, {layer: kernel size})``."""
    masks = _load_npz(os.path.join(round_dir, "masks.npz"))
    if not masks:
        return {}, {}
    if trial_dir is None:
        trial_dir = os.path.dirname(os.path.dirname(os.path.normpath(round_dir)))
    sources = [_load_npz(os.path.join(round_dir, "start_weights.npz")),
               _load_npz(os.path.join(trial_dir, "initial_weights.npz"))]
    out = {}
    for layer, mask in masks.items():
        mask = mask.astype(bool)
        for weights in sources:
            if weights is None:
                continue
            kernel = _find_kernel(weights, layer, mask.shape)
            if kernel is not None and kernel.shape == mask.shape:
                out[layer] = np.asarray(kernel)[mask].ravel()
                break
        else:
            _warn(f"no initial kernel for layer {layer} of {round_dir}")
    return out, {layer: int(m.size) for layer, m in masks.items()}
