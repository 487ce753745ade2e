"""colab/*.ipynb: each notebook runs top to bottom (nbclient) on tiny offline settings, so none can silently rot.

A test overrides the notebook's "parameters" cell by inserting a cell after it (as papermill does), runs the
notebook in a temporary directory, and checks the lines that show the notebook did its job. The notebooks also
assert their key properties themselves (survivors equal initial values, kernels' zeros equal the masks).
Static checks: committed without outputs, a Colab badge for the right path, the guarded install cell first,
TF_USE_LEGACY_KERAS set before anything imports TensorFlow.
"""
import glob
import importlib
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(REPO, "colab")
NOTEBOOKS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(COLAB, "*.ipynb")))

# Small offline settings; each notebook runs in well under a minute on 2 CPU cores.
OVERRIDES = {
    "quickstart": {"ROUNDS": 1, "ITERATIONS": 100, "EVAL_EVERY": 50},
    # DATASET stays "mnist": offline, the notebook must fall back by itself (and say so).
    "reproduce_lenet_mnist": {"ROUNDS": 1, "ITERATIONS": 100, "EVAL_EVERY": 50, "CURVE_ROUNDS": (0, 1)},
    "keras_rewind_callback": {"ROUNDS": 2, "EPOCHS": 1},
}


def _modules():
    """nbformat and nbclient (with ipykernel), installed with pip when missing; skips if that is impossible."""
    names = ("nbformat", "nbclient", "ipykernel")
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], capture_output=True, timeout=300)
        importlib.invalidate_caches()
    return [pytest.importorskip(n, reason=f"{n} is not installed and pip could not install it") for n in names[:2]]


def _read(name):
    nbformat, _ = _modules()
    return nbformat.read(os.path.join(COLAB, f"{name}.ipynb"), as_version=4)


def _text(outputs):
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", "") + out["data"].get("text/markdown", ""))
    return "".join(parts)


def test_the_three_notebooks_exist():
    assert NOTEBOOKS == ["keras_rewind_callback", "quickstart", "reproduce_lenet_mnist"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_with_badge_install_cell_and_parameters(name):
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    badge = f"https://colab.research.google.com/github/lth-tf/lth_tf/blob/main/colab/{name}.ipynb"
    assert badge in nb.cells[0].source and "colab-badge.svg" in nb.cells[0].source
    first = code[0].source
    assert '%pip install -q "git+https://github.com/lth-tf/lth_tf"' in first
    assert re.search(r'if importlib\.util\.find_spec\("lth_tf"\) is None:\n\s+%pip', first)  # skipped if importable
    assert 'os.environ["TF_USE_LEGACY_KERAS"] = "1"' in first
    assert not re.search(r"^\s*(import|from) (tensorflow|tf_keras|lth_tf)", first, re.M)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for key in OVERRIDES[name]:
        assert re.search(rf"^{key} = ", tagged[0].source, re.M), f"{key} is not a parameter of {name}"


def _execute(name, workdir, timeout=300):
    nbformat, nbclient = _modules()
    nb = _read(name)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in OVERRIDES[name].items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, injected)
    # The kernel imports lth_tf from this checkout when it is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return {i: _text(c.outputs) for i, c in enumerate(nb.cells) if c.cell_type == "code"}, nb


@pytest.fixture
def pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # restored after the test


def test_quickstart_runs(tmp_path, pythonpath):
    outputs, _ = _execute("quickstart", tmp_path)
    text = "".join(outputs.values())
    assert "lottery  round  0: 100.00% of weights remain" in text
    assert re.search(r"lottery  round  1:  80\.\d\d% of weights remain", text)
    assert re.search(r"reinit   round  1:  80\.\d\d% of weights remain", text)
    assert "survivors start at their initial values: True; pruned ones are 0: True" in text
    assert "ticket gzip" in text  # the export's size table
    # lth_tf.run_experiment on the notebook's own Conv1D + BatchNorm + Dense model, lottery and reinit
    assert re.search(r"my_model: at 8\d\.\d+% of weights: lottery test accuracy 0\.\d+ \(early stop \d+\) vs reinit", text)
    assert os.path.exists(tmp_path / "results" / "my_model" / "results.csv")
    for figure in ("accuracy.png", "early_stop.png", "curves.png"):
        assert os.path.exists(tmp_path / "results" / "quickstart_notebook" / "report" / figure)
    assert os.path.isdir(tmp_path / "results" / "quickstart_notebook" / "tensorboard" / "trial_0" / "reinit" / "round_1")


def test_reproduce_lenet_mnist_runs_and_reports_its_dataset(tmp_path, pythonpath):
    outputs, _ = _execute("reproduce_lenet_mnist", tmp_path)
    text = "".join(outputs.values())
    used = re.search(r"Using (\w+) from ", text).group(1)
    assert used in ("mnist", "fashion_mnist", "mnist1d")
    if used != "mnist":  # offline: the notebook says why and what it uses instead
        assert "dataset 'mnist' is not available: " in text
        assert f"Falling back to {used}: the figures below are of {used}, not mnist." in text
    assert re.search(r"lottery  round  1:  80\.\d\d% of weights remain", text)
    assert re.search(r"reinit   round  1:  80\.\d\d% of weights remain", text)
    figures = tmp_path / "results" / "reproduce_lenet_mnist" / "report"
    for figure in ("figure3_lottery.png", "figure3_reinit.png", "early_stop_iteration.png",
                   "test_accuracy_at_early_stop.png"):
        assert os.path.getsize(figures / figure) > 0, figure
    assert re.search(r"round  1 \( 80\.\d% of weights\)  lottery: early stop", text)


def test_keras_rewind_callback_runs(tmp_path, pythonpath):
    outputs, _ = _execute("keras_rewind_callback", tmp_path)
    text = "".join(outputs.values())
    assert "BatchNormalization" in text  # the model summary: the user's model has BatchNorm
    rounds = re.findall(r"round (\d): +([\d.]+)% of the weights remain; started from the initial values under the "
                        r"masks \(all (\d+) tensors exact\)", text)
    assert [r[0] for r in rounds] == ["1", "2"]
    assert float(rounds[1][1]) < float(rounds[0][1]) < 100.0  # nested pruning: fewer weights each round
    assert int(rounds[0][2]) >= 12  # kernels, biases and BatchNorm's gamma/beta/moving statistics
    assert re.search(r"^conv1 .*\n^conv2 .*\n^fc1 .*\n^output ", text, re.M)  # sparsity per layer
    assert "random reinitialisation" in text
    assert "predictions as before: True" in text
    assert os.path.exists(tmp_path / "my_ticket.keras")
