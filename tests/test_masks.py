"""Layer-wise magnitude pruning as Frankle & Carbin define it, and its application through tfmot."""
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from lth_tf.pruning import masks as pruning


def tiny_model(batchnorm=False, seed=0):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1",
                            kernel_initializer=keras.initializers.TruncatedNormal(0.1, seed=seed))(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(20, activation="relu", name="fc1",
                           kernel_initializer=keras.initializers.TruncatedNormal(0.1, seed=seed + 1))(x)
    outputs = keras.layers.Dense(5, name="output",
                                 kernel_initializer=keras.initializers.TruncatedNormal(0.1, seed=seed + 2))(x)
    return keras.Model(inputs, outputs)


def test_rates_per_layer_kind_and_output_at_half_the_fc_rate():
    model = tiny_model()
    assert pruning.layer_rates(model, fc=0.2, conv=0.1, output=0.1) == {"conv1": 0.1, "fc1": 0.2, "output": 0.1}
    assert pruning.output_layer_name(model) == "output"
    assert pruning.layer_rates(model, 0.2, 0.1, 0.1, prune_layers="conv") == {"conv1": 0.1, "fc1": 0.0, "output": 0.0}
    assert pruning.layer_rates(model, 0.2, 0.1, 0.1, prune_layers="fc") == {"conv1": 0.0, "fc1": 0.2, "output": 0.1}


def test_each_round_removes_the_rate_of_the_survivors_exactly_per_layer():
    rng = np.random.default_rng(0)
    kernels = {"a": rng.normal(size=(100, 50)), "b": rng.normal(size=(50, 10)), "c": rng.normal(size=(3, 3, 4, 8))}
    rates = {"a": 0.2, "b": 0.1, "c": 0.1}
    masks = {k: np.ones(w.shape, bool) for k, w in kernels.items()}
    expected = {k: w.size for k, w in kernels.items()}
    for r in range(1, 8):
        kernels = {k: rng.normal(size=w.shape) for k, w in kernels.items()}  # "training" moves the weights
        masks = pruning.prune(kernels, masks, rates)
        for name in kernels:
            expected[name] = int(round(expected[name] * (1 - rates[name])))
            assert masks[name].sum() == expected[name]
            # (1 - p)^r up to the rounding of one weight per round
            assert abs(masks[name].mean() - (1 - rates[name]) ** r) <= r / kernels[name].size + 1e-12


def test_masks_are_nested_even_when_pruned_weights_grew_large():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(40, 30))
    masks = {"fc": np.ones(w.shape, bool)}
    history = [masks["fc"]]
    for _ in range(5):
        w = np.where(history[-1], rng.normal(size=w.shape), 100.0)  # pruned entries huge: must not revive
        masks = pruning.prune({"fc": w}, masks, {"fc": 0.2})
        assert not np.any(masks["fc"] & ~history[-1]), "a pruned weight came back"
        history.append(masks["fc"])


def test_pruning_keeps_the_largest_magnitudes():
    w = np.array([[0.5, -3.0, 0.1], [2.0, -0.2, 1.0]])
    masks = pruning.prune({"fc": w}, {"fc": np.ones(w.shape, bool)}, {"fc": 0.5})
    assert masks["fc"].tolist() == [[False, True, False], [True, False, True]]


def test_oneshot_prunes_straight_to_the_level():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(30, 20))
    mask = pruning.prune_oneshot({"fc": w}, {"fc": 0.8 ** 5})["fc"]
    assert mask.sum() == round(w.size * 0.8 ** 5)
    assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


def test_rearrange_keeps_counts_and_values_but_moves_positions():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(30, 20))
    mask = pruning.prune({"fc": w}, {"fc": np.ones(w.shape, bool)}, {"fc": 0.7})
    new_masks, new_kernels = pruning.rearrange(mask, {"fc": w}, np.random.default_rng(0))
    assert new_masks["fc"].sum() == mask["fc"].sum()
    assert not np.array_equal(new_masks["fc"], mask["fc"])
    assert sorted(new_kernels["fc"][new_masks["fc"]]) == sorted(w[mask["fc"]])
    assert np.all(new_kernels["fc"][~new_masks["fc"]] == 0)


def test_wrap_uses_tfmot_with_the_masks_fixed_and_shares_variables():
    model = tiny_model()
    masks = pruning.prune(pruning.kernels(model), pruning.full_masks(model), {"conv1": 0.5, "fc1": 0.5, "output": 0.5})
    wrapped = pruning.wrap(model, masks)
    wrappers = pruning.wrappers(wrapped)
    assert len(wrappers) == 3
    assert all(isinstance(w.pruning_schedule, tfmot.sparsity.keras.ConstantSparsity) for w in wrappers)
    for name, mask in pruning.masks_of(wrapped).items():
        np.testing.assert_array_equal(mask, masks[name])
    layer = model.get_layer("fc1")
    assert np.all(layer.kernel.numpy()[~masks["fc1"]] == 0.0)  # shared: wrapping zeroed the plain model too
    layer.bias.assign(np.full(layer.bias.shape, 7.0))
    assert np.all(wrapped.get_layer("prune_low_magnitude_fc1").layer.bias.numpy() == 7.0)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_training_the_tfmot_model_keeps_pruned_weights_zero_and_masks_fixed(optimizer):
    model = tiny_model(batchnorm=True)
    masks = pruning.prune(pruning.kernels(model), pruning.full_masks(model), {"conv1": 0.6, "fc1": 0.6, "output": 0.6})
    wrapped = pruning.wrap(model, masks)
    opt = keras.optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd_momentum" else keras.optimizers.Adam(0.01)
    wrapped.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6, 6, 1)).astype("float32"), rng.integers(0, 5, 64)
    before = pruning.kernels(model)
    wrapped.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    after = pruning.kernels(model)
    for name, mask in masks.items():
        np.testing.assert_array_equal(pruning.masks_of(wrapped)[name], mask)
        assert np.all(after[name][~mask] == 0.0)
        assert not np.allclose(after[name][mask], before[name][mask])


