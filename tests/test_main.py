"""The command line as a user meets it: one line per round, resume, and one-line refusals of bad input."""
import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=lenet300_100", "--dataset=mnist1d", "--rounds=1", "--iterations=30", "--eval_every=15"]


def lth(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "lth_tf.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def error_line(result):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    ours = [line for line in result.stderr.splitlines() if line.startswith("lth_tf: error:")]
    assert len(ours) == 1, result.stderr
    return ours[0]


@pytest.mark.parametrize("args, message", [
    (["--model=resnet50"], "--model"),
    (["--dataset=imagenet"], "unknown dataset"),
    (["--prune_rate_fc=1.2"], "--prune_rate_fc must be in [0, 1)"),
    (["--prune_rate_conv=-0.5"], "--prune_rate_conv must be in [0, 1)"),
    (["--rounds=-1"], "--rounds must be >= 0"),
    (["--trials=0"], "--trials must be >= 1"),
    (["--batch_size=0"], "--batch_size must be positive"),
    (["--epochs=0"], "--epochs must be positive"),
    (["--model=conv4", "--dataset=mnist1d"], "needs image inputs"),
    (["--no_such_flag=1"], "no_such_flag"),
    (["--rounds=abc"], "--rounds"),
    (["stray_argument"], "unexpected arguments"),
    (["--flagfile=/nonexistent.flags"], "nonexistent.flags"),
    (["--model=resnet18", "--dataset=cifar10", "--parallel_trials=2"], "--parallel_trials cannot stack resnet18"),
    (["--parallel_trials=2", "--trainer=tfmot"], "does not combine with --trainer=tfmot"),
    (["--xla=maybe"], "--xla"),
])
def test_bad_input_one_line_no_traceback_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    result = lth(*args, f"--output_dir={out}", timeout=60)
    assert message in error_line(result)
    assert not out.exists()
    assert "tensorflow" not in result.stderr.lower()  # refused before TensorFlow started


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "not a directory" in error_line(lth(*TINY, f"--output_dir={blocker}/out"))


def test_run_resume_and_refuse_a_changed_configuration(tmp_path):
    out = str(tmp_path / "run")
    first = lth(*TINY, f"--output_dir={out}")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = [line for line in first.stdout.splitlines() if line.startswith("trial 0  lottery")]
    assert len(lines) == 2 and "round  1  weights remaining  80.23%" in lines[1]
    assert "early-stop iteration" in lines[1] and "test accuracy" in lines[1]
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    columns = {"trial", "variant", "round", "weights_remaining", "early_stop_iteration",
               "test_accuracy_at_early_stop", "test_accuracy"}
    assert columns <= set(rows[0]) and [r["variant"] for r in rows] == ["lottery", "lottery"]
    assert os.path.exists(os.path.join(out, "config.json"))
    assert os.path.exists(os.path.join(out, "trial_0", "lottery", "round_1", "masks.npz"))
    assert os.path.exists(os.path.join(out, "trial_0", "lottery", "round_1", "curve.csv"))

    before = open(os.path.join(out, "results.csv")).read()
    again = lth(*TINY, f"--output_dir={out}")
    assert again.returncode == 0 and again.stdout.count("already finished") == 2
    assert "weights remaining" not in again.stdout  # nothing trained
    assert open(os.path.join(out, "results.csv")).read() == before

    changed = lth(*TINY, "--learning_rate=0.5", f"--output_dir={out}")
    assert "learning_rate: 0.05 -> 0.5" in error_line(changed)
    assert changed.stdout == "" and len(changed.stderr.splitlines()) == 1  # before TensorFlow and the data
    assert open(os.path.join(out, "results.csv")).read() == before


def test_quickstart_flagfile_is_small_and_offline():
    with open(os.path.join(ROOT, "flags", "quickstart.flags")) as f:
        text = f.read()
    assert "--dataset=mnist1d" in text and "--model=lenet300_100" in text
    assert "--variants=lottery,reinit" in text  # the punchline: the ticket against its control


def test_punchline_compares_the_sparsest_shared_level():
    from lth_tf.analysis import punchline

    def row(variant, round_, remaining, accuracy, stop, trial=0):
        return {"trial": trial, "variant": variant, "round": round_, "weights_remaining": remaining,
                "test_accuracy_at_early_stop": accuracy, "early_stop_iteration": stop}

    rows = [row("lottery", 0, 1.0, 0.9, 3000), row("lottery", 1, 0.5, 0.92, 2000), row("lottery", 2, 0.25, 0.91, 1800),
            row("reinit", 1, 0.5, 0.8, 2600)]
    # round 2 has no reinit: the sparsest level both trained is round 1
    assert punchline.comparison(rows) == ("at 50% of weights: lottery test accuracy 0.920 (early stop 2000) vs "
                                          "reinit 0.800 (early stop 2600)")
    rows += [row("lottery", 2, 0.25, 0.89, 1400, trial=1), row("reinit", 2, 0.25, 0.6, 400),
             row("reinit", 2, 0.25, 0.7, 600, trial=1)]
    assert punchline.comparison(rows) == ("at 25% of weights: lottery test accuracy 0.900 (early stop 1600), mean "
                                          "of 2 trials vs reinit 0.650 (early stop 500)")
    lottery_only = [r for r in rows if r["variant"] == "lottery"]
    assert punchline.comparison(lottery_only).endswith("vs the dense network 0.900 (early stop 3000)")
    assert punchline.comparison(lottery_only[:1]) is None
    for name in ("lenet300_100_mnist", "conv2_cifar10", "conv4_cifar10"):
        assert os.path.exists(os.path.join(ROOT, "flags", f"{name}.flags"))
