"""lth_tf.keras3 on Keras 3: exact rewinds, exact zeros after every step, nested masks, exact per-layer counts,
plain save and load, on each installed backend.

tests/conftest.py selects legacy Keras for the whole pytest process, so the checks run in one clean subprocess
per backend: this file, run as a script (`python tests/test_keras3.py`, backend from KERAS_BACKEND), prints
"PASS <check>" for each check. Keras is imported only there, never in the pytest process.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = ["import_is_clean", "rounds_sgd_momentum", "rounds_adam", "rounds_adamw", "model_kinds", "refusals",
          "save_and_load", "rewind_counts_steps", "output_layer_is_traced", "reload_nests_in_zeros"]
README_CHECK = "readme_recipe"  # TensorFlow backend only: the recipe as written


def clean_env(backend):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "KERAS_BACKEND")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return env


def readme_recipe() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Keras 3"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


# ---------------------------------------------------------------------------------------------------------
# The pytest side: one subprocess per backend.

def _run_backend(backend, tmp_path):
    import pytest

    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    if importlib.util.find_spec(module) is None:
        reason = {"jax": 'jax is not installed (pip install -e ".[keras3-jax]")',
                  "torch": "torch is not installed: its CPU wheel is not on PyPI and the default wheel pulls "
                           "several GB of CUDA libraries, too much for CI; install it to run these checks"}
        pytest.skip(reason.get(backend, f"{module} is not installed"))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), str(tmp_path)], capture_output=True,
                         text=True, env=clean_env(backend), cwd=tmp_path, timeout=600)
    passed = {ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("PASS ")}
    expected = set(CHECKS) | ({README_CHECK} if backend == "tensorflow" else set())
    assert out.returncode == 0 and passed == expected, (
        f"missing: {sorted(expected - passed)}\n{out.stdout[-3000:]}\n{out.stderr[-4000:]}")


def test_keras3_tensorflow_backend(tmp_path):
    _run_backend("tensorflow", tmp_path)


@pytest.mark.slow  # the TensorFlow backend test runs the same checks in CI
def test_keras3_jax_backend(tmp_path):
    _run_backend("jax", tmp_path)


def test_keras3_torch_backend(tmp_path):
    _run_backend("torch", tmp_path)


def test_readme_recipe_is_short():
    assert len(readme_recipe().strip().splitlines()) <= 15


# ---------------------------------------------------------------------------------------------------------
# The subprocess side. Everything below imports keras (Keras 3) and runs only under `__main__`.

def _data(n=32, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    return x, (x.reshape(n, -1)[:, 0] > 0).astype("int32") + (x.reshape(n, -1)[:, 1] > 0).astype("int32")


def _functional():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(6, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(20, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="output")(x))


def _expected_counts(size, rate, rounds):
    """Survivors of a layer after each round, by hand: keep round(survivors * (1 - rate)) every round."""
    counts = [size]
    for _ in range(rounds):
        counts.append(int(round(counts[-1] * (1 - rate))))
    return counts


def _probe_class():
    import keras

    from lth_tf import keras3 as lth

    class Probe(keras.callbacks.Callback):
        """Weights at train begin (after the rewind before it) and after every step; checks pruned == 0."""

        def __init__(self, masks):
            super().__init__()
            self.masks, self.batches, self.zero_checks = masks, [], 0

        def on_train_begin(self, logs=None):
            self.begin = lth.snapshot(self.model)

        def on_train_batch_end(self, batch, logs=None):
            weights = lth.snapshot(self.model)
            for name, mask in self.masks.items():
                assert np.all(weights[f"{name}/kernel"][~mask] == 0.0), f"pruned weight of {name} moved"
                self.zero_checks += 1
            self.batches.append(weights)

    return Probe


def check_import_is_clean(tmp):
    from lth_tf import keras3  # noqa: F401

    assert "tf_keras" not in sys.modules and "tensorflow_model_optimization" not in sys.modules
    assert "TF_USE_LEGACY_KERAS" not in os.environ


def _rounds(optimizer_name, tmp):
    import keras

    from lth_tf import keras3 as lth

    optimizer = {"sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
                 "adam": lambda: keras.optimizers.Adam(0.01),
                 "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.5)}[optimizer_name]()
    x, y = _data()
    model = _functional()
    initial = lth.snapshot(model)
    rewind = lth.RewindCallback(rewind_iteration=2)  # late rewinding
    rates = {"conv1": 0.1, "fc1": 0.2, "output": 0.1}
    assert lth.layer_rates(model) == rates  # conv 10%, fc 20%, the last Dense half the fc rate
    rounds = 2  # the second round checks nesting and counts of a pruned-again layer
    counts = {name: _expected_counts(lth.kernels(model)[name].size, rate, rounds) for name, rate in rates.items()}
    masks, end = {}, None
    for round_ in range(rounds + 1):
        if round_ > 0:
            trained, old = lth.kernels(model), lth.masks_of(model) or lth.full_masks(model)
            model = lth.prune_model(model)
            masks = lth.masks_of(model)
            for name, mask in masks.items():
                assert int(mask.sum()) == counts[name][round_], (name, round_, int(mask.sum()))
                assert not np.any(mask & ~old[name]), f"{name}: a pruned weight came back"  # nested
                removed = old[name] & ~mask  # the smallest surviving magnitudes went
                assert np.abs(trained[name][mask]).min() >= np.abs(trained[name][removed]).max()
        # The same optimizer every round: its momentum and moments for newly pruned weights are non-zero.
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        probe = _probe_class()(masks)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False, callbacks=[rewind, probe])
        assert len(probe.batches) == 4 and probe.zero_checks == 4 * len(masks)
        if round_ == 0:
            for key, value in probe.batches[1].items():  # recorded after the second step, exactly
                np.testing.assert_array_equal(rewind.weights[key], value)
            assert not np.array_equal(rewind.weights["fc1/kernel"], initial["fc1/kernel"])
        else:
            for key, value in probe.begin.items():
                layer, weight = key.split("/")
                if layer in masks and weight == "kernel":
                    m = masks[layer]
                    np.testing.assert_array_equal(value[m], rewind.weights[key][m])
                    assert np.all(value[~m] == 0.0)
                else:  # biases, BatchNorm gamma/beta and moving statistics: rewound exactly, never pruned
                    np.testing.assert_array_equal(value, rewind.weights[key])
            # The previous round moved the BatchNorm statistics, so their rewind is not trivial.
            assert not np.array_equal(end["bn1/moving_mean"], rewind.weights["bn1/moving_mean"])
        end = probe.batches[-1]
        moved = end["fc1/kernel"] != probe.begin["fc1/kernel"]
        assert moved[masks.get("fc1", np.ones_like(moved))].any()  # survivors do train
    return model, rewind


def check_rounds_sgd_momentum(tmp):
    _rounds("sgd_momentum", tmp)


def check_rounds_adam(tmp):
    _rounds("adam", tmp)


def check_rounds_adamw(tmp):
    _TICKET.extend(_rounds("adamw", tmp))


_TICKET = []  # the model and RewindCallback of check_rounds_adamw, saved by check_save_and_load


def check_model_kinds(tmp):
    import keras

    from lth_tf import keras3 as lth

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv = keras.layers.Conv1D(4, 3, name="block_conv")
            self.norm = keras.layers.LayerNormalization(name="block_norm")

        def call(self, x):
            return self.norm(self.conv(x))

    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.block = Block(name="block")
            self.flat = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(12, activation="relu", name="hidden")
            self.head = keras.layers.Dense(3, name="head")

        def call(self, x):
            return self.head(self.hidden(self.flat(self.block(x))))

    sequential = keras.Sequential([keras.Input((10, 2)), keras.layers.Conv1D(4, 3, name="c"),
                                   keras.layers.Flatten(), keras.layers.Dense(3, name="out")])
    subclassed = Net()
    subclassed(np.zeros((1, 10, 2), "float32"))
    x, y = _data(16, (10, 2))
    for model, rates in [(sequential, {"c": 0.1, "out": 0.1}),
                         (subclassed, {"block_conv": 0.1, "hidden": 0.2, "head": 0.1})]:
        assert lth.layer_rates(model) == rates
        model = lth.prune_model(model, fc=0.5, conv=0.5, output=0.25)
        masks = lth.masks_of(model)
        assert set(masks) == set(rates)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        probe = _probe_class()(masks)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[lth.RewindCallback(), probe])
        assert probe.zero_checks == 2 * len(masks)
        assert "block_norm/gamma" in lth.snapshot(model) or model is sequential  # normalisation: kept, unpruned


def _raises(fn, pattern):
    try:
        fn()
    except ValueError as e:
        assert re.search(pattern, str(e)), str(e)
    else:
        raise AssertionError(f"no ValueError matching {pattern!r}")


def check_refusals(tmp):
    import keras

    from lth_tf import keras3 as lth

    embed = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 3, name="emb"),
                              keras.layers.Flatten(), keras.layers.Dense(2, name="out")])
    _raises(lambda: lth.prune_model(embed), r"cannot handle layer 'emb' \(Embedding\)")
    sep = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.SeparableConv2D(3, 3, name="sep"),
                            keras.layers.Flatten(), keras.layers.Dense(2, name="out")])
    _raises(lambda: lth.prune_model(sep), "'sep' \\(SeparableConv2D\\)")
    _raises(lambda: lth.prune_model(keras.Sequential([keras.layers.Dense(2)])), "build it")
    _raises(lambda: lth.prune_model(_functional(), fc=1.0), r"\[0, 1\)")
    model = lth.prune_model(_functional())
    model.compile(keras.optimizers.SGD(0.1, clipnorm=1.0), "sparse_categorical_crossentropy")
    x, y = _data(8)
    _raises(lambda: model.fit(x, y, verbose=0, callbacks=[lth.RewindCallback()]), "clipnorm")


def check_save_and_load(tmp):
    import keras

    from lth_tf import keras3 as lth

    ticket = _TICKET[0]
    masks, weights = lth.masks_of(ticket), lth.snapshot(ticket)
    path = os.path.join(tmp, "ticket.keras")
    ticket.save(path)
    with zipfile.ZipFile(path) as z:
        config = z.read("config.json").decode()
    assert "lth_tf" not in config and "_Mask" not in config and json.loads(config)["class_name"] == "Functional"
    loaded = keras.saving.load_model(path)
    for key, value in lth.snapshot(loaded).items():
        np.testing.assert_array_equal(value, weights[key])
    for name, mask in masks.items():
        assert np.all(lth.kernels(loaded)[name][~mask] == 0.0) and int(mask.sum()) < mask.size
    if keras.backend.backend() == "tensorflow":  # and in a process that never saw lth_tf
        np.savez(os.path.join(tmp, "weights.npz"), **{k.replace("/", "|"): v for k, v in weights.items()})
        code = ("import sys, keras, numpy as np; m = keras.saving.load_model(sys.argv[1]); "
                "w = np.load(sys.argv[2]); assert not [k for k in sys.modules if k.startswith('lth_tf')]; "
                "assert all(np.array_equal(l.get_weights()[i], w[f'{l.name}|{v.name}']) "
                "for l in m.layers for i, v in enumerate(l.weights)); print('LOADED')")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run([sys.executable, "-c", code, path, os.path.join(tmp, "weights.npz")],
                             capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
        assert out.returncode == 0 and "LOADED" in out.stdout, out.stderr[-2000:]


def check_rewind_counts_steps(tmp):
    """RewindCallback(rewind_iteration=k) records the weights after k optimizer steps of its fit, whatever
    steps_per_execution is: equal to a steps_per_execution=1 run's weights after exactly k steps."""
    import keras

    from lth_tf import keras3 as lth

    x, y = _data(20)  # batch 2: 10 steps an epoch, so steps_per_execution=4 runs 4, 4 and 2 steps an epoch
    init = _functional().get_weights()

    def model_after_3_steps(spe):  # the optimizer has stepped 3 times before the fit that records
        model = _functional()
        model.set_weights(init)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=spe)
        model.fit(x[:6], y[:6], batch_size=2, verbose=0, shuffle=False)
        return model

    reference = model_after_3_steps(1)
    probe = _probe_class()({})
    reference.fit(x, y, batch_size=2, epochs=3, verbose=0, shuffle=False, callbacks=[probe])
    assert len(probe.batches) == 30
    model = model_after_3_steps(4)
    # The executions end at steps 4, 8, 10, 14, 18, 20, 24, ...: 24 comes after two short ones.
    at = {k: lth.RewindCallback(rewind_iteration=k) for k in (0, 8, 24)}
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, shuffle=False, callbacks=list(at.values()))
    for k, rewind in at.items():
        expected = probe.begin if k == 0 else probe.batches[k - 1]
        for key, value in expected.items():
            np.testing.assert_array_equal(rewind.weights[key], value, err_msg=f"k={k} {key}")
    assert not np.allclose(at[8].weights["fc1/kernel"], at[24].weights["fc1/kernel"])
    fit = lambda k: model.fit(x, y, batch_size=2, epochs=3, verbose=0,  # noqa: E731
                              callbacks=[lth.RewindCallback(rewind_iteration=k)])
    _raises(lambda: fit(6), r"rewind_iteration=6 is not a multiple of steps_per_execution=4")
    _raises(lambda: fit(12), r"step 12 fell inside an execution of steps_per_execution=4 steps \(one that ended "
                             r"at step 14")