def test_biases_and_batchnorm_are_never_pruned():
    model = tiny_model(batchnorm=True)
    assert [layer.name for layer in pruning.prunable_layers(model)] == ["conv1", "fc1", "output"]
    for layer in model.layers:
        if layer.name == "bn1" or hasattr(layer, "bias") and layer.bias is not None:
            for v in layer.weights:
                if "kernel" not in v.name:
                    v.assign(np.full(v.shape, 0.5, v.dtype.as_numpy_dtype))
    masks = pruning.prune(pruning.kernels(model), pruning.full_masks(model), {"conv1": 0.9, "fc1": 0.9, "output": 0.9})
    pruning.wrap(model, masks)
    for layer in model.layers:
        for v in layer.weights:
            if "kernel" not in v.name:
                assert np.all(v.numpy() == 0.5), v.name


def test_prune_model_is_the_one_call_keras_step_between_rounds():
    model = tiny_model()
    first = lth_masks = pruning.masks_of(pruning.prune_model(model, fc=0.2, conv=0.1, output=0.1))
    assert first["fc1"].mean() == pytest.approx(0.8, abs=1e-3)
    second = pruning.prune_model(pruning.prune_model(model))
    m2 = pruning.masks_of(second)
    assert m2["fc1"].sum() == round(round(first["fc1"].size * 0.8) * 0.8)
    assert all(not np.any(m2[k] & ~lth_masks[k]) for k in m2)


def test_rearrange_leaves_a_layer_that_is_not_pruned_in_place():
    # The output layer under --prune_rate_output=0 (or fc layers under --prune_layers=conv) has an all-True mask:
    # its initial values stay where they are; only pruned layers are rearranged.
    rng = np.random.default_rng(4)
    w = {"fc": rng.normal(size=(12, 10)), "output": rng.normal(size=(10, 3))}
    masks = pruning.prune(w, {n: np.ones(v.shape, bool) for n, v in w.items()}, {"fc": 0.5, "output": 0.0})
    assert masks["output"].all() and not masks["fc"].all()
    new_masks, new_kernels = pruning.rearrange(masks, w, np.random.default_rng(0))
    np.testing.assert_array_equal(new_kernels["output"], w["output"])
    assert new_masks["output"].all()
    assert not np.array_equal(new_masks["fc"], masks["fc"])


def test_a_pruned_layer_always_keeps_at_least_one_weight():
    # 5 weights at 60% per round: round(5*.4)=2, round(2*.4)=1, then 1 must stay 1 (not round(0.4)=0).
    w = {"small": np.arange(1.0, 6.0).reshape(5, 1), "big": np.arange(1.0, 101.0).reshape(10, 10)}
    masks = {n: np.ones(v.shape, bool) for n, v in w.items()}
    counts = []
    for _ in range(4):
        masks = pruning.prune(w, masks, {"small": 0.6, "big": 0.6})
        counts.append(int(masks["small"].sum()))
    assert counts == [2, 1, 1, 1]
    assert masks["small"][4, 0]  # the largest survives
    assert pruning.keep_count(5, 0.01) == 1 and pruning.keep_count(0, 0.5) == 0 and pruning.keep_count(10, 0.55) == 6
    oneshot = pruning.prune_oneshot(w, {"small": 0.01, "big": 0.01})
    assert int(oneshot["small"].sum()) == 1 and int(oneshot["big"].sum()) == 1


def test_global_pruning_never_cuts_a_layer_off_and_keeps_the_exact_total():
    # One layer of tiny weights would lose everything to a single global threshold; it keeps its largest one.
    rng = np.random.default_rng(5)
    w = {"conv1": rng.normal(size=(3, 3, 1, 4)) * 1e-3, "conv2": rng.normal(size=(3, 3, 4, 8))}
    masks = {n: np.ones(v.shape, bool) for n, v in w.items()}
    masks = pruning.prune_global(w, masks, {"conv1": 0.8, "conv2": 0.8})
    total = w["conv1"].size + w["conv2"].size
    assert int(masks["conv1"].sum()) + int(masks["conv2"].sum()) == round(total * 0.2)
    assert int(masks["conv1"].sum()) == 1
    assert masks["conv1"].ravel()[np.argmax(np.abs(w["conv1"]).ravel())]
    # The rest is one threshold over conv2: every kept conv2 weight is at least as large as every pruned one.
    kept, pruned = np.abs(w["conv2"][masks["conv2"]]), np.abs(w["conv2"][~masks["conv2"]])
    assert kept.min() >= pruned.max()
