"""Configuration: the paper's defaults per model, one-line refusals of bad input, and what the hash covers."""
import sys

import pytest

from lth_tf.experiment.config import Config, ConfigError


def test_paper_defaults_per_model():
    lenet = Config(model="lenet300_100", dataset="mnist").resolve()
    assert (lenet.batch_size, lenet.learning_rate, lenet.optimizer) == (60, 0.05, "sgd")
    assert (lenet.prune_rate_fc, lenet.prune_rate_output) == (0.2, 0.1)
    assert (lenet.epochs, lenet.round_iterations) == (50, 50 * 917)  # arXiv v1 Figure 1: 50 epochs at batch 60
    conv2 = Config(model="conv2", dataset="cifar10").resolve()
    assert (conv2.batch_size, conv2.learning_rate, conv2.prune_rate_conv) == (50, 0.01, 0.1)
    conv4 = Config(model="conv4", dataset="cifar10").resolve()
    assert (conv4.batch_size, conv4.learning_rate) == (50, 0.003)


def test_output_rate_defaults_to_half_the_fc_rate():
    assert Config(prune_rate_fc=0.4).resolve().prune_rate_output == 0.2
    assert Config(prune_rate_fc=0.4, prune_rate_output=0.3).resolve().prune_rate_output == 0.3


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="resnet50"), "unknown model 'resnet50'"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'"),
    (dict(prune_rate_fc=1.0), r"--prune_rate_fc must be in \[0, 1\)"),
    (dict(prune_rate_conv=-0.1), r"--prune_rate_conv must be in \[0, 1\)"),
    (dict(prune_rate_output=1.5), r"--prune_rate_output must be in \[0, 1\)"),
    (dict(rounds=-1), "--rounds must be >= 0"),
    (dict(seed=-3), "--seed must be >= 0"),
    (dict(trials=0), "--trials must be >= 1"),
    (dict(batch_size=0), "--batch_size must be positive"),
    (dict(epochs=0), "--epochs must be positive"),
    (dict(epochs=-2), "--epochs must be positive"),
    (dict(eval_every=0), "--eval_every must be positive"),
    (dict(model="conv2", dataset="mnist1d"), "needs image inputs"),
    (dict(variants=("lottery", "magic")), "unknown variant 'magic'"),
    (dict(pruning="gradual"), "--pruning must be one of"),
    (dict(trials=2, trial_index=2), "--trial_index must be in"),
    (dict(iterations=100, rewind_iteration=100), "--rewind_iteration"),
])
def test_bad_input_is_one_clear_line(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        Config(**kwargs).resolve()
    assert "\n" not in str(error.value)


def test_validation_does_not_import_tensorflow():
    # main.py relies on this to refuse bad input before TensorFlow starts (and prints its start-up lines).
    import subprocess
    code = ("import sys; from lth_tf.experiment.config import Config\n"
            "Config(model='conv2', dataset='cifar10').resolve()\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hash_covers_what_changes_results_and_ignores_how_much_is_run():
    base = Config(rounds=3, trials=1).resolve()
    assert Config(rounds=9, trials=4, variants=("lottery", "reinit"), output_dir="x").resolve().identity_hash() \
        == base.identity_hash()
    for change in (dict(learning_rate=0.1), dict(seed=1), dict(prune_rate_fc=0.3), dict(pruning="oneshot"),
                   dict(rewind_iteration=5), dict(epochs=3), dict(eval_every=50)):
        assert Config(rounds=3, **change).resolve().identity_hash() != base.identity_hash(), change


def test_default_results_dir_is_named_by_the_hash():
    cfg = Config(model="lenet300_100", dataset="mnist1d").resolve()
    assert cfg.results_dir() == f"results/lenet300_100_mnist1d_{cfg.identity_hash()}"
