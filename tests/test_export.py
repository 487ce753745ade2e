"""lth_tf.export: a finished round as a plain Keras model and a TFLite file, exactly sparse, smaller gzipped.

The run is real but tiny (lenet300_100 on mnist1d, rounds 0 and 1, 50 iterations each); the command line is
driven in a subprocess once, the bad-input paths in-process through export.main.
"""
import json
import os
import subprocess
import sys
import warnings

from lth_tf import _env  # noqa: F401
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf import export
from lth_tf.data import loading
from lth_tf.experiment import config as config_lib
from lth_tf.experiment import experiment
from lth_tf.experiment import store as store_lib
from lth_tf.pruning import masks as pruning

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("export") / "results")
    cfg = config_lib.Config(model="lenet300_100", dataset="mnist1d", rounds=1, iterations=50, eval_every=50,
                            output_dir=root).resolve()
    store = store_lib.Store(root)
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store)
    return root


@pytest.fixture(scope="module")
def cli_export(run_dir, tmp_path_factory):
    """`python -m lth_tf.export RUN --round=1 --out=OUT`, run once: (completed process, OUT)."""
    out = str(tmp_path_factory.mktemp("cli") / "ticket")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "lth_tf.export", run_dir, "--round=1", f"--out={out}"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, out


def _tflite_predict(path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def test_cli_writes_the_three_files_and_prints_sizes(cli_export):
    proc, out = cli_export
    for name in ("ticket.keras", "ticket.h5", "ticket.tflite", "export.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert "80.23% of prunable weights remain" in proc.stdout
    table = proc.stdout[proc.stdout.index("ticket raw"):]
    assert all(f".{fmt} " in table for fmt in ("keras", "h5", "tflite"))
    assert "dense gzip" in table


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_exported_model_holds_the_rounds_trained_weights_with_exactly_the_masks_zeros(run_dir, cli_export, fmt):
    _, out = cli_export
    store = store_lib.Store(run_dir)
    masks = store.load_round(0, "lottery", 1, "masks")
    trained = store.load_round(0, "lottery", 1, "weights")
    model = keras.models.load_model(os.path.join(out, f"ticket.{fmt}"), compile=False)
    assert not pruning.wrappers(model)  # stripped: a plain Keras model
    kernels = pruning.kernels(model)
    assert sorted(kernels) == sorted(masks)
    for name, mask in masks.items():
        assert 0 < mask.mean() < 1, name  # every layer really is pruned in round 1
        np.testing.assert_array_equal(kernels[name] == 0, ~mask, err_msg=name)
        np.testing.assert_array_equal(kernels[name], trained[f"{name}/kernel"] * mask, err_msg=name)
        np.testing.assert_array_equal(model.get_layer(name).bias.numpy(), trained[f"{name}/bias"])


def test_tflite_predicts_what_the_keras_model_predicts(cli_export):
    _, out = cli_export
    model = keras.models.load_model(os.path.join(out, "ticket.keras"), compile=False)
    x = loading.load("mnist1d").x_test[:8]
    expected = model.predict(x, verbose=0)
    assert np.std(expected) > 0.1  # a trained network, not a constant
    np.testing.assert_allclose(_tflite_predict(os.path.join(out, "ticket.tflite"), x), expected, atol=1e-4)


def test_pruned_files_compress_better_than_the_dense_round_0(cli_export):
    _, out = cli_export
    with open(os.path.join(out, "export.json")) as f:
        info = json.load(f)
    assert (info["round"], info["variant"], info["weights"]) == (1, "lottery", "trained")
    for fmt in export.FORMATS:
        ticket, dense = info["sizes"]["ticket"][fmt], info["sizes"]["dense"][fmt]
        # The formats store kernels densely (same raw size, within headers); the zeros compress.
        assert abs(ticket["raw"] - dense["raw"]) < 0.02 * dense["raw"], fmt
        assert ticket["gzip"] < 0.95 * dense["gzip"], fmt
        with open(os.path.join(out, f"ticket.{fmt}"), "rb") as f:
            assert len(f.read()) == ticket["raw"]


def test_initial_weights_export_is_the_ticket_at_initialisation(run_dir, tmp_path):
    info = export.export(run_dir, 1, weights="initial", out=str(tmp_path / "init"))
    store = store_lib.Store(run_dir)
    masks = store.load_round(0, "lottery", 1, "masks")
    initial = store.load_weights(0, "initial")  # rewind_iteration=0: rounds rewind to the initialisation
    model = keras.models.load_model(info["files"]["keras"], compile=False)
    for name, kernel in pruning.kernels(model).items():
        np.testing.assert_array_equal(kernel, initial[f"{name}/kernel"] * masks[name], err_msg=name)
    assert info["sparsity"] == pytest.approx({name: 1.0 - m.mean() for name, m in masks.items()})


@pytest.mark.parametrize("args,message", [
    (["{missing}", "--round=1"], "does not exist"),
    (["{run}", "--round=2"], "round 2 of trial 0, variant 'lottery' is not finished"),
    (["{run}", "--round=1", "--variant=reinit"], "variant 'reinit' is not finished"),
    (["{run}", "--round=1", "--trial=3"], "trial 3"),
    (["{run}", "--round=1", "--weights=final"], "--weights"),
    (["{run}"], "--round is required"),
    (["--round=1"], "expected exactly one RESULTS_DIR"),
    (["{plain}", "--round=0"], "not an lth_tf results directory"),
    (["{run}", "--round=1", "--out={file}"], "not a directory"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_dir, tmp_path, capsys, args, message):
    plain = tmp_path / "plain"
    plain.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    paths = {"missing": str(tmp_path / "missing"), "run": run_dir, "plain": str(plain), "file": str(afile)}
    before = sorted(os.walk(run_dir))
    assert export.main(["lth_tf.export"] + [a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lth_tf.export: error: "), err
    assert message in err
    assert sorted(os.walk(run_dir)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "plain"]
