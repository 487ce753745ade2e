"""Your own model: `--model=package.module:function`, a function returning an untrained tf_keras model.

The function is imported from the working directory or PYTHONPATH (`lth_tf.run_experiment` can also hand over
a function object, `register`) and called with no arguments once per network the experiment needs: each trial's
network, each `reinit` control's fresh draw, the networks stacked beside it. Before each call lth_tf sets the
global seeds (`keras.utils.set_random_seed`) and restarts Keras' automatic layer names, so initialisers without
a seed of their own draw a pure function of the trial's seed, and unnamed layers get the same names (`dense`,
`dense_1`, ...) in every build: masks and stored weights are keyed by layer name.

What lth_tf does with it, as with the paper's networks: every Dense and Conv (1D/2D/3D) kernel is pruned; the
output layer (the prunable layer that produces the model's output) at half the fc rate; biases, BatchNorm and
every other weight are rewound with the kernels but never pruned. The model must be a Functional or Sequential
model with a defined input, one output of logits (lth_tf trains with from_logits=True), and its prunable layers
at the top level (not inside a nested model).

A results directory's identity covers the name `module:function` and `Architecture.digest`, a hash of the built
model's layers (name, class, weight shapes): two models, or an edited one, never share a directory.

    arch = describe("my_models:small_cnn", input_shape=(32, 32, 3), num_classes=10)   # raises UserModelError
    model = build("my_models:small_cnn", seed=0)
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import sys

from lth_tf import _env  # noqa: F401
import tf_keras as keras

_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w.<>]*")
_PRUNABLE = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_REGISTERED: dict = {}  # name -> function handed over from Python (run_experiment), not imported


class UserModelError(ValueError):
    """A --model function that cannot be used; str(e) is one line (without the flag, which callers add)."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a user model is, as the results directory's identity and the validation need it."""

    digest: str  # sha256 (16 hex digits) of the layers' names, classes and weight shapes
    input_shape: tuple
    outputs: int  # units of the output (logits for labels 0..outputs-1)
    prunable: tuple  # names of the layers whose kernels are pruned
    layer_types: tuple  # class names of every layer, in order


def register(name: str, function) -> None:
    """Makes `function` the model function of `name` in this process (lth_tf.run_experiment's function objects)."""
    _REGISTERED[name] = function


def name_of(function) -> str:
    """`module:qualname` of a function: the --model name of a function handed over from Python."""
    qualname = getattr(function, "__qualname__", None) or type(function).__name__
    qualname = qualname.replace("<locals>.", "").replace("<lambda>", "lambda")  # a path-friendly name
    return f"{getattr(function, '__module__', None) or '__main__'}:{qualname}"


def load(name: str):
    """The model function `name` (`package.module:function`). Raises UserModelError."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if not _NAME.fullmatch(name):
        raise UserModelError("must be a built-in network or package.module:function")
    module_name, _, attr = name.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # importable from the working directory, as `python -m` scripts are
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise UserModelError(f"cannot import module '{module_name}' ({e})") from None
    except Exception as e:  # noqa: BLE001 - any error in the user's module is reported, in one line
        raise UserModelError(f"importing '{module_name}' raised {type(e).__name__}: {_line(e)}") from None
    function = module
    for part in attr.split("."):
        function = getattr(function, part, None)
    if function is None:
        raise UserModelError(f"module '{module_name}' has no '{attr}'")
    if not callable(function):
        raise UserModelError(f"'{attr}' in '{module_name}' is not a function")
    return function


def build(name: str, seed: int = 0, weight_decay: float = 0.0) -> keras.Model:
    """Calls the model function with the global seeds set from `seed` and fresh automatic layer names.

    weight_decay > 0 (--weight_decay): every Dense and Conv kernel gets the decay of the built-in networks, an L2
    penalty of weight_decay / 2 * sum(w**2) (gradient weight_decay * w), in place of its own kernel_regularizer.
    """
    function = load(name)
    keras.utils.set_random_seed(int(seed) % (2 ** 32))
    keras.backend.reset_uids()
    try:
        model = function()
    except Exception as e:  # noqa: BLE001
        raise UserModelError(f"calling it raised {type(e).__name__}: {_line(e)}") from None
    if not isinstance(model, keras.Model):
        kind = type(model).__module__.split(".")[0] + "." + type(model).__name__
        hint = " (a Keras 3 model: build it with tf_keras, or use lth_tf.keras3)" if kind.startswith("keras.") else ""
        raise UserModelError(f"it returned {kind}, not a tf_keras model{hint}")
    return _with_weight_decay(model, weight_decay) if weight_decay else model


def _with_weight_decay(model: keras.Model, weight_decay: float) -> keras.Model:
    """A copy of `model` (same layer names, same weights) whose prunable kernels carry the L2 decay. A copy, not
    an added loss, so that the decay is part of each layer's configuration: tfmot's wrappers keep it."""
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, _PRUNABLE):
            config["kernel_regularizer"] = keras.regularizers.serialize(keras.regularizers.L2(weight_decay / 2))
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def describe(name: str, input_shape: tuple | None = None, num_classes: int | None = None) -> Architecture:
    """Builds the model once and checks it can be pruned here; with `input_shape` / `num_classes` (the dataset's),
    also that it takes those inputs and has an output for every label. Raises UserModelError."""
    model = build(name, seed=0)
    if not model.built or not getattr(model, "inputs", None):
        raise UserModelError(f"it returned a model without a defined input; build it Functional or Sequential "
                             f"with keras.Input(shape=...)")
    if len(model.outputs) != 1:
        raise UserModelError(f"it returned a model with {len(model.outputs)} outputs; lth_tf needs one (logits)")
    nested = [layer.name for layer in model.layers
              if isinstance(layer, keras.Model) and any(isinstance(inner, _PRUNABLE) for inner in layer.layers)]
    if nested:
        raise UserModelError(f"the prunable layers of its nested model '{nested[0]}' would not be pruned; "
                             f"build one flat Functional model")
    prunable = [layer for layer in model.layers if isinstance(layer, _PRUNABLE)]
    if not prunable:
        raise UserModelError(f"it returned a model without Dense or Conv layers: nothing to prune")
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation == "softmax" or isinstance(model.layers[-1], keras.layers.Softmax):
        raise UserModelError(f"the model ends in a softmax; return logits (lth_tf trains with from_logits=True)")
    shape = tuple(model.input_shape[1:])
    outputs = model.output_shape[-1]
    if input_shape is not None and (len(shape) != len(input_shape)
                                    or any(a is not None and a != b for a, b in zip(shape, input_shape))):
        raise UserModelError(f"the model takes inputs of shape {shape}, the dataset gives {tuple(input_shape)}")
    if len(model.output_shape) != 2 or outputs is None:
        raise UserModelError(f"the model outputs shape {model.output_shape[1:]}; lth_tf needs one logit per class")
    if num_classes is not None and outputs < num_classes:
        raise UserModelError(f"the model has {outputs} outputs, but the dataset's labels go up to {num_classes - 1}")
    layers = [[layer.name, type(layer).__name__, [list(w.shape) for w in layer.weights]] for layer in model.layers]
    digest = hashlib.sha256(json.dumps(layers).encode()).hexdigest()[:16]
    return Architecture(digest, shape, int(outputs), tuple(layer.name for layer in prunable),
                        tuple(type(layer).__name__ for layer in model.layers))


def _line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "(no message)"
