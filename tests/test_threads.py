"""--parallel_trials does not change results: the command line with N = 1 and N = 2 stores the same bits.

TensorFlow's CPU kernels may split their sums by the number of intra-op threads, and before lth_tf.training.threads only
N > 1 ran one thread per op: conv2's stored weights and masks then depended on N (its test failed on that code;
lenet300_100's passed, its matrix products giving the same bits at 1, 4 and 8 threads). Here two
`python -m lth_tf.main` processes per model (2 trials, --deterministic, tiny Fashion-MNIST-format IDX files
written by the test) train one at a time and stacked, and every stored masks/weights file must be equal bit for
bit (np.array_equal), as must results.csv's numbers (timing aside).
"""
import csv
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.training import threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    with open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """600 training and 100 test images of 28x28 (noise around a class template), as Fashion-MNIST IDX files."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, 28, 28))
    for split, n in (("train", 600), ("t10k", 100)):
        y = rng.integers(0, 10, n)
        x = np.clip(templates[y] * 0.6 + rng.integers(0, 100, (n, 28, 28)), 0, 255)
        _write_idx(root / f"{split}-images-idx3-ubyte", x)
        _write_idx(root / f"{split}-labels-idx1-ubyte", y)
    return root


def _env():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    for name in (threads.INTRA_OP_VARIABLE, threads.INTER_OP_VARIABLE):
        env.pop(name, None)  # the defaults, whatever the caller's shell sets
    return env


def _start(model, images, out, parallel):
    args = [f"--model={model}", "--dataset=fashion_mnist", f"--data_dir={images}", "--rounds=1",
            "--iterations=20", "--eval_every=20", "--trials=2", f"--parallel_trials={parallel}",
            "--variants=lottery", "--deterministic", "--quiet", f"--output_dir={out}"]
    return subprocess.Popen([sys.executable, "-m", "lth_tf.main", *args], cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def _rows(root):
    with open(os.path.join(root, "results.csv")) as f:
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(f)]


def _assert_same_bits(one, two):
    files = sorted(os.path.relpath(p, one) for p in glob.glob(os.path.join(one, "trial_*", "**", "*.npz"),
                                                              recursive=True))
    assert files == sorted(os.path.relpath(p, two) for p in glob.glob(os.path.join(two, "trial_*", "**", "*.npz"),
                                                                      recursive=True))
    for trial in (0, 1):  # both trials' rounds 0 and 1, their masks, start and trained weights, all compared
        for r in (0, 1):
            for name in ("masks", "start_weights", "weights"):
                assert os.path.join(f"trial_{trial}", "lottery", f"round_{r}", f"{name}.npz") in files
    for path in files:
        with np.load(os.path.join(one, path)) as a, np.load(os.path.join(two, path)) as b:
            assert sorted(a.files) == sorted(b.files), path
            for key in a.files:
                assert np.array_equal(a[key], b[key]), \
                    f"{path} {key}: {int(np.sum(a[key] != b[key]))} entries differ, " \
                    f"up to {float(np.max(np.abs(a[key].astype(float) - b[key].astype(float)))):.3g}"
    assert _rows(one) == _rows(two)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images):
    """{(model, N): results directory}; the four processes run at once (separate processes, so side by side
    changes nothing in them, and the test takes about half as long on 2 cores)."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {(model, n): root / f"{model}_parallel_{n}" for model in ("lenet300_100", "conv2") for n in (1, 2)}
    procs = [_start(model, images, out, n) for (model, n), out in dirs.items()]
    for proc in procs:
        _finish(proc)
    return {key: str(path) for key, path in dirs.items()}


@pytest.mark.parametrize("model", ["lenet300_100", "conv2"])
def test_parallel_trials_store_the_same_bits_from_the_command_line(runs, model):
    _assert_same_bits(runs[model, 1], runs[model, 2])


def test_thread_settings_come_from_the_network_and_the_environment(monkeypatch):
    monkeypatch.delenv(threads.INTRA_OP_VARIABLE, raising=False)
    monkeypatch.delenv(threads.INTER_OP_VARIABLE, raising=False)
    cores = threads.cores()  # --parallel_trials is not an argument: it cannot change them
    assert [threads.settings(m) for m in ("lenet300_100", "lenet300_100_iclr")] == [(1, cores)] * 2
    assert [threads.settings(m) for m in ("conv2", "conv6", "resnet18", "vgg19")] == [(0, cores)] * 4
    monkeypatch.setenv(threads.INTRA_OP_VARIABLE, "1")
    monkeypatch.setenv(threads.INTER_OP_VARIABLE, " 3 ")
    assert threads.settings("conv2") == threads.settings("lenet300_100") == (1, 3)
    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv(threads.INTRA_OP_VARIABLE, bad)
        with pytest.raises(threads.ThreadsError, match=f"LTH_TF_INTRA_OP_THREADS must be a whole number >= 0.*{bad}"):
            threads.settings("conv2")


def test_a_bad_override_is_one_line_before_tensorflow_starts(tmp_path):
    env = dict(_env(), LTH_TF_INTER_OP_THREADS="many")
    out = tmp_path / "out"
    args = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=0", "--iterations=10", "--eval_every=10",
            f"--output_dir={out}"]
    result = subprocess.run([sys.executable, "-m", "lth_tf.main", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [  # that line alone: no traceback, no TensorFlow start-up lines
        "lth_tf: error: LTH_TF_INTER_OP_THREADS must be a whole number >= 0 (0 = TensorFlow's default), not 'many'"]
    assert not out.exists()
