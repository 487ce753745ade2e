"""Export a winning ticket from a results directory: a plain Keras model, a TFLite file, and their sizes.

    python -m lth_tf.export RESULTS_DIR --round=R [--trial=0] [--variant=lottery] [--out=DIR]
                                        [--weights=trained|initial]

  --weights=trained   (default) the round's trained weights (weights.npz): a sparse network ready to use.
  --weights=initial   the ticket at initialisation (start_weights.npz): the surviving weights at the values
                      the round started from (the initial, or late-rewound, weights), pruned entries zero.

How: build the model named in config.json (lth_tf.models.networks.build), restore the round's weights, wrap it
with the round's masks (lth_tf.pruning.masks.wrap: tfmot PruneLowMagnitude) and tfmot.sparsity.keras.strip_pruning
it. The result is a plain Keras model (no tfmot needed to load it) whose pruned kernel entries are exactly zero.

Writes to OUT (default RESULTS_DIR/export/trial_<t>_<variant>_round_<r>_<weights>):

  ticket.keras, ticket.h5   tf_keras.models.load_model(path, compile=False): uncompiled, outputs logits
  ticket.tflite             tf.lite.TFLiteConverter.from_keras_model, float32
  export.json               what was exported, per-layer sparsity, and the sizes below

and prints each file's size, raw and gzip-compressed, next to the dense round-0 model of the same trial saved the
same way. That is tfmot's way of showing what pruning buys: the formats store kernels densely, so the raw sizes
hardly change, while the zeros compress.

From Python:

    from lth_tf import export
    info = export.export("results/run1", round_=3)      # the dict written to export.json
    info["files"]["keras"], info["sizes"]["ticket"]["h5"]["gzip"]
"""
from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import sys
import tempfile
import warnings

from lth_tf import _env  # noqa: F401
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from lth_tf.data import datasets, lookup
from lth_tf.experiment.files import StoreError, atomic_write, check_writable
from lth_tf.experiment import store as store_lib
from lth_tf.models import networks, specs
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind

WEIGHTS = {"trained": "weights", "initial": "start_weights"}
FORMATS = ("keras", "h5", "tflite")


class ExportError(Exception):
    """The export cannot be done as asked; str(e) is one line saying why."""


def default_out(results_dir: str, trial: int, variant: str, round_: int, weights: str) -> str:
    return os.path.join(results_dir, "export", f"trial_{trial}_{variant}_round_{round_}_{weights}")


def _check(results_dir: str, trial: int, variant: str, round_: int, weights: str) -> dict:
    """Validates the request before anything is built or written; returns the run's config dict."""
    if weights not in WEIGHTS:
        raise ExportError(f"--weights must be one of {', '.join(WEIGHTS)}, got '{weights}'")
    if not os.path.isdir(results_dir):
        raise ExportError(f"results directory '{results_dir}' does not exist")
    try:
        saved = store_lib.Store(results_dir).read_config()
    except StoreError as e:
        raise ExportError(str(e)) from None
    if not saved or "config" not in saved:
        raise ExportError(f"'{results_dir}' is not an lth_tf results directory (no config.json)")
    config = saved["config"]
    if config.get("model") not in specs.MODELS or _dataset_spec(config) is None:
        raise ExportError(f"'{results_dir}/config.json' names an unknown model or dataset "
                          f"({config.get('model')!r}, {config.get('dataset')!r})")
    store = store_lib.Store(results_dir)
    if not store.is_done(trial, variant, round_):
        done = sorted(r["round"] for r in store.results() if r["trial"] == trial and r["variant"] == variant)
        have = f"finished rounds: {', '.join(map(str, done))}" if done else "no finished rounds"
        raise ExportError(f"round {round_} of trial {trial}, variant '{variant}' is not finished in "
                          f"'{results_dir}' ({have})")
    return config


def build_ticket(results_dir: str, round_: int, trial: int = 0, variant: str = "lottery",
                 weights: str = "trained"):
    """The round's network as a stripped (plain) Keras model, and its masks. Raises ExportError."""
    config = _check(results_dir, trial, variant, round_, weights)
    store = store_lib.Store(results_dir)
    masks = store.load_round(trial, variant, round_, "masks")
    values = store.load_round(trial, variant, round_, WEIGHTS[weights])
    return _stripped(config, values, masks), masks


def _dataset_spec(config: dict):
    """The dataset's spec (a registry name, a tfds name, module:function), or None where it cannot be had."""
    try:
        return lookup.spec_for(str(config.get("dataset")), config.get("data_dir"))
    except datasets.DataError:
        return None


def _stripped(config: dict, values: dict, masks: dict):
    spec = _dataset_spec(config)
    # The seed does not matter: every weight is overwritten from the stored values.
    model = networks.build(config["model"], spec.input_shape, spec.num_classes, seed=0,
                         dropout=config.get("dropout") or 0.0)
    try:
        rewind.restore(model, values, masks)
    except KeyError as e:
        raise ExportError(f"stored weights do not fit model '{config['model']}': {e.args[0]}") from None
    # tfmot's path: wrap with the masks, then strip the wrappers; what is left is a plain model with zeros.
    return tfmot.sparsity.keras.strip_pruning(pruning.wrap(model, masks))


