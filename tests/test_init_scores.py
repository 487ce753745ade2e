"""Pruning at initialization: each score against a hand computation, exact counts, and the ablations."""
import numpy as np
import pytest

from lth_tf import _env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import init_scores
from lth_tf.pruning import masks as pruning


def two_layer(activation="relu", dtype="float32", use_bias=True, seed=0, inputs=4, hidden=3, classes=2):
    keras.utils.set_random_seed(seed)
    x = keras.Input((inputs,), dtype=dtype)
    h = keras.layers.Dense(hidden, activation=activation, use_bias=use_bias, dtype=dtype, name="fc1")(x)
    out = keras.layers.Dense(classes, use_bias=use_bias, dtype=dtype, name="output")(h)
    model = keras.Model(x, out)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(dtype) for w in model.get_weights()])
    return model


def data(n=6, inputs=4, classes=2, seed=1, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, inputs)).astype(dtype), rng.integers(0, classes, size=n)


def test_snip_is_abs_w_times_gradient_by_hand():
    model = two_layer()
    x, y = data()
    w1, b1, w2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    pre = x @ w1 + b1
    h = np.maximum(pre, 0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(2)[y]) / len(y)  # mean cross-entropy
    g2 = h.T @ d_logits
    g1 = x.T @ ((d_logits @ w2.T) * (pre > 0))
    scores = init_scores.snip(model, x, y)
    np.testing.assert_allclose(scores["fc1"], np.abs(w1 * g1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(scores["output"], np.abs(w2 * g2), rtol=1e-4, atol=1e-7)


def test_grasp_hessian_gradient_product_matches_finite_differences():
    model = two_layer("tanh", dtype="float64")
    x, y = data(dtype=np.float64)
    kernels = [layer.kernel for layer in pruning.prunable_layers(model)]

    def grad():
        with tf.GradientTape() as tape:
            logits = model(x, training=False) / init_scores.GRASP_TEMPERATURE
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return [g.numpy() for g in tape.gradient(loss, kernels)]

    w0 = [k.numpy() for k in kernels]
    v = grad()  # GraSP's H g: the Hessian applied to the gradient itself
    eps = 1e-3 / np.sqrt(sum(float((a ** 2).sum()) for a in v))
    for k, w, d in zip(kernels, w0, v):
        k.assign(w + eps * d)
    plus = grad()
    for k, w, d in zip(kernels, w0, v):
        k.assign(w - eps * d)
    minus = grad()
    for k, w in zip(kernels, w0):
        k.assign(w)
    hg = init_scores.hessian_gradient_product(model, x, y)
    for name, p, m in zip(("fc1", "output"), plus, minus):
        fd = (p - m) / (2 * eps)
        np.testing.assert_allclose(hg[name], fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())
        assert np.abs(fd).max() > 0
    scores = init_scores.grasp(model, x, y)
    for name, w in zip(("fc1", "output"), w0):
        np.testing.assert_allclose(scores[name], -w * hg[name])


def test_grasp_prunes_its_highest_scores():
    # S = -w * (H g): the highest S are pruned (Wang et al. 2020, Algorithm 1), i.e. the lowest w * (H g).
    model = two_layer("tanh")
    x, y = data()
    s = init_scores.grasp(model, x, y)
    masks = init_scores.masks_at_level("grasp", model, {"fc1": 6}, x=x, y=y)
    kept, dropped = s["fc1"][masks["fc1"]], s["fc1"][~masks["fc1"]]
    assert masks["fc1"].sum() == 6 and kept.max() <= dropped.min()
    assert masks["output"].all()  # named in no count: not pruned
    keep = init_scores.keep_scores("grasp", model, x, y)
    w = model.get_layer("fc1").kernel.numpy()
    np.testing.assert_allclose(keep["fc1"], w * init_scores.hessian_gradient_product(model, x, y)["fc1"])


def test_synflow_uses_no_data_and_leaves_the_model_alone():
    model = two_layer()
    before = [w.copy() for w in model.get_weights()]
    a = init_scores.keep_scores("synflow", model, *data(seed=1))
    b = init_scores.keep_scores("synflow", model, *data(n=9, seed=7))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].dtype == np.float64
    snip_a = init_scores.keep_scores("snip", model, *data(seed=1))
    snip_b = init_scores.keep_scores("snip", model, *data(n=9, seed=7))
    assert not np.allclose(snip_a["fc1"], snip_b["fc1"])  # a data-dependent score does change
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)


