"""Your own model (--model=package.module:function, lth_tf.models.user) and lth_tf.run_experiment.

- Through the Python API, on arrays: a Functional Conv + BatchNorm + Dense model (tests/user_models.py) trains two
  rounds and `reinit`; each layer keeps exactly the paper's count (conv 10%, fc 20%, the output layer 10% of the
  survivors per round), BatchNorm and biases are rewound and never masked, reinit starts elsewhere; a rerun trains
  nothing; the report reads the directory and export rebuilds the ticket.
- Through the command line, killed mid-round and run again: it resumes from the backup and finishes.
- Identity: another architecture, or an edited function under the same name, gets another results directory.
- Bad input: one line `lth_tf: error: --model ...`, exit 2, nothing written.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import lth_tf
from lth_tf.experiment.config import Config, ConfigError
from tests import user_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(rounds=2, iterations=40, eval_every=20, learning_rate=0.05, variants=("lottery", "reinit"))


def _arrays(classes=10, seed=0):
    """MNIST-1D-shaped (40 features) synthetic data: the class is the position of the largest of 10 bumps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, 40)).astype(np.float32)
    y = np.argmax(x[:, :classes * 4:4], axis=1)
    return x[:400], y[:400], x[400:], y[400:]


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _keep(n, rate):
    return max(1, round(n * (1 - rate)))


def test_api_user_model_two_rounds_reinit_rerun_report_export(tmp_path):
    from lth_tf import export, report
    out = str(tmp_path / "mine")
    events = []
    rows = lth_tf.run_experiment(model=user_models.small_cnn, data=_arrays(), output_dir=out,
                                 on_event=events.append, **TINY)
    assert [(r["variant"], r["round"]) for r in rows] == [("lottery", 0), ("lottery", 1), ("lottery", 2),
                                                         ("reinit", 1), ("reinit", 2)]
    config = json.load(open(os.path.join(out, "config.json")))["config"]
    assert config["model"] == "tests.user_models:small_cnn" and len(config["model_architecture"]) == 16
    assert config["dataset"].startswith("arrays_") and config["optimizer"] == "sgd"

    trial = os.path.join(out, "trial_0")
    masks = {r: _npz(os.path.join(trial, "lottery", f"round_{r}", "masks.npz")) for r in range(3)}
    # conv1d: 5x1x8 kernel at 10%; dense: (18*8)x32 at 20%; dense_1, the output layer: 32x10 at half of 20%.
    assert sorted(masks[0]) == ["conv1d", "dense", "dense_1"]  # BatchNorm is not pruned
    for name, size, rate in (("conv1d", 40, 0.1), ("dense", 144 * 32, 0.2), ("dense_1", 320, 0.1)):
        assert masks[0][name].size == size and masks[0][name].all()
        assert int(masks[1][name].sum()) == _keep(size, rate)
        assert int(masks[2][name].sum()) == _keep(_keep(size, rate), rate)
        assert not np.any(masks[2][name] & ~masks[1][name])  # nested
    initial = _npz(os.path.join(trial, "initial_weights.npz"))
    start = _npz(os.path.join(trial, "lottery", "round_2", "start_weights.npz"))
    for key, value in initial.items():  # rewound: kernels under the mask, everything else as it was at init
        layer = key.split("/")[0]
        expected = value * masks[2][layer] if key.endswith("/kernel") else value
        np.testing.assert_array_equal(start[key], expected, err_msg=key)
    assert any(key.startswith("batch_normalization/") for key in start)
    reinit = _npz(os.path.join(trial, "reinit", "round_2", "start_weights.npz"))
    assert not np.array_equal(reinit["dense/kernel"], start["dense/kernel"])
    np.testing.assert_array_equal(reinit["dense/kernel"] == 0, ~masks[2]["dense"])  # same mask, other values

    again = lth_tf.run_experiment(model=user_models.small_cnn, data=_arrays(), output_dir=out, **TINY)
    assert again == rows  # all finished: nothing trained again

    paths = report.write_report(out)
    assert "tests.user_models:small_cnn" in open([p for p in paths if p.endswith("summary.md")][0]).read()
    ticket, ticket_masks = export.build_ticket(out, round_=2)
    assert int(np.count_nonzero(ticket.get_layer("dense").kernel.numpy())) == int(masks[2]["dense"].sum())


