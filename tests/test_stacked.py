"""--parallel_trials: stacked trials are the sequential trials, computed side by side (lth_tf.training.stacked)."""
import numpy as np
import pytest

from lth_tf.data import loading
from lth_tf.experiment import distribute, experiment, plan
from lth_tf.experiment.config import Config, ConfigError
from lth_tf.experiment.store import Store
from lth_tf.models import networks
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training import stacked
from lth_tf.training.backup import BackupSlot
from lth_tf.training.schedule import TrainSpec
from lth_tf.training.trainer import Job, RoundTrainer

distribute.enable_determinism(0)  # op determinism: a stacked network's ops must give the sequential numbers


@pytest.fixture(scope="module")
def mnist1d():
    return loading.load("mnist1d")


def run(path, dataset, pairs=None, **overrides):
    settings = dict(model="lenet300_100", dataset="mnist1d", rounds=2, iterations=40, eval_every=20, trials=2,
                    momentum=0.9, variants=("lottery", "reinit"), rewind_iteration=10, output_dir=str(path))
    settings.update(overrides)
    cfg = Config(**settings).resolve()
    store = Store(cfg.results_dir())
    events = []
    with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
        experiment.run(cfg, store, on_event=events.append, dataset=dataset, pairs=pairs)
    return store, events


@pytest.fixture(scope="module")
def both(tmp_path_factory, mnist1d):
    """The same experiment (2 trials, lottery + reinit, late rewinding, instability pairs) one trial at a time and
    with --parallel_trials=2."""
    pairs = plan.PairSpec(variants=("lottery",), alphas=3, train_subset=200)
    sequential = run(tmp_path_factory.mktemp("seq"), mnist1d, pairs, parallel_trials=1)
    parallel = run(tmp_path_factory.mktemp("par"), mnist1d, pairs, parallel_trials=2)
    return sequential, parallel


def test_stacked_trials_store_the_sequential_masks_and_weights(both):
    (seq, _), (par, events) = both
    assert len(seq.results()) == len(par.results()) == 2 * (3 + 2)  # per trial: lottery 0..2, reinit 1..2
    for trial in (0, 1):
        for variant, rounds in (("lottery", (0, 1, 2)), ("reinit", (1, 2))):
            for r in rounds:
                for name, mask in seq.load_round(trial, variant, r, "masks").items():
                    np.testing.assert_array_equal(par.load_round(trial, variant, r, "masks")[name], mask)
                want, got = seq.load_round(trial, variant, r, "weights"), par.load_round(trial, variant, r, "weights")
                for key in want:
                    np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6, err_msg=f"{trial} {variant} {r} {key}")
        np.testing.assert_allclose(par.load_weights(trial, "rewind")["fc1/kernel"],
                                   seq.load_weights(trial, "rewind")["fc1/kernel"], rtol=0, atol=1e-6)
    # Trials really trained side by side: both trials' round 0 started before either finished.
    kinds = [(e.kind, e.trial, e.round, e.variant) for e in events if e.kind in ("start", "round")]
    assert kinds[:2] == [("start", 0, 0, "lottery"), ("start", 1, 0, "lottery")]


def test_stacked_pair_copies_equal_sequential_ones(both):
    (seq, _), (par, _) = both
    for trial in (0, 1):
        for r in (0, 1, 2):
            a, b = seq.load_pair(trial, "lottery", r), par.load_pair(trial, "lottery", r)
            np.testing.assert_allclose(b["instability_test"], a["instability_test"], atol=1e-6)
            for copy in (0, 1):
                want = seq.load_copy(trial, "lottery", r, copy)["weights"]
                got = par.load_copy(trial, "lottery", r, copy)["weights"]
                np.testing.assert_allclose(got["fc2/kernel"], want["fc2/kernel"], rtol=0, atol=1e-6)


def test_pruned_weights_stay_exactly_zero_in_stacked_training(both):
    _, (par, _) = both
    for trial in (0, 1):
        masks, weights = par.load_round(trial, "lottery", 2, "masks"), par.load_round(trial, "lottery", 2, "weights")
        for name, mask in masks.items():
            assert np.all(weights[f"{name}/kernel"][mask == 0] == 0.0)
            assert 0 < mask.mean() < 1


def tiny_trainer(dataset, count, **spec):
    settings = dict(batch_size=32, learning_rate=0.1, momentum=0.9, iterations=30, eval_every=10, seed=0)
    settings.update(spec)
    nets = [networks.build("lenet300_100", dataset.input_shape, dataset.num_classes, seed=s) for s in range(count)]
    return nets, RoundTrainer(nets if count > 1 else nets[0], dataset, TrainSpec(**settings))