def test_synflow_first_iteration_equals_the_closed_form_of_a_linear_net():
    model = two_layer(activation=None)
    w1, b1, w2, _ = [np.abs(w.astype(np.float64)) for w in model.get_weights()]
    # R = 1^T (|W2|^T (|W1|^T 1 + |b1|) + |b2|): dR/dW1_ij = sum_k |W2_jk|, dR/dW2_jk = sum_i |W1_ij| + |b1_j|.
    expect1 = w1 * w2.sum(1)[None, :]
    expect2 = w2 * (w1.sum(0) + b1)[:, None]
    scores = init_scores.synflow_scores(model)
    np.testing.assert_allclose(scores["fc1"], expect1, rtol=1e-6)
    np.testing.assert_allclose(scores["output"], expect2, rtol=1e-6)
    # Under a mask the pruned weights drop out of R.
    masks = {"fc1": np.ones((4, 3), bool), "output": np.ones((3, 2), bool)}
    masks["fc1"][:, 0] = False
    masked = init_scores.synflow_scores(model, masks)
    np.testing.assert_allclose(masked["output"][0], w2[0] * b1[0], rtol=1e-6)
    assert (masked["fc1"][:, 0] == 0).all()


def bn_model(dropout=0.0, dtype="float64", seed=0):
    """conv -> BatchNorm -> tanh (smooth, for finite differences) -> average pool -> (dropout) -> dense, with
    non-trivial BatchNorm parameters and moving statistics, so that the two modes give different scores."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((5, 5, 2), dtype=dtype)
    h = keras.layers.Conv2D(3, 3, use_bias=False, dtype=dtype, name="conv1")(x)
    h = keras.layers.BatchNormalization(dtype=dtype, name="bn1")(h)
    h = keras.layers.GlobalAveragePooling2D(dtype=dtype)(keras.layers.Activation("tanh", dtype=dtype)(h))
    if dropout:
        h = keras.layers.Dropout(dropout, dtype=dtype, name="dropout1")(h)
    model = keras.Model(x, keras.layers.Dense(2, dtype=dtype, name="output")(h))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) if "variance" in v.name else rng.normal(size=w.shape)
                       for v, w in zip(model.weights, model.get_weights())])
    return model


def bn_data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 5, 2)), rng.integers(0, 2, size=n)


def reference_gradient(model, x, y, training, temperature=1.0):
    """dL/dw of the kernels by a plain GradientTape, the whole model run with `training` (on a twin without
    dropout, so training=True means batch statistics and nothing else)."""
    with tf.GradientTape() as tape:
        logits = model(x, training=training) / temperature
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    kernels = [layer.kernel for layer in pruning.prunable_layers(model)]
    return [g.numpy() for g in tape.gradient(loss, kernels)]


def test_snip_and_grasp_score_batchnorm_as_their_references():
    """GraSP (pruner/GraSP.py: training mode) normalises with the batch's statistics; SNIP (snip-public:
    is_train False) with the moving ones; dropout stays off in both."""
    # Scored in float32, where Keras runs BatchNorm fused (as in resnet18 and vgg19), whose second derivative is
    # exact; the references in float64 (there Keras' unfused BatchNorm takes the variance with tf.nn.moments,
    # which stops the gradient through the mean: exact first derivatives, but H g off by ~0.1%).
    model = bn_model(dropout=0.5, dtype="float32")
    twin = bn_model()  # the same network without dropout, in float64
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    x, y = bn_data()
    x32 = x.astype(np.float32)
    w = {layer.name: layer.kernel.numpy() for layer in pruning.prunable_layers(twin)}
    names = list(w)
    moving = dict(zip(names, reference_gradient(twin, x, y, training=False)))
    batch = dict(zip(names, reference_gradient(twin, x, y, training=True)))  # (moves the twin's statistics)
    for name in names:
        assert not np.allclose(batch[name], moving[name])  # the two modes differ on this network
    snip_default = init_scores.snip(model, x32, y)
    snip_batch = init_scores.snip(model, x32, y, batch_statistics=True)
    for name in names:
        for scores, g in ((snip_default, moving), (snip_batch, batch)):
            expect = np.abs(w[name] * g[name])
            np.testing.assert_allclose(scores[name], expect, rtol=1e-4, atol=1e-5 * expect.max())
    # GraSP's H g in batch-statistics mode against central differences of the batch-mode gradient.
    kernels = [layer.kernel for layer in pruning.prunable_layers(twin)]
    t = init_scores.GRASP_TEMPERATURE
    v = reference_gradient(twin, x, y, True, t)
    eps = 1e-3 / np.sqrt(sum(float((a ** 2).sum()) for a in v))
    grads = []
    for sign in (1, -1):
        for k, d in zip(kernels, v):
            k.assign(w[k.name.split("/")[0]] + sign * eps * d)
        grads.append(reference_gradient(twin, x, y, True, t))
    hg = {name: (p - m) / (2 * eps) for name, p, m in zip(names, *grads)}
    scores = init_scores.grasp(model, x32, y)
    inference = init_scores.grasp(model, x32, y, batch_statistics=False)
    for name in names:
        expect = -w[name] * hg[name]
        assert np.abs(expect).max() > 0
        np.testing.assert_allclose(scores[name], expect, rtol=1e-3, atol=1e-5 * np.abs(expect).max())
        assert not np.allclose(inference[name], expect, rtol=0.1)


def test_scoring_leaves_batchnorm_statistics_and_the_model_unchanged():
    model = bn_model(dropout=0.5, dtype="float32")
    x, y = bn_data()
    x = x.astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    bn = model.get_layer("bn1")
    runs = [init_scores.snip(model, x, y, batch_statistics=True) for _ in range(2)]
    runs += [init_scores.grasp(model, x, y) for _ in range(2)]
    init_scores.masks_at_level("grasp", model, {"conv1": 20}, x=x, y=y)
    for name in runs[0]:  # dropout off: the same scores every time
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
        np.testing.assert_array_equal(runs[2][name], runs[3][name])
    for w, v in zip(before, model.get_weights()):  # moving mean and variance included
        np.testing.assert_array_equal(w, v)
    assert "call" not in vars(bn)  # the layer's own call again
    model(x, training=True)  # the check above is not vacuous: a training-mode call does move them
    assert not np.array_equal(bn.moving_mean.numpy(), before[[v.name for v in model.weights].index(
        bn.moving_mean.name)])


def small_model():
    keras.utils.set_random_seed(3)
    x = keras.Input((10,))
    h = keras.layers.Dense(12, activation="relu", name="fc1")(x)
    h = keras.layers.Dense(8, activation="relu", name="fc2")(h)
    return keras.Model(x, keras.layers.Dense(3, name="output")(h))


def imp_counts(model, rates, round_, scope):
    """What IMP itself keeps after `round_` rounds, by running its pruning steps on random kernels."""
    rng = np.random.default_rng(5)
    masks = pruning.full_masks(model)
    prune = pruning.prune_global if scope == "global" else pruning.prune
    for _ in range(round_):
        masks = prune({n: rng.normal(size=m.shape) for n, m in masks.items()}, masks, rates)
    return {n: int(m.sum()) for n, m in masks.items()}


@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("method", init_scores.METHODS)
def test_every_method_reaches_imps_exact_weight_count(method, scope):
    model = small_model()
    rates = {"fc1": 0.5, "fc2": 0.5, "output": 0.25}
    sizes = {n: m.size for n, m in pruning.full_masks(model).items()}
    x, y = data(n=30, inputs=10, classes=3)
    for round_ in (1, 3, 6):
        counts = pruning.level_counts(sizes, rates, round_, scope)
        masks = init_scores.masks_at_level(method, model, counts, scope, x=x, y=y,
                                           rng=np.random.default_rng(0), synflow_iterations=5)
        got, imp = {n: int(m.sum()) for n, m in masks.items()}, imp_counts(model, rates, round_, scope)
        if scope == "layerwise":
            assert got == imp
        else:  # per pool of layers sharing a rate, as IMP's global pruning pools them
            assert got["output"] == imp["output"] and got["fc1"] + got["fc2"] == imp["fc1"] + imp["fc2"]
            assert all(m.any() for m in masks.values())
        assert sum(got.values()) == sum(imp.values())


def test_level_counts_follow_imp_round_by_round_not_the_rounded_fraction():
    # IMP at rate 0.2 on 300 weights: 240, 192, 154, 123, 98, 78; round(300 * 0.8 ** 6) would be 79.
    assert pruning.level_counts({"a": 300}, {"a": 0.2}, 6) == {"a": 78}
    assert pruning.keep_count(300, 0.8 ** 6) == 79
    sizes, rates = {"a": 5, "b": 7, "c": 13}, {"a": 0.5, "b": 0.5, "c": 0.5}
    assert pruning.level_counts(sizes, rates, 2) == {"a": 1, "b": 2, "c": 3}  # 5 -> 2 -> 1, 7 -> 4 -> 2, 13 -> 6 -> 3
    assert pruning.level_counts(sizes, rates, 2, "global") == {("a", "b", "c"): 6}  # 25 -> 12 -> 6
    assert pruning.level_counts(sizes, {"a": 0.5}, 1, "global") == {("a",): 2}  # rate 0: in no pool
    assert pruning.level_counts({"a": 100}, {"a": 0.2}, 0) == {"a": 100}


def test_scheduled_counts_end_at_the_target():
    sizes = {"a": 1000}
    steps = [pruning.scheduled_counts({"a": 10}, sizes, i, 4)["a"] for i in range(1, 5)]
    assert steps == [316, 100, 32, 10] and steps == sorted(steps, reverse=True)


def test_masks_from_scores_global_ranks_signed_scores_across_layers():
    scores = {"a": np.array([-5.0, -1.0, 3.0, 0.5]), "b": np.array([-4.0, 2.0, -3.0, -0.2]),
              "c": np.array([-9.0, -9.0])}
    masks = pruning.masks_from_scores(scores, {("a", "b"): 4}, "global")
    assert masks["a"].tolist() == [False, False, True, True]
    assert masks["b"].tolist() == [False, True, False, True]
    assert masks["c"].all()  # in no pool: not pruned


def test_invert_keeps_exactly_the_complement_ranking():
    model = small_model()
    counts = {"fc1": 30, "fc2": 48}  # of 120 and 96
    complement = {"fc1": 90, "fc2": 48}
    x, y = data(n=30, inputs=10, classes=3)
    for method in ("magnitude_init", "snip", "grasp", "synflow"):
        normal = init_scores.masks_at_level(method, model, complement, x=x, y=y, synflow_iterations=1)
        inverted = init_scores.masks_at_level(method, model, counts, x=x, y=y, invert=True, synflow_iterations=1)
        for name in ("fc1", "fc2"):
            np.testing.assert_array_equal(inverted[name], ~normal[name])
        assert inverted["output"].all()


def test_shuffle_keeps_per_layer_counts_and_moves_positions():
    model = small_model()
    masks = init_scores.masks_at_level("magnitude_init", model, {"fc1": 36, "fc2": 48})
    shuffled = init_scores.shuffle_masks(masks, np.random.default_rng(0))
    for name in masks:
        assert shuffled[name].shape == masks[name].shape and shuffled[name].sum() == masks[name].sum()
    assert not np.array_equal(shuffled["fc1"], masks["fc1"]) and not np.array_equal(shuffled["fc2"], masks["fc2"])
    assert shuffled["output"].all()


def test_batch_per_class_takes_that_many_of_each_class():
    y = np.repeat(np.arange(4), 25)
    x = np.arange(100)[:, None]
    bx, by = init_scores.batch_per_class(x, y, 10, np.random.default_rng(0))
    assert np.bincount(by).tolist() == [10] * 4 and (y[bx[:, 0]] == by).all()