@contextlib.contextmanager
def _quiet():
    """Silences what saving logs about itself: tf_keras warns that an uncompiled model has no compiled metrics
    and calls .h5 "legacy"; the TFLite converter announces its temporary SavedModel ("Assets written to")."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _save(model, directory: str, stem: str) -> dict:
    """Saves `model` as .keras, .h5 and .tflite; returns {format: path}."""
    paths = {fmt: os.path.join(directory, f"{stem}.{fmt}") for fmt in FORMATS}
    with _quiet():
        # The network only, uncompiled (as in tfmot's guide): nothing of an optimizer goes into the files.
        model.save(paths["keras"])
        model.save(paths["h5"], include_optimizer=False)
        tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with open(paths["tflite"], "wb") as f:
        f.write(tflite)
    return paths


def _sizes(paths: dict) -> dict:
    sizes = {}
    for fmt, path in paths.items():
        with open(path, "rb") as f:
            raw = f.read()
        sizes[fmt] = {"raw": len(raw), "gzip": len(gzip.compress(raw, compresslevel=9))}
    return sizes


def export(results_dir: str, round_: int, trial: int = 0, variant: str = "lottery", out: str | None = None,
           weights: str = "trained") -> dict:
    """Writes the ticket of (trial, variant, round) to `out`; returns what export.json holds. Raises ExportError.

    The dense reference is lottery round 0 of the same trial with the same kind of weights (trained, or
    initial); it is saved to a temporary directory only to be measured.
    """
    config = _check(results_dir, trial, variant, round_, weights)
    out = out or default_out(results_dir, trial, variant, round_, weights)
    try:
        check_writable(out)
    except StoreError as e:
        raise ExportError(str(e)) from None
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"--out '{out}' exists and is not a directory")
    store = store_lib.Store(results_dir)
    masks = store.load_round(trial, variant, round_, "masks")
    ticket = _stripped(config, store.load_round(trial, variant, round_, WEIGHTS[weights]), masks)

    os.makedirs(out, exist_ok=True)
    files = _save(ticket, out, "ticket")
    sizes = {"ticket": _sizes(files)}
    if store.is_done(trial, "lottery", 0):
        dense_masks = store.load_round(trial, "lottery", 0, "masks")
        dense = _stripped(config, store.load_round(trial, "lottery", 0, WEIGHTS[weights]), dense_masks)
        with tempfile.TemporaryDirectory() as tmp:
            sizes["dense"] = _sizes(_save(dense, tmp, "dense"))

    layers = pruning.prunable_layers(ticket)
    info = {
        "results_dir": os.path.abspath(results_dir), "trial": trial, "variant": variant, "round": round_,
        "weights": weights, "model": config["model"], "dataset": config["dataset"],
        "weights_remaining": pruning.remaining(masks),
        "nonzero_parameters": int(sum(np.count_nonzero(w) for w in ticket.get_weights())),
        "parameters": int(ticket.count_params()),
        "sparsity": {layer.name: float(np.mean(layer.kernel.numpy() == 0)) for layer in layers},
        "files": files, "sizes": sizes,
    }
    atomic_write(os.path.join(out, "export.json"), json.dumps(info, indent=2).encode())
    return info


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def format_sizes(info: dict) -> str:
    """The size table printed by the command line."""
    sizes = info["sizes"]
    lines = [f"{'file':<8}{'ticket raw':>14}{'ticket gzip':>14}{'dense raw':>14}{'dense gzip':>14}"
             f"{'gzip dense/ticket':>20}"]
    for fmt in FORMATS:
        t, d = sizes["ticket"][fmt], sizes.get("dense", {}).get(fmt)
        row = f"{'.' + fmt:<8}{_kb(t['raw']):>14}{_kb(t['gzip']):>14}"
        row += (f"{_kb(d['raw']):>14}{_kb(d['gzip']):>14}{d['gzip'] / t['gzip']:>19.2f}x" if d
                else f"{'-':>14}{'-':>14}{'-':>20}")
        lines.append(row)
    if "dense" not in sizes:
        lines.append("(no dense reference: lottery round 0 of this trial is not finished)")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Entry point of ``python -m lth_tf.export``; returns the exit code (0 ok, 2 on bad input)."""
    from absl import flags

    argv = list(sys.argv if argv is None else argv)
    fv = flags.FlagValues()  # private: the library's global flags belong to lth_tf.main
    flags.DEFINE_integer("round", None, "Round to export (required).", flag_values=fv)
    flags.DEFINE_integer("trial", 0, "Trial.", flag_values=fv)
    flags.DEFINE_string("variant", "lottery", "Variant: lottery, reinit or rearrange.", flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory (default: RESULTS_DIR/export/trial_<t>_<variant>_round_<r>"
                        "_<weights>).", flag_values=fv)
    flags.DEFINE_enum("weights", "trained", list(WEIGHTS), "trained: the round's trained weights; initial: "
                      "the ticket at initialisation (the values the round started from).", flag_values=fv)
    usage = ("usage: python -m lth_tf.export RESULTS_DIR --round=R [--trial=0] [--variant=lottery] [--out=DIR] "
             "[--weights=trained|initial]")
    if any(a in ("-h", "--help", "-help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(f"{usage}\n\n{fv.get_help()}")
        return 0
    try:
        rest = fv(argv)
        if len(rest) != 2:
            raise ExportError(f"expected exactly one RESULTS_DIR argument ({usage})")
        if fv.round is None:
            raise ExportError(f"--round is required ({usage})")
        info = export(rest[1], fv.round, trial=fv.trial, variant=fv.variant, out=fv.out, weights=fv.weights)
    except (ExportError, flags.Error) as e:
        print(f"lth_tf.export: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"lth_tf.export: {info['model']} on {info['dataset']}, trial {info['trial']} {info['variant']} round "
          f"{info['round']} ({info['weights']} weights): {100 * info['weights_remaining']:.2f}% of prunable "
          f"weights remain; {info['nonzero_parameters']:,} of {info['parameters']:,} parameters non-zero")
    for fmt in FORMATS:
        print(f"  wrote {info['files'][fmt]}")
    print(format_sizes(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
