"""--tensorboard (lth_tf.training.summaries): one TensorBoard run per round, holding the round's curves and
sparsity.

The logged values are checked against what the store holds for the same rounds (curve.csv, masks.npz,
result.json), so the logs cannot drift from the results they describe.
"""
import csv
import glob
import json
import os

from lth_tf import _env  # noqa: F401
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.experiment import config as config_lib
from lth_tf.experiment import experiment
from lth_tf.experiment import store as store_lib
from lth_tf.pruning import masks as pruning
from lth_tf.training import summaries

ITERATIONS, EVAL_EVERY = 100, 50
CURVE_TAGS = {"loss/train", "accuracy/train", "loss/validation", "accuracy/validation", "loss/test",
              "accuracy/test"}


def _run(root, rounds, tensorboard):
    cfg = config_lib.Config(model="lenet300_100", dataset="mnist1d", rounds=rounds, iterations=ITERATIONS,
                            eval_every=EVAL_EVERY, variants=("lottery", "reinit"), output_dir=root,
                            tensorboard=tensorboard).resolve()
    store = store_lib.Store(root)
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store)
    return store


def read_scalars(log_dir):
    """{tag: [(step, value), ...]} from every event file in `log_dir`."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars", value.tag
                scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


def _curve(round_dir):
    with open(os.path.join(round_dir, "curve.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tb") / "results")
    _run(root, rounds=1, tensorboard=True)
    return root


def test_one_run_per_round_under_the_documented_path(run_dir):
    runs = sorted(os.path.relpath(os.path.dirname(p), run_dir)
                  for p in glob.glob(os.path.join(run_dir, "tensorboard", "*", "*", "*", "events.out.tfevents.*")))
    assert runs == [os.path.join("tensorboard", "trial_0", "lottery", "round_0"),
                    os.path.join("tensorboard", "trial_0", "lottery", "round_1"),
                    os.path.join("tensorboard", "trial_0", "reinit", "round_1")]
    assert summaries.round_log_dir(run_dir, 0, "reinit", 1) == os.path.join(run_dir, runs[2])


@pytest.mark.parametrize("variant,round_", [("lottery", 0), ("lottery", 1), ("reinit", 1)])
def test_logged_curves_and_sparsity_match_the_stored_round(run_dir, variant, round_):
    store = store_lib.Store(run_dir)
    scalars = read_scalars(summaries.round_log_dir(run_dir, 0, variant, round_))
    masks = store.load_round(0, variant, round_, "masks")
    assert CURVE_TAGS <= set(scalars)
    assert {f"sparsity/{name}" for name in masks} | {"weights_remaining", "learning_rate"} <= set(scalars)

    # Steps are iterations within the round (the optimizer restarts each round), one per evaluation.
    curve = _curve(store.round_dir(0, variant, round_))
    steps = [int(p["iteration"]) for p in curve]
    assert steps == list(range(EVAL_EVERY, ITERATIONS + 1, EVAL_EVERY))
    for tag, column in (("loss/validation", "val_loss"), ("accuracy/validation", "val_accuracy"),
                        ("loss/test", "test_loss"), ("accuracy/test", "test_accuracy"),
                        ("loss/train", "train_loss")):
        assert [s for s, _ in scalars[tag]] == steps, tag
        np.testing.assert_allclose([v for _, v in scalars[tag]], [p[column] for p in curve], rtol=1e-5,
                                   err_msg=tag)
    assert all(0.0 <= v <= 1.0 for _, v in scalars["accuracy/train"])

    # Sparsity is measured on the kernels, at every evaluation: the pruned share, constant through training.
    for name, mask in masks.items():
        values = [v for _, v in scalars[f"sparsity/{name}"]]
        np.testing.assert_allclose(values, [1.0 - mask.mean()] * len(steps), atol=1e-6, err_msg=name)
    with open(os.path.join(store.round_dir(0, variant, round_), "result.json")) as f:
        remaining = json.load(f)["weights_remaining"]
    np.testing.assert_allclose([v for _, v in scalars["weights_remaining"]], remaining, atol=1e-6)
    if round_ > 0:
        assert remaining < 0.85  # the round really is pruned, so the sparsity check above means something


def test_continuing_without_the_flag_adds_no_logs_and_keeps_the_old_ones(tmp_path):
    root = str(tmp_path / "results")
    _run(root, rounds=0, tensorboard=True)
    before = read_scalars(summaries.round_log_dir(root, 0, "lottery", 0))
    _run(root, rounds=1, tensorboard=False)  # --tensorboard is not part of the configuration's identity
    assert store_lib.Store(root).is_done(0, "lottery", 1)
    assert not os.path.exists(os.path.join(root, "tensorboard", "trial_0", "lottery", "round_1"))
    assert read_scalars(summaries.round_log_dir(root, 0, "lottery", 0)) == before


def test_callback_on_a_tfmot_wrapped_keras_model(tmp_path):
    """RoundSummaries in a user's own fit: sparsity from tfmot's masks; a fit from step 0 starts a fresh run."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    masks = {"hidden": rng.random((8, 16)) < 0.25, "out": np.ones((16, 3), bool)}
    log_dir = str(tmp_path / "run")

    def fit():
        wrapped = pruning.wrap(model, masks)
        wrapped.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        wrapped.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y),
                    callbacks=[tfmot_update_step(), summaries.RoundSummaries(log_dir)])

    fit()
    fit()  # a new compile: the optimizer restarts at step 0, so the first run's events are replaced
    assert len(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))) == 1
    scalars = read_scalars(log_dir)
    assert [s for s, _ in scalars["loss/validation"]] == [4, 8, 12]  # 64 examples / 16 per batch
    assert "loss/test" not in scalars  # a plain fit has no test_* logs; nothing is invented
    np.testing.assert_allclose([v for _, v in scalars["sparsity/hidden"]], 1.0 - masks["hidden"].mean())
    np.testing.assert_allclose([v for _, v in scalars["sparsity/out"]], 0.0)


def tfmot_update_step():
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.UpdatePruningStep()