def test_architecture_is_part_of_the_identity(tmp_path, monkeypatch):
    import tf_keras as keras
    monkeypatch.chdir(tmp_path)

    def net():
        inputs = keras.Input(shape=(40,))
        return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(8)(inputs)))

    first = Config(model="tests.user_models:small_cnn").resolve()
    wider = Config(model="tests.user_models:small_cnn_wider").resolve()
    assert first.model_architecture != wider.model_architecture and first.results_dir() != wider.results_dir()
    assert first.results_dir().startswith("results/tests.user_models.small_cnn_mnist1d_")
    assert Config(model="lenet300_100").resolve().model_architecture is None  # built-in hashes are unchanged

    rows = lth_tf.run_experiment(model=net, data=_arrays(), rounds=0, iterations=20, eval_every=20)
    assert len(rows) == 1
    [before] = os.listdir("results")

    def net():  # noqa: F811 - edited: same name, another architecture
        inputs = keras.Input(shape=(40,))
        return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(9)(inputs)))

    lth_tf.run_experiment(model=net, data=_arrays(), rounds=0, iterations=20, eval_every=20)
    assert len(os.listdir("results")) == 2 and before in os.listdir("results")


def test_output_layer_is_the_one_producing_the_output():
    from lth_tf.models import user
    from lth_tf.pruning import masks
    # mlp: Dense(16) -> Dense(10) -> Activation: the second Dense produces the output
    assert masks.layer_rates(user.build("tests.user_models:mlp"), 0.2, 0.1, 0.1) == {"dense": 0.2, "dense_1": 0.1}
    assert masks.output_layer_name(user.build("tests.user_models:small_cnn")) == "dense_1"


