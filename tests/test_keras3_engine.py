"""The experiment on the Keras 3 engine (--engine=keras3), on the TensorFlow and JAX backends.

tests/conftest.py selects legacy Keras for the pytest process, so Keras 3 runs only in subprocesses: this file,
run as a script (`python tests/test_keras3_engine.py RUN OUT`), trains the experiments named RUN into the
directory OUT; the tests read the stored results (numpy only) and check their properties:

  tf       (KERAS_BACKEND=tensorflow, one process) lenet300_100 on mnist1d, 300 iterations, 2 rounds,
           --deterministic, on both engines: identical initial weights, round-1 masks agreeing on >= 99% of
           the weights, also with late rewinding; a round resumed from its mid-round backup equals the
           uninterrupted round.
  jax      (KERAS_BACKEND=jax, TensorFlow, tf_keras and tfmot made unimportable) IMP with every control and late
           rewinding, global one-shot pruning, the cross-engine run's settings, and the resume check.
  cli      (the same blocked JAX) `python -m lth_tf.main --engine=keras3` and `python -m lth_tf.report`.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS = dict(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=300, eval_every=100, deterministic=True)
IMP = dict(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=90, eval_every=30, momentum=0.9,
           rewind_iteration=30, variants=("lottery", "reinit", "rearrange", "shuffle", "invert"))
ONESHOT = dict(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=60, eval_every=30, pruning="oneshot",
               pruning_scope="global")
# Late rewinding mid-chunk, with a schedule (warm-up, a drop) that the rewound rounds continue from k.
LATE = dict(rewind_iteration=150, warmup=50, lr_drops=(200,), lr_gamma=0.5, momentum=0.9, nesterov=True)
BLOCKED = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tensorflow_datasets")


# ---------------------------------------------------------------------------------------------------------
# The subprocess side (Keras 3 imported here only).
def _experiment(out, name, **settings):
    from lth_tf.experiment import experiment
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.store import Store
    cfg = Config(output_dir=os.path.join(out, name), **settings).resolve()
    store = Store(cfg.results_dir())
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store)


def _resume(out):
    """One round trained straight through, and again from its backup at iteration 30 by a fresh trainer."""
    import keras
    from lth_tf.data import loading
    from lth_tf.experiment import engines
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.plan import train_spec
    from lth_tf.training.jobs import BackupSlot, Job

    cfg = Config(engine="keras3", model="lenet300_100", dataset="mnist1d", iterations=90, eval_every=30,
                 momentum=0.9, rounds=1).resolve()
    data, engine = loading.load("mnist1d"), engines.make(cfg)
    saved = {}

    def result(load):
        keras.utils.set_random_seed(0)
        model = engine.build(data, seed=0)
        masks = {name: np.random.default_rng(1).random(m.shape) < 0.5 for name, m in engine.full_masks(model).items()}
        start = engine.snapshot(engine.build(data, seed=0))
        trainer = engine.trainer([model], data, train_spec(cfg, 0))
        job = Job(start, masks, data_key=5, backup=BackupSlot(load=load, save=lambda a: saved.setdefault(
            json.loads(str(a["meta"]))["iteration"], dict(a))))
        return trainer.train_many([job])[0]

    straight = result(lambda: None)
    resumed = result(lambda: saved[30])
    np.savez(os.path.join(out, "resume.npz"), **{f"straight/{k}": v for k, v in straight.weights.items()},
             **{f"resumed/{k}": v for k, v in resumed.weights.items()})
    with open(os.path.join(out, "resume.json"), "w") as f:
        json.dump({"resumed_from": resumed.resumed_from, "curves_equal": straight.curve[1:] == resumed.curve[1:]
                   or [p["test_loss"] for p in straight.curve] == [p["test_loss"] for p in resumed.curve]}, f)


def _initial_weights(out):
    """conv2 (truncated normal) and resnet18 (Glorot, BatchNorm) built by both engines from seed 7."""
    from lth_tf.keras3 import networks as k3
    from lth_tf.keras3.rewind import snapshot as k3_snapshot
    from lth_tf.models import networks
    from lth_tf.pruning.rewind import snapshot
    for name, shape in (("conv2", (28, 28, 1)), ("resnet18", (32, 32, 3))):
        np.savez(os.path.join(out, f"init_{name}.npz"),
                 **{f"tf_keras/{k}": v for k, v in snapshot(networks.build(name, shape, 10, seed=7)).items()},
                 **{f"keras3/{k}": v for k, v in k3_snapshot(k3.build(name, shape, 10, seed=7)).items()})


def _script(run, out):
    import keras
    if run == "tf":
        _initial_weights(out)
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(0)
        _experiment(out, "tf_keras", engine="tf_keras", **CROSS)
        _experiment(out, "keras3", engine="keras3", **CROSS)
        _experiment(out, "tf_keras_late", engine="tf_keras", **LATE, **CROSS)
        _experiment(out, "keras3_late", engine="keras3", **LATE, **CROSS)
        _resume(out)
    elif run == "jax":
        _experiment(out, "imp", engine="keras3", **IMP)
        _experiment(out, "oneshot", engine="keras3", **ONESHOT)
        _experiment(out, "keras3", engine="keras3", **CROSS)
        _resume(out)
    print("backend", keras.backend.backend(), "tensorflow imported:", "tensorflow" in sys.modules)


# ---------------------------------------------------------------------------------------------------------
# The pytest side.
def _env(backend, blocked_dir=None):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "KERAS_BACKEND")}
    path = [p for p in (blocked_dir, ROOT, os.environ.get("PYTHONPATH")) if p]
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(path))
    return env


def _block(directory):
    """A path entry whose TensorFlow, tf_keras, tfmot and tensorflow-datasets raise ImportError on import."""
    for name in BLOCKED:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        with open(os.path.join(directory, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('{name} is made unimportable by tests/test_keras3_engine.py')\n")
    return directory


def _run(args, env, timeout=300):
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _has(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def tf_runs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tf"))
    stdout = _run([sys.executable, __file__, "tf", out], _env("tensorflow"))
    assert "backend tensorflow" in stdout
    return out


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    if not _has("jax"):
        pytest.skip("JAX is not installed")
    out = str(tmp_path_factory.mktemp("jax"))
    stdout = _run([sys.executable, __file__, "jax", out], _env("jax", _block(str(tmp_path_factory.mktemp("b")))))
    assert "backend jax tensorflow imported: False" in stdout
    return out


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _round(out, name, variant, round_, what, trial=0):
    return _npz(os.path.join(out, name, f"trial_{trial}", variant, f"round_{round_}", f"{what}.npz"))


def _agreement(a, b):
    return sum(int((a[n] == b[n]).sum()) for n in a) / sum(a[n].size for n in a)


def test_initial_weights_identical_across_engines_on_tensorflow(tf_runs):
    tf_keras = _npz(os.path.join(tf_runs, "tf_keras", "trial_0", "initial_weights.npz"))
    keras3 = _npz(os.path.join(tf_runs, "keras3", "trial_0", "initial_weights.npz"))
    assert sorted(tf_keras) == sorted(keras3) == ["fc1/bias", "fc1/kernel", "fc2/bias", "fc2/kernel",
                                                  "output/bias", "output/kernel"]
    for key in tf_keras:
        np.testing.assert_array_equal(tf_keras[key], keras3[key], err_msg=key)


@pytest.mark.parametrize("model", ["conv2", "resnet18"])
def test_initial_weights_identical_for_conv_and_batchnorm_models_on_tensorflow(tf_runs, model):
    weights = _npz(os.path.join(tf_runs, f"init_{model}.npz"))
    tf_keras = {k[9:]: v for k, v in weights.items() if k.startswith("tf_keras/")}
    keras3 = {k[7:]: v for k, v in weights.items() if k.startswith("keras3/")}
    assert sorted(tf_keras) == sorted(keras3) and "conv1/kernel" in keras3
    for key in tf_keras:
        np.testing.assert_array_equal(tf_keras[key], keras3[key], err_msg=key)


def test_round1_masks_agree_across_engines_on_tensorflow(tf_runs):
    a = _round(tf_runs, "tf_keras", "lottery", 1, "masks")
    b = _round(tf_runs, "keras3", "lottery", 1, "masks")
    assert {n: int(m.sum()) for n, m in a.items()} == {n: int(m.sum()) for n, m in b.items()}  # the same counts
    agreement = _agreement(a, b)
    print(f"round-1 masks, tf_keras vs keras3 (tensorflow): {100 * agreement:.2f}% of weights agree")
    assert agreement >= 0.99


def test_late_rewinding_matches_across_engines_on_tensorflow(tf_runs):
    """--rewind_iteration=150 (mid-chunk), warm-up, a drop at 200, Nesterov momentum: both engines record the same
    iteration-150 weights, and their rounds from 150 on (the schedule and the data order continuing) find the
    same round-1 mask and the same curve."""
    a = _npz(os.path.join(tf_runs, "tf_keras_late", "trial_0", "rewind_weights.npz"))
    b = _npz(os.path.join(tf_runs, "keras3_late", "trial_0", "rewind_weights.npz"))
    initial = _npz(os.path.join(tf_runs, "keras3_late", "trial_0", "initial_weights.npz"))
    assert any(not np.array_equal(b[k], initial[k]) for k in b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)
    masks = [_round(tf_runs, name, "lottery", 1, "masks") for name in ("tf_keras_late", "keras3_late")]
    assert _agreement(*masks) >= 0.99
    curves = []
    for name in ("tf_keras_late", "keras3_late"):
        with open(os.path.join(tf_runs, name, "trial_0", "lottery", "round_2", "curve.csv")) as f:
            curves.append(np.loadtxt(f, delimiter=",", skiprows=1))
    assert curves[0][:, 0].tolist() == [200, 300]  # evaluations on round 0's grid, from k = 150 on
    np.testing.assert_allclose(curves[0][:, 1:], curves[1][:, 1:], rtol=1e-4)


def test_round1_masks_on_jax_against_tf_keras(tf_runs, jax_runs):
    """JAX draws other initial values (its own random numbers, the same distributions), so its masks are another
    ticket: they agree with tf_keras's only where any two tickets of equal counts do, mostly on the many
    weights that both keep."""
    a = _round(tf_runs, "tf_keras", "lottery", 1, "masks")
    b = _round(jax_runs, "keras3", "lottery", 1, "masks")
    assert {n: int(m.sum()) for n, m in a.items()} == {n: int(m.sum()) for n, m in b.items()}
    print(f"round-1 masks, tf_keras vs keras3 (jax): {100 * _agreement(a, b):.2f}% of weights agree")


@pytest.mark.parametrize("runs", ["tf_runs", "jax_runs"])
def test_resume_from_mid_round_backup_equals_uninterrupted(runs, request):
    out = request.getfixturevalue(runs)
    with open(os.path.join(out, "resume.json")) as f:
        info = json.load(f)
    assert info["resumed_from"] == 30
    weights = _npz(os.path.join(out, "resume.npz"))
    for key in [k for k in weights if k.startswith("straight/")]:
        np.testing.assert_array_equal(weights[key], weights["resumed/" + key[9:]], err_msg=key)


def test_imp_exact_zeros_nested_masks_and_exact_rewinds_on_jax(jax_runs):
    from lth_tf.pruning import arrays
    initial = _npz(os.path.join(jax_runs, "imp", "trial_0", "initial_weights.npz"))
    rewind = _npz(os.path.join(jax_runs, "imp", "trial_0", "rewind_weights.npz"))
    assert any(not np.array_equal(initial[k], rewind[k]) for k in initial)  # iteration 30's weights, not W_0
    previous = None
    for r in range(3):
        masks = _round(jax_runs, "imp", "lottery", r, "masks")
        trained = _round(jax_runs, "imp", "lottery", r, "weights")
        start = _round(jax_runs, "imp", "lottery", r, "start_weights")
        for name, mask in masks.items():
            assert np.all(trained[f"{name}/kernel"][~mask] == 0.0), (r, name)  # exactly 0 after training
            if previous is not None:
                assert not np.any(mask & ~previous[name]), (r, name)  # nested: nothing comes back
                rate = 0.1 if name == "output" else 0.2
                assert mask.sum() == arrays.keep_count(int(previous[name].sum()), 1 - rate), (r, name)
            if r > 0:  # rewound to the iteration-30 weights under the mask, exactly
                np.testing.assert_array_equal(start[f"{name}/kernel"], rewind[f"{name}/kernel"] * mask)
        previous = masks
    with open(os.path.join(jax_runs, "imp", "results.csv")) as f:
        rows = f.read().splitlines()
    assert len(rows) == 1 + 3 + 4 * 2  # lottery rounds 0-2, four controls at rounds 1-2


def test_controls_on_jax(jax_runs):
    rewind = _npz(os.path.join(jax_runs, "imp", "trial_0", "rewind_weights.npz"))
    for r in (1, 2):
        ticket = _round(jax_runs, "imp", "lottery", r, "masks")
        for variant in ("reinit", "rearrange", "shuffle", "invert"):
            masks = _round(jax_runs, "imp", variant, r, "masks")
            trained = _round(jax_runs, "imp", variant, r, "weights")
            start = _round(jax_runs, "imp", variant, r, "start_weights")
            for name, mask in masks.items():
                assert mask.sum() == ticket[name].sum(), (variant, r, name)  # the ticket's count per layer
                assert np.all(trained[f"{name}/kernel"][~mask] == 0.0)
            fc1 = start["fc1/kernel"]
            if variant == "reinit":  # a fresh draw of the initialiser
                assert not np.array_equal(fc1, rewind["fc1/kernel"] * masks["fc1"])
            elif variant == "rearrange":  # the ticket's surviving values, moved
                kept = np.sort(rewind["fc1/kernel"][ticket["fc1"]])
                np.testing.assert_array_equal(np.sort(fc1[masks["fc1"]]), kept)
            else:
                assert not np.array_equal(masks["fc1"], ticket["fc1"])
                np.testing.assert_array_equal(fc1, rewind["fc1/kernel"] * masks["fc1"])


def test_global_oneshot_on_jax(jax_runs):
    round0 = _round(jax_runs, "oneshot", "lottery", 0, "weights")
    masks = _round(jax_runs, "oneshot", "lottery", 2, "masks")
    fc = ("fc1", "fc2")  # the layers at rate 0.2 share one global ranking; the output layer has its own
    assert sum(int(masks[n].sum()) for n in fc) == round(sum(masks[n].size for n in fc) * 0.8 ** 2)
    kept = np.concatenate([np.abs(round0[f"{n}/kernel"])[masks[n]] for n in fc])
    pruned = np.concatenate([np.abs(round0[f"{n}/kernel"])[~masks[n]] for n in fc])
    assert kept.min() >= pruned.max()  # one threshold over both layers, on round 0's trained weights


def test_cli_and_report_run_without_tensorflow_on_jax(tmp_path):
    if not _has("jax"):
        pytest.skip("JAX is not installed")
    env = _env("jax", _block(str(tmp_path / "blocked")))
    out = str(tmp_path / "run")
    stdout = _run([sys.executable, "-m", "lth_tf.main", "--engine=keras3", "--flagfile=flags/quickstart.flags",
                   "--rounds=1", "--control_rounds=1", "--iterations=40", "--eval_every=20", f"--output_dir={out}",
                   "--quiet"], env)
    assert "Keras 3" in stdout and "(jax)" in stdout and "round  1" in stdout
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["identity"]["engine"] == "keras3"
    report = _run([sys.executable, "-m", "lth_tf.report", out], env)
    assert "lottery" in report


@pytest.mark.parametrize("flags, env, message", [
    (["--trainer=tfmot"], {}, "--engine=keras3 does not combine with --trainer=tfmot"),
    (["--parallel_trials=2"], {}, "--engine=keras3 does not combine with --parallel_trials=2"),
    (["--pruning=snip"], {}, "pruning at initialization"),
    (["--model=tests.user_models:mlp"], {}, "--engine=keras3 does not combine with --model=tests.user_models:mlp"),
    ([], {"KERAS_BACKEND": "theano"}, "KERAS_BACKEND=theano is not a backend"),
    ([], {"KERAS_BACKEND": "torch"}, "torch is not installed"),
])
def test_bad_input_one_line_exit_2(flags, env, message, tmp_path):
    if env.get("KERAS_BACKEND") == "torch" and _has("torch"):
        pytest.skip("PyTorch is installed here")
    full = dict(_env("jax"), **env)
    done = subprocess.run([sys.executable, "-m", "lth_tf.main", "--engine=keras3", f"--output_dir={tmp_path}/out",
                           *flags], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lth_tf: error: ") and message in lines[0], done.stderr
    assert not os.path.exists(f"{tmp_path}/out")  # nothing written


def test_instability_refuses_keras3_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lth_tf.instability", "--engine=keras3", "--rewind_iterations=0",
                           f"--output_dir={tmp_path}/out"], env=_env("jax"), cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("lth_tf: error: lth_tf.instability runs on --engine=tf_keras only (its linear "
                                   "interpolation, lth_tf.experiment.interpolation, is tf_keras code), not "
                                   "--engine=keras3")
    assert not os.path.exists(f"{tmp_path}/out")


@pytest.mark.parametrize("field, value", [("strategy", "mirrored"), ("mixed_precision", True), ("tensorboard", True),
                                          ("pruning", "synflow"), ("trainer", "tfmot"), ("parallel_trials", 3)])
def test_config_refuses_what_keras3_cannot_do(field, value):
    from lth_tf.experiment.config import Config, ConfigError
    Config(model="lenet300_100", dataset="mnist1d", **{field: value}).resolve()  # fine on tf_keras
    with pytest.raises(ConfigError, match=r"^--engine=keras3 does not combine with --"):
        Config(model="lenet300_100", dataset="mnist1d", engine="keras3", **{field: value}).resolve()


def test_keras_backend_check(monkeypatch, tmp_path):
    from lth_tf.experiment import engines
    if _has("jax"):
        monkeypatch.setenv("KERAS_BACKEND", "jax")
        assert engines.keras_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "cntk"}')  # unset: Keras' own configuration decides
    with pytest.raises(engines.EngineError, match="KERAS_BACKEND=cntk is not a backend"):
        engines.keras_backend()


def test_engine_in_identity_only_when_not_tf_keras():
    from lth_tf.experiment.config import Config
    default = Config(model="lenet300_100", dataset="mnist1d").resolve()
    assert "engine" not in default.identity()  # directories written before --engine keep their hash
    keras3 = Config(model="lenet300_100", dataset="mnist1d", engine="keras3").resolve()
    assert keras3.identity()["engine"] == "keras3" and keras3.identity_hash() != default.identity_hash()


if __name__ == "__main__":
    _script(sys.argv[1], sys.argv[2])