def check_output_layer_is_traced(tmp):
    """The output layer is the prunable layer that produces the model's output, whatever order the layers were
    created in; a model whose prunable layers are all convolutions has its last convolution as output layer."""
    import keras

    from lth_tf import keras3 as lth

    class HeadFirst(keras.Model):
        def __init__(self):
            super().__init__(name="head_first")
            self.head = keras.layers.Dense(3, name="head")  # created first, called last
            self.hidden = keras.layers.Dense(12, activation="relu", name="hidden")
            self.flat = keras.layers.Flatten()

        def call(self, x):
            return self.head(self.hidden(self.flat(x)))

    model = HeadFirst()
    model(np.zeros((2, 4, 4), "float32"))
    assert lth.output_layer_name(model) == "head"
    assert lth.layer_rates(model) == {"head": 0.1, "hidden": 0.2}
    masks = lth.masks_of(lth.prune_model(model, fc=0.5, output=0.25))
    assert int(masks["hidden"].sum()) == 16 * 12 // 2 and int(masks["head"].sum()) == 12 * 3 * 3 // 4

    inputs = keras.Input((None, None, 2))  # fully convolutional: no Dense, spatial size unknown
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 1, name="logits")(x)
    all_conv = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    assert lth.output_layer_name(all_conv) == "logits"
    assert lth.layer_rates(all_conv, conv=0.2, output=0.1) == {"conv1": 0.2, "logits": 0.1}
    masks = lth.masks_of(lth.prune_model(all_conv, conv=0.2, output=0.5))
    assert int(masks["conv1"].sum()) == round(3 * 3 * 2 * 6 * 0.8) and int(masks["logits"].sum()) == 12
    assert lth.layer_rates(model, output_layer="hidden") == {"head": 0.2, "hidden": 0.1}  # the user's choice
    _raises(lambda: lth.layer_rates(model, output_layer="flatten"), "not a prunable layer")