def test_networks_without_a_job_take_no_update(mnist1d):
    nets, trainer = tiny_trainer(mnist1d, 3)
    idle = rewind.snapshot(nets[2])
    jobs = [Job(rewind.snapshot(net), pruning.full_masks(net), data_key=7 + i) for i, net in enumerate(nets[:2])]
    results = trainer.train_many(jobs)
    assert len(results) == 2
    for key, value in rewind.snapshot(nets[2]).items():
        np.testing.assert_array_equal(value, idle[key])
    assert not np.array_equal(results[0].weights["fc1/kernel"], jobs[0].start_weights["fc1/kernel"])


def test_a_stacked_backup_resumes_in_a_one_network_trainer(mnist1d):
    """Each stacked network saves its state in a one-network trainer's layout, so --parallel_trials may change
    between a stop and the resume."""
    nets, trainer = tiny_trainer(mnist1d, 2)
    start = [rewind.snapshot(net) for net in nets]
    masks = [pruning.prune_oneshot(pruning.kernels(net), {n: 0.5 for n in pruning.kernels(net)}) for net in nets]
    saved = [[], []]
    jobs = [Job(start[i], masks[i], data_key=3 + i,
                backup=BackupSlot(load=lambda: None, save=saved[i].append)) for i in range(2)]
    finished = trainer.train_many(jobs)
    assert [len(s) for s in saved] == [2, 2]  # after iterations 10 and 20 (30 is the end)
    _, single = tiny_trainer(mnist1d, 1)
    resumed = single.train(start[1], masks[1], data_key=4,
                           backup=BackupSlot(load=lambda: saved[1][0], save=lambda arrays: None))
    assert resumed.resumed_from == 10
    for key, value in finished[1].weights.items():
        np.testing.assert_allclose(resumed.weights[key], value, rtol=0, atol=1e-6)
    assert [p["iteration"] for p in resumed.curve] == [10, 20, 30]


def test_xla_keeps_pruned_weights_zero_and_the_same_result(mnist1d):
    results = []
    for jit in (False, True):
        nets, trainer = tiny_trainer(mnist1d, 1, jit_compile=jit)
        masks = pruning.prune_oneshot(pruning.kernels(nets[0]), {n: 0.3 for n in pruning.kernels(nets[0])})
        results.append((masks, trainer.train(rewind.snapshot(nets[0]), masks, data_key=5)))
    (masks, plain), (_, xla) = results
    for name, mask in masks.items():
        assert np.all(xla.weights[f"{name}/kernel"][mask == 0] == 0.0)
    for key, value in plain.weights.items():
        np.testing.assert_allclose(xla.weights[key], value, rtol=0, atol=1e-4)


def test_batchnorm_networks_and_clashing_settings_are_refused():
    with pytest.raises(ConfigError, match="cannot stack resnet18"):
        Config(model="resnet18", dataset="cifar10", parallel_trials=2).resolve()
    with pytest.raises(ConfigError, match="does not combine with --mixed_precision"):
        Config(parallel_trials=2, mixed_precision=True).resolve()
    with pytest.raises(ConfigError, match="must be >= 1"):
        Config(parallel_trials=0).resolve()
    assert Config(parallel_trials=4).resolve().identity_hash() == Config().resolve().identity_hash()
    net = networks.build("resnet18", (16, 16, 3), 10)
    with pytest.raises(stacked.StackError, match="BatchNormalization"):
        stacked.check_stackable(net)
    stacked.check_stackable(networks.build("conv2", (28, 28, 1), 10))


def test_xla_auto_is_on_only_for_long_trials_of_networks_without_convolutions():
    def jit(**fields):
        return plan.train_spec(Config(**fields).resolve(), 0).jit_compile
    assert jit(model="lenet300_100", dataset="mnist1d", rounds=5, iterations=10_000)  # 60,000 steps a trial
    assert not jit(model="lenet300_100", dataset="mnist1d", rounds=5, iterations=3_000)  # the quickstart's size
    assert not jit(model="conv2", dataset="fashion_mnist", rounds=5, iterations=10_000)  # convolutions: slower
    assert not jit(model="lenet300_100", dataset="mnist1d", rounds=5, iterations=10_000, trainer="tfmot")
    assert not jit(model="lenet300_100", dataset="mnist1d", rounds=5, iterations=10_000, xla="off")
    assert jit(model="conv2", dataset="fashion_mnist", rounds=1, iterations=10, xla="on")
