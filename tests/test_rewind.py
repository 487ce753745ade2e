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
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind

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
                      "for k, m in lth_tf.pruning.masks.masks_of(model).items()})\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("SPARSITY")][-1]
    remaining = eval(line.split(" ", 1)[1])
    assert remaining["fc1"] == pytest.approx(0.8 ** 3, abs=0.01) and remaining["output"] == pytest.approx(0.9 ** 3, abs=0.01)


def fresh(initial, spe=1):
    model = functional_model()
    model.set_weights(initial)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=spe)
    return model


def test_late_rewinding_counts_optimizer_steps_under_steps_per_execution():
    """6 steps per epoch, 4 per execution: Keras calls back after steps 4, 6, 10, 12. The callback still records
    after exactly k steps, counted from the start of the recording fit, whatever the optimizer did before.
    Bit for bit here (every k from 1 to 12, at 4 and 8 steps per execution); the tolerance is for CPUs whose
    kernels differ between one step and several per call."""
    x, y = data()
    initial = functional_model().get_weights()
    reference, probe = fresh(initial), Probe()
    reference.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[probe])
    after = probe.batches  # after[i]: the weights after step i + 1, one step per execution
    model, cb = fresh(initial, spe=4), lth_tf.RewindCallback(rewind_iteration=7)  # past an epoch's short execution
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[cb])
    for key, value in after[7 - 1].items():
        np.testing.assert_allclose(cb.weights[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    assert not np.allclose(cb.weights["fc1/kernel"], after[7]["fc1/kernel"])  # the neighbours are told apart
    assert int(model.optimizer.iterations) == 12 and int(model.steps_per_execution) == 4  # all steps, as set
    for key, value in rewind.snapshot(model).items():  # training itself is unchanged
        np.testing.assert_allclose(value, after[-1][key], rtol=1e-5, atol=1e-6)
    model, cb = fresh(initial, spe=4), lth_tf.RewindCallback(rewind_iteration=3)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)  # 6 optimizer steps before the callback
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[cb])  # k = 3: inside an execution
    for key, value in after[6 + 3 - 1].items():
        np.testing.assert_allclose(cb.weights[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


def test_late_rewinding_refuses_tuned_steps_per_execution():
    x, y = data(32)
    model = functional_model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution="auto")
    with pytest.raises(ValueError, match="steps_per_execution='auto'"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[lth_tf.RewindCallback(rewind_iteration=1)])


class Zeros(keras.callbacks.Callback):
    """Counts, at every batch end, the pruned kernel entries that are not exactly 0 (tfmot's own masks)."""

    def on_train_begin(self, logs=None):
        self.nonzero = []

    def on_train_batch_end(self, batch, logs=None):
        self.nonzero.append(sum(int(np.count_nonzero(w.layer.kernel.numpy()[w.pruning_vars[0][1].numpy() == 0]))
                                for w in pruning.wrappers(self.model)))


@pytest.mark.parametrize("name, spe", [("sgd_momentum", 1), ("adam", 4)])
def test_pruned_entries_are_exactly_zero_after_every_step(name, spe):
    """tfmot zeroes pruned entries at the next forward pass; the optimizer moves them after each step. The
    callback re-masks at every batch end: a later callback and get_weights see exact zeros, and the training is
    bit for bit the one tfmot alone gives."""
    def optimizer():
        return keras.optimizers.SGD(0.1, momentum=0.9) if name == "sgd_momentum" else keras.optimizers.Adam(0.01)
    x, y = data()
    model = functional_model()
    cb = lth_tf.RewindCallback(rewind.snapshot(model))  # masks below: the magnitudes at initialisation
    pruned = lth_tf.prune_model(model, fc=0.5, output=0.5)
    pruned.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=spe)
    zeros = Zeros()
    pruned.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
               callbacks=[cb, zeros, tfmot.sparsity.keras.UpdatePruningStep()])
    assert len(zeros.nonzero) == 2 * -(-6 // spe) and zeros.nonzero == [0] * len(zeros.nonzero)
    weights = dict(zip([v.name for v in pruned.weights], pruned.get_weights()))
    for layer in ("fc1", "output"):
        kernel, mask = weights[f"{layer}/kernel:0"], weights[f"prune_low_magnitude_{layer}/mask:0"] == 1
        assert np.all(kernel[~mask] == 0) and np.all(kernel[mask] != 0) and 0 < mask.mean() < 1
    trained = rewind.snapshot(pruned)
    rewind.restore(pruned, cb.weights)  # again from the same start, optimizer state zeroed, tfmot alone
    for v in pruned.optimizer.variables():
        v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))
    pruned.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    for key, value in rewind.snapshot(pruned).items():
        np.testing.assert_array_equal(value, trained[key], err_msg=key)