def check_reload_nests_in_zeros(tmp):
    """A pruned model saved with model.save and loaded with plain keras.saving.load_model: its next
    prune_model nests inside the old masks with the exact counts, and a rewinding fit keeps its zeros."""
    import keras

    from lth_tf import keras3 as lth

    model, rewind = _TICKET  # two rounds pruned, trained with AdamW; rewind: the weights after 2 steps
    old = lth.masks_of(model)
    path = os.path.join(tmp, "ticket.keras")  # check_save_and_load's model.save
    loaded = keras.saving.load_model(path)
    assert lth.masks_of(loaded) == {}  # nothing of lth_tf is in the file; the zeros are
    kept = {name: int(mask.sum()) for name, mask in old.items()}
    rates = {"conv1": 0.3, "fc1": 0.6, "output": 0.4}
    new = lth.masks_of(lth.prune_model(loaded, fc=0.6, conv=0.3, output=0.4))
    for name, mask in new.items():
        assert not np.any(mask & ~old[name]), f"{name}: a pruned weight came back"
        assert int(mask.sum()) == max(1, round(kept[name] * (1 - rates[name]))), (name, kept[name], mask.sum())
        assert np.all(lth.kernels(loaded)[name][~mask] == 0.0)
    x, y = _data()
    again = keras.saving.load_model(path)  # and trained again from the rewind point, without prune_model
    again.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    probe = _probe_class()(old)  # asserts the old zeros after every step
    again.fit(x, y, batch_size=8, verbose=0, callbacks=[rewind, probe])
    assert probe.zero_checks == 4 * len(old)
    for name, mask in old.items():
        np.testing.assert_array_equal(probe.begin[f"{name}/kernel"], rewind.weights[f"{name}/kernel"] * mask)


