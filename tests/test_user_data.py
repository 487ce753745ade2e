"""Your data (issue 26): --dataset=package.module:function, any tfds image-classification name (mocked), and the
data options --train_subset and --random_labels."""
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import data_functions
from lth_tf.data import arrays, datasets, loading, lookup, options, tfds_info
from lth_tf.experiment import experiment
from lth_tf.experiment.config import Config, ConfigError
from lth_tf.experiment.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def lth(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]))
    return subprocess.run([sys.executable, "-m", "lth_tf.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


# ---- arrays ------------------------------------------------------------------------------------------------------
def test_from_arrays_holds_out_validation_and_keeps_the_arrays_as_given():
    x_tr, y_tr, x_te, y_te = data_functions.blobs()
    data = arrays.from_arrays(x_tr, y_tr, x_te, y_te, seed=3)
    assert (data.input_shape, data.num_classes) == ((8,), 3)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (540, 60, 150)  # 10% held out
    train, val = loading.split_indices(600, 60, seed=3)
    assert np.array_equal(data.x_train, x_tr[train]) and np.array_equal(data.y_val, y_tr[val])
    assert np.array_equal(data.x_test, x_te) and data.x_train.dtype == np.float32 and data.y_test.dtype == np.int32
    assert len(arrays.from_arrays(x_tr, y_tr, x_te, y_te, validation_size=100).x_val) == 100


@pytest.mark.parametrize("function, message", [
    ("bad_lengths", "y_train must hold one label per example of x_train (600)"),
    ("bad_shapes", "x_train's examples have shape (8,), x_test's (7,)"),
    ("negative_labels", "labels must be in [0, classes), y_test holds -1"),
    ("not_arrays", "must return (x_train, y_train, x_test, y_test)"),
    ("raises", "the function raised RuntimeError: the data server is down"),
    ("no_such_function", "cannot import it (AttributeError"),
])
def test_a_bad_dataset_function_is_refused_in_one_line_naming_the_flag(function, message):
    with pytest.raises(ConfigError) as e:
        Config(dataset=f"data_functions:{function}").resolve()
    assert str(e.value).startswith(f"--dataset=data_functions:{function}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_function_is_called_once_and_its_arrays_identify_the_results(monkeypatch):
    calls = []
    monkeypatch.setattr(data_functions, "counted", lambda: calls.append(1) or data_functions.blobs(), raising=False)
    arrays.call_function.cache_clear()
    cfg = Config(dataset="data_functions:counted", iterations=30).resolve()
    loading.load("data_functions:counted", seed=0)
    assert len(calls) == 1
    assert cfg.dataset_fingerprint == lookup.spec_for("data_functions:blobs").fingerprint
    assert cfg.identity()["dataset_fingerprint"] == cfg.dataset_fingerprint
    assert cfg.round_iterations == 30 and Config(dataset="data_functions:counted", epochs=1,
                                                 batch_size=60).resolve().round_iterations == 9  # 540 / 60


def test_arrays_remembered_under_a_name_are_that_dataset(tmp_path):
    x_tr, y_tr, x_te, y_te = data_functions.blobs()
    spec = arrays.remember("my_blobs", x_tr, y_tr, x_te, y_te)
    cfg = Config(dataset="my_blobs", iterations=20, eval_every=10, rounds=1, output_dir=str(tmp_path)).resolve()
    assert cfg.dataset_fingerprint == spec.fingerprint == lookup.spec_for("data_functions:blobs").fingerprint
    data = loading.load("my_blobs", seed=0)
    assert np.array_equal(data.x_train, arrays.from_arrays(x_tr, y_tr, x_te, y_te, seed=0).x_train)
    store = Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        assert [r["round"] for r in experiment.run(cfg, store, dataset=data)] == [0, 1]
    with pytest.raises(datasets.DataError, match="dataset 'bad': y_train must hold one label per example"):
        arrays.remember("bad", x_tr, y_tr[:5], x_te, y_te)


def test_dataset_function_end_to_end_through_the_command_line(tmp_path):
    out = tmp_path / "out"
    args = ["--dataset=data_functions:blobs", "--model=lenet300_100", "--rounds=1", "--iterations=60",
            "--eval_every=30", f"--output_dir={out}"]
    result = lth(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the arrays of data_functions:blobs" in result.stdout
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["round"]) for r in rows] == [0, 1]
    assert float(rows[0]["test_accuracy"]) > 0.6  # three well-separated blobs: chance is 1/3
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["dataset"] == "data_functions:blobs" and config["config"]["dataset_fingerprint"]
    bad = lth("--dataset=data_functions:bad_shapes", f"--output_dir={tmp_path / 'bad'}", timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("lth_tf: error: --dataset=data_functions:bad_shapes: ")
    assert not (tmp_path / "bad").exists()


# ---- tensorflow-datasets, mocked ---------------------------------------------------------------------------------
@pytest.fixture
def mock_tfds(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    # tfds.testing.mock_data serves examples but no prepared split sizes: say the builder is prepared with them.
    monkeypatch.setattr(tfds_info, "split_sizes", lambda builder: {"train": 60, "test": 40})
    tfds_info.spec.cache_clear()
    with tfds.testing.mock_data(num_examples=60):
        yield
    tfds_info.spec.cache_clear()


def test_a_tfds_image_classification_name_loads_standardised_by_its_training_split(mock_tfds, tmp_path):
    spec = lookup.spec_for("kmnist", str(tmp_path))
    assert (spec.input_shape, spec.num_classes, spec.train_size, spec.validation_size) == ((28, 28, 1), 10, 60, 6)
    data = loading.load("kmnist", str(tmp_path), seed=0)
    assert data.x_train.shape == (54, 28, 28, 1) and data.x_val.shape == (6, 28, 28, 1)
    assert abs(data.x_train.mean()) < 1e-4 and abs(data.x_train.std() - 1) < 1e-4  # the training split's statistics
    assert abs(data.x_val.mean()) > 1e-4  # ... not the validation examples'


def test_a_tfds_dataset_end_to_end(mock_tfds, tmp_path):
    cfg = Config(model="lenet300_100", dataset="svhn_cropped", data_dir=str(tmp_path), rounds=1, iterations=20,
                 eval_every=10, batch_size=10, output_dir=str(tmp_path / "out")).resolve()
    store = Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        rows = experiment.run(cfg, store)
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["weights_remaining"] < 1.0


def test_tfds_names_that_cannot_serve_are_refused(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    tfds_info.spec.cache_clear()
    for name, message in [("imdb_reviews", "not an image-classification dataset"),
                          ("kmnist", f"not downloaded in {tmp_path}"),
                          ("no_such_data", "unknown dataset 'no_such_data' (--dataset)")]:
        with pytest.raises(ConfigError) as e:
            Config(dataset=name, data_dir=str(tmp_path)).resolve()
        assert "--dataset" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


# ---- --train_subset and --random_labels --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def blobs():
    return arrays.from_arrays(*data_functions.blobs(), seed=0)


def test_train_subset_is_a_fixed_seeded_subset_of_the_training_split(blobs):
    sub = options.apply(blobs, train_subset=100, seed=5)
    assert len(sub.x_train) == 100 and np.array_equal(sub.x_val, blobs.x_val)
    rows = {row.tobytes() for row in blobs.x_train}
    assert all(row.tobytes() in rows for row in sub.x_train)  # drawn from the training split, validation excluded
    assert np.array_equal(options.apply(blobs, train_subset=100, seed=5).x_train, sub.x_train)  # deterministic
    assert not np.array_equal(options.apply(blobs, train_subset=100, seed=6).x_train, sub.x_train)
    assert options.apply(blobs) is blobs
    cfg = Config(dataset="data_functions:blobs", train_subset=100, epochs=1, batch_size=10).resolve()
    assert cfg.round_iterations == 10  # an epoch is a pass over the subset


def test_random_labels_redraw_an_exact_seeded_fraction(blobs):
    data = options.apply(blobs, random_labels=0.25, seed=1)
    n = len(blobs.y_train)
    _, chosen = options.randomized(blobs.y_train, 0.25, 3, seed=1)
    assert len(chosen) == math.ceil(0.25 * n) == 135
    others = np.setdiff1d(np.arange(n), chosen)
    assert np.array_equal(data.y_train[others], blobs.y_train[others])  # the rest keep their labels
    changed = np.count_nonzero(data.y_train != blobs.y_train)
    assert 0.5 * 135 < changed <= 135  # uniform redraws: about 2/3 of them differ with 3 classes
    assert np.array_equal(options.apply(blobs, random_labels=0.25, seed=1).y_train, data.y_train)
    assert not np.array_equal(options.apply(blobs, random_labels=0.25, seed=2).y_train, data.y_train)
    assert np.array_equal(data.y_val, blobs.y_val) and np.array_equal(data.x_train, blobs.x_train)
    assert len(options.randomized(blobs.y_train, 1.0, 3, seed=0)[1]) == n


@pytest.mark.parametrize("fields, message", [
    (dict(train_subset=0), "--train_subset must be in [1, 7200]"),
    (dict(train_subset=7201), "--train_subset must be in [1, 7200]"),
    (dict(random_labels=1.5), "--random_labels must be in [0, 1]"),
    (dict(random_labels=-0.1), "--random_labels must be in [0, 1]"),
    (dict(augment=True), "--augment needs images"),
])
def test_bad_data_options_are_refused(fields, message):
    with pytest.raises(ConfigError) as e:
        Config(**fields).resolve()
    assert message in str(e.value)
