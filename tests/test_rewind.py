"""RewindCallback: surviving weights equal their saved values right after a rewind; pruned ones are exactly 0."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

import lth_tf
from lth_tf import pruning, rewind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def functional_model():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    outputs = keras.layers.Dense(3, name="output")(x)
    return keras.Model(inputs, outputs)


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")


class Probe(keras.callbacks.Callback):
    """Captures the weights at train begin (after any callback before it) and at each batch end."""

    def on_train_begin(self, logs=None):
        self.begin = rewind.snapshot(self.model)
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(rewind.snapshot(self.model))


def compile_(model):
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_rewind_restores_initial_values_under_the_learned_masks():
    x, y = data()
    model = functional_model()
    initial = rewind.snapshot(model)
    cb = lth_tf.RewindCallback()
    compile_(model)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    for key in initial:
        np.testing.assert_array_equal(cb.weights[key], initial[key])  # recorded before the first step
    pruned = lth_tf.prune_model(model, fc=0.5, output=0.5)
    masks = pruning.masks_of(pruned)
    compile_(pruned)
    probe = Probe()
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0,
               callbacks=[cb, probe, tfmot.sparsity.keras.UpdatePruningStep()])
    for key, value in probe.begin.items():
        layer, weight = key.split("/")
        if weight == "kernel":
            mask = masks[layer]
            np.testing.assert_array_equal(value[mask], initial[key][mask])  # survivors: exact initial values
            assert np.all(value[~mask] == 0.0)
        else:  # biases and BatchNorm: rewound too, never pruned
            np.testing.assert_array_equal(value, initial[key])


def test_late_rewinding_records_the_weights_after_k_iterations():
    x, y = data()
    model = functional_model()
    cb = lth_tf.RewindCallback(rewind_iteration=3)
    probe = Probe()
    compile_(model)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb, probe])
    for key, value in probe.batches[2].items():  # after the third step
        np.testing.assert_array_equal(cb.weights[key], value)
    assert not np.array_equal(cb.weights["fc1/kernel"], probe.begin["fc1/kernel"])


def test_explicit_masks_rewind_a_plain_model():
    model = functional_model()
    initial = rewind.snapshot(model)
    masks = {"fc1": np.random.default_rng(0).random((8, 16)) < 0.3}
    model.get_layer("fc1").kernel.assign(np.ones((8, 16)))
    rewind.restore(model, initial, masks)
    kernel = model.get_layer("fc1").kernel.numpy()
    np.testing.assert_array_equal(kernel[masks["fc1"]], initial["fc1/kernel"][masks["fc1"]])
    assert np.all(kernel[~masks["fc1"]] == 0)


def test_restore_names_missing_weights():
    with pytest.raises(KeyError, match="fc1/kernel"):
        rewind.restore(functional_model(), {})


def test_rewind_iteration_longer_than_training_is_an_error():
    x, y = data(32)
    model = functional_model()
    compile_(model)
    with pytest.raises(ValueError, match="rewind_iteration"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[lth_tf.RewindCallback(rewind_iteration=10)])


def readme_recipe() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Keras recipe"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_recipe_runs_as_written(tmp_path):
    code = readme_recipe()
    assert len(code.strip().splitlines()) <= 16
    script = tmp_path / "recipe.py"
    script.write_text(code + "\nprint('SPARSITY', {k: round(float(m.mean()), 3) "
                      "for k, m in lth_tf.pruning.masks_of(model).items()})\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("SPARSITY")][-1]
    remaining = eval(line.split(" ", 1)[1])
    assert remaining["fc1"] == pytest.approx(0.8 ** 3, abs=0.01) and remaining["output"] == pytest.approx(0.9 ** 3, abs=0.01)