def check_readme_recipe(tmp):
    """Runs the README block as written, as a file in a fresh directory (this process has imported nothing of
    lth_tf yet), then checks its masks and its ticket."""
    import runpy

    recipe_dir = os.path.join(tmp, "recipe")
    os.makedirs(recipe_dir)
    script = os.path.join(recipe_dir, "recipe.py")
    with open(script, "w") as f:
        f.write(readme_recipe())
    cwd = os.getcwd()
    os.chdir(recipe_dir)
    try:
        namespace = runpy.run_path(script, run_name="__main__")
    finally:
        os.chdir(cwd)
    remaining = {k: float(m.mean()) for k, m in namespace["lth"].masks_of(namespace["model"]).items()}
    assert abs(remaining["fc1"] - 0.8 ** 3) < 0.01 and abs(remaining["output"] - 0.9 ** 3) < 0.01, remaining
    assert os.path.exists(os.path.join(recipe_dir, "ticket.keras"))


if __name__ == "__main__":
    tmp_dir = sys.argv[1]
    import keras

    import time

    order = ([README_CHECK] if keras.backend.backend() == "tensorflow" else []) + CHECKS
    for check in order:
        start = time.perf_counter()
        globals()[f"check_{check}"](tmp_dir)
        print("PASS", check, f"{time.perf_counter() - start:.1f}s", flush=True)