@pytest.mark.parametrize("model,message", [
    ("no.such:thing", "cannot import module 'no.such'"),
    ("tests.user_models:nothing", "module 'tests.user_models' has no 'nothing'"),
    ("tests.user_models:not_a_function", "is not a function"),
    ("tests.user_models:raises", "calling it raised ValueError: no GPU here"),
    ("tests.user_models:returns_none", "returned builtins.NoneType, not a tf_keras model"),
    ("tests.user_models:no_prunable", "without Dense or Conv layers"),
    ("tests.user_models:five_outputs", "has 5 outputs, but the dataset's labels go up to 9"),
    ("tests.user_models:softmax_output", "ends in a softmax"),
    ("tests.user_models:image_input", "takes inputs of shape (28, 28, 1), the dataset gives (40,)"),
])
def test_bad_models_are_refused_in_one_line(model, message):
    with pytest.raises(ConfigError) as e:
        Config(model=model, dataset="mnist1d").resolve()
    assert str(e.value).startswith(f"--model {model}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_refusals_of_dropout_stacking_and_labels(tmp_path):
    with pytest.raises(ConfigError, match="^--model tests.user_models:mlp: --dropout"):
        Config(model="tests.user_models:mlp", dropout=0.5).resolve()
    with pytest.raises(ConfigError, match=r"^--parallel_trials cannot stack tests.user_models:small_cnn: its layer "
                                          r"'reshape' \(Reshape\)"):
        Config(model="tests.user_models:small_cnn", trials=2, parallel_trials=2).resolve()
    assert Config(model="tests.user_models:mlp", trials=2, parallel_trials=2).resolve().parallel_trials == 2
    x, y, xt, yt = _arrays()
    with pytest.raises(ConfigError, match="the model has 10 outputs, but the dataset's labels go up to 12"):
        lth_tf.run_experiment(model=user_models.small_cnn, data=(x, y, xt, np.full_like(yt, 12)),
                              output_dir=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="^data: y_train must hold one label per example of x_train"):
        lth_tf.run_experiment(model=user_models.small_cnn, data=(x, y[:5], xt, yt), output_dir=str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")


def _env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")


def _main(*args):
    return subprocess.Popen([sys.executable, "-m", "lth_tf.main", *args], cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("model", ["no.such:thing", "tests.user_models:raises"])
def test_cli_bad_model_one_line_exit_2_nothing_written(tmp_path, model):
    out = tmp_path / "out"
    proc = _main(f"--model={model}", f"--output_dir={out}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    ours = [line for line in err.splitlines() if line.startswith("lth_tf")]
    assert len(ours) == 1 and ours[0].startswith(f"lth_tf: error: --model {model}: ")
    assert err.strip().splitlines()[-1] == ours[0] and not out.exists()


@pytest.mark.multiprocess
def test_cli_user_model_killed_mid_round_resumes(tmp_path):
    out = str(tmp_path / "run")
    args = ["--model=tests.user_models:small_cnn", "--dataset=mnist1d", "--rounds=1", "--variants=lottery,reinit",
            "--iterations=200", "--eval_every=20", f"--output_dir={out}"]
    victim = _main(*args)
    backup = os.path.join(out, "trial_0", "lottery", "round_1", "backup", "state.npz")
    while not os.path.exists(backup):
        assert victim.poll() is None, "the run ended before round 1 saved a backup: " + victim.communicate()[1][-2000:]
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert not os.path.exists(os.path.join(out, "trial_0", "lottery", "round_1", "result.json"))

    proc = _main(*args)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "round  0  already finished" in stdout
    assert 0 < int(stdout.split("round  1  resuming from its backup at iteration ")[1].split()[0]) < 200
    import csv
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert [(r["trial"], r["variant"], r["round"]) for r in rows] == [("0", "lottery", "0"), ("0", "lottery", "1"),
                                                                      ("0", "reinit", "1")]
    # the last line: the ticket against reinit at the sparsest level, from the results table
    lottery, reinit = rows[1], rows[2]
    assert stdout.strip().splitlines()[-1] == (
        f"lth_tf: at {100 * float(lottery['weights_remaining']):.3g}% of weights: lottery test accuracy "
        f"{float(lottery['test_accuracy_at_early_stop']):.3f} (early stop {lottery['early_stop_iteration']}) vs reinit "
        f"{float(reinit['test_accuracy_at_early_stop']):.3f} (early stop {reinit['early_stop_iteration']})")


def test_api_stacks_a_stackable_user_model(tmp_path):
    """--parallel_trials=2 on a Dense-only model of the user's: the same networks as trained one at a time."""
    settings = dict(data=_arrays(), trials=2, rounds=1, iterations=20, eval_every=20)
    alone = lth_tf.run_experiment(model=user_models.mlp, output_dir=str(tmp_path / "alone"), **settings)
    stacked = lth_tf.run_experiment(model=user_models.mlp, output_dir=str(tmp_path / "stacked"), parallel_trials=2,
                                    **settings)
    assert [(r["trial"], r["round"]) for r in stacked] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for trial in (0, 1):
        a = _npz(str(tmp_path / "alone" / f"trial_{trial}" / "lottery" / "round_1" / "masks.npz"))
        b = _npz(str(tmp_path / "stacked" / f"trial_{trial}" / "lottery" / "round_1" / "masks.npz"))
        assert sorted(a) == sorted(b) == ["dense", "dense_1"]
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(*[_npz(str(tmp_path / "alone" / f"trial_{t}" / "initial_weights.npz"))["dense/kernel"]
                                for t in (0, 1)])


def test_weight_decay_on_a_user_model_is_the_built_in_decay():
    """user.build(weight_decay=c) (--weight_decay): an L2 penalty c/2 * sum(w**2) on each Dense and Conv kernel, the
    layers' names and initial weights unchanged."""
    import tf_keras as keras

    from lth_tf.models import user
    from lth_tf.pruning import rewind
    plain, decayed = (user.build("tests.user_models:small_cnn", seed=3, weight_decay=c) for c in (0.0, 1e-3))
    a, b = rewind.snapshot(plain), rewind.snapshot(decayed)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    kernels = [layer.kernel.numpy() for layer in decayed.layers if isinstance(layer, (keras.layers.Dense,
                                                                                       keras.layers.Conv1D))]
    assert len(kernels) == 3 and not plain.losses
    np.testing.assert_allclose(float(sum(decayed.losses)), sum(1e-3 / 2 * float((k ** 2).sum()) for k in kernels),
                               rtol=1e-5)


def test_hyperparameter_flags_on_a_user_model(tmp_path):
    """--weight_decay reaches a user model's kernels (the trained kernels shrink); --init is refused for it."""
    with pytest.raises(ConfigError, match="^--model tests.user_models:mlp: --init sets the built-in"):
        Config(model="tests.user_models:mlp", init="he").resolve()
    settings = dict(data=_arrays(), rounds=0, iterations=40, eval_every=20, learning_rate=0.05)
    norms = {}
    for decay in (0.0, 1.0):
        out = str(tmp_path / f"wd{decay}")
        lth_tf.run_experiment(model=user_models.mlp, output_dir=out, weight_decay=decay, **settings)
        weights = _npz(os.path.join(out, "trial_0", "lottery", "round_0", "weights.npz"))
        norms[decay] = float((weights["dense/kernel"] ** 2).sum())
        assert json.load(open(os.path.join(out, "config.json")))["config"]["weight_decay"] == decay
    assert norms[1.0] < 0.5 * norms[0.0]
