"""Tests for lth_tf.training.trainer: masked rounds keep pruned weights exactly zero at every step (SGD with
momentum, Adam, mixed precision), rewind exactly, reset the optimizer, reuse one traced training step across
rounds, and several steps per execution change nothing but the speed."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.data.pipelines import Dataset
from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training.schedule import TrainSpec, precision_policy
from lth_tf.training.streams import train_stream
from lth_tf.training.trainer import RoundTrainer

FEATURES, CLASSES = 12, 3


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.normal(size=(n, FEATURES)).astype(np.float32)
        return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)  # learnable labels
    (xt, yt), (xv, yv), (xs, ys) = split(240), split(40), split(40)
    return Dataset("tiny", (FEATURES,), CLASSES, "random, in memory", xt, yt, xv, yv, xs, ys)


def net(seed=0):
    init = keras.initializers.GlorotNormal
    inputs = keras.Input((FEATURES,))
    x = keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed), name="fc1")(inputs)
    x = keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed + 1), name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, kernel_initializer=init(seed + 2), name="output")(x))


def spec(**overrides):
    settings = dict(batch_size=8, learning_rate=0.05, iterations=40, eval_every=20, momentum=0.9)
    settings.update(overrides)
    return TrainSpec(**settings)


def random_masks(model, keep, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.random(m.shape) < keep for name, m in pruning.full_masks(model).items()}


class StepProbe(keras.callbacks.Callback):
    """After every training step: pruned kernel entries must be exactly 0.0. Also records, at train begin,
    the optimizer's step and largest slot value, and the weights the round starts from."""

    def __init__(self, model, masks):
        super().__init__()
        self.net, self.masks = model, masks
        self.steps, self.bad = 0, []

    def on_train_begin(self, logs=None):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        self.begin_iterations = int(optimizer.iterations.numpy())
        self.begin_slot_max = max([float(np.abs(v.numpy()).max()) for v in optimizer.variables[1:]] or [0.0])
        self.begin_weights = rewind.snapshot(self.net)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        for name, mask in self.masks.items():
            kernel = self.net.get_layer(name).kernel.numpy()
            if np.any(kernel[~mask] != 0.0):
                self.bad.append((self.steps, name, int(np.count_nonzero(kernel[~mask]))))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pruned_weights_stay_exactly_zero_at_every_step_and_survivors_train(tiny, optimizer):
    model = net()
    trainer = RoundTrainer(model, tiny, spec(optimizer=optimizer, learning_rate=0.05 if optimizer == "sgd"
                                                      else 0.01))
    start = rewind.snapshot(model)
    masks = pruning.full_masks(model)
    for round_ in range(3):  # dense, then two nested prunings, each from the same start weights
        probe = StepProbe(model, masks)
        result = trainer.train(start, masks, callbacks=[probe])
        assert probe.steps == 40  # a per-step callback sees every step
        assert probe.bad == []
        # Each round starts from the start weights under the masks, with a fresh optimizer...
        assert probe.begin_iterations == 0 and probe.begin_slot_max == 0.0
        for key, value in start.items():
            layer = key.split("/")[0]
            expected = value * masks[layer] if key.endswith("/kernel") and layer in masks else value
            np.testing.assert_array_equal(probe.begin_weights[key], expected)
        # ... trains exactly its iterations, and moves (nearly) every surviving weight.
        assert int(trainer.trainer.optimizer.iterations.numpy()) == 40
        assert [p["iteration"] for p in result.curve] == [20, 40]
        for name, mask in masks.items():
            moved = model.get_layer(name).kernel.numpy() != start[f"{name}/kernel"]
            assert moved[mask].mean() > 0.9, (round_, name)
        new = pruning.prune(pruning.kernels(model), masks, {"fc1": 0.5, "fc2": 0.5, "output": 0.25})
        for name in masks:
            assert not (new[name] & ~masks[name]).any()  # nested: nothing pruned comes back
        masks = new


def test_momentum_cannot_move_a_pruned_weight_without_callbacks(tiny):
    """The fast path (several steps per execution, no per-step callback): still exactly zero at the end, and
    the zero-gradient entries carry no momentum into the next round either."""
    model = net(seed=3)
    trainer = RoundTrainer(model, tiny, spec(steps_per_execution=10))
    masks = random_masks(model, keep=0.3, seed=1)
    start = rewind.snapshot(model)
    trainer.train(start, masks)
    assert trainer.steps_per_execution == 10
    for name, mask in masks.items():
        kernel = model.get_layer(name).kernel.numpy()
        assert np.all(kernel[~mask] == 0.0)
        assert np.count_nonzero(kernel[mask]) == mask.sum()


def test_rounds_reuse_one_traced_training_step(tiny):
    model = net(seed=4)
    trainer = RoundTrainer(model, tiny, spec(steps_per_execution=10))
    start = rewind.snapshot(model)
    # Round 0 records late-rewind weights, so it runs one step per execution; later rounds run 10.
    first = trainer.train(start, pruning.full_masks(model), record_at=7)
    function = trainer.trainer.train_function
    traces = function.experimental_get_tracing_count()
    for seed in (1, 2):
        probe = StepProbe(model, random_masks(model, 0.5, seed))
        trainer.train(first.rewind_weights, probe.masks, callbacks=[probe] if seed == 1 else [])
        assert trainer.trainer.train_function is function
        assert function.experimental_get_tracing_count() == traces
        # Every step ran: a function fixed to one step by round 0 would count 10 steps per step here.
        assert int(trainer.trainer.optimizer.iterations.numpy()) == 40


def test_late_rewind_records_the_weights_after_exactly_that_many_steps(tiny):
    model = net(seed=5)
    trainer = RoundTrainer(model, tiny, spec(steps_per_execution=10))

    class Capture(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.steps = getattr(self, "steps", 0) + 1
            if self.steps == 7:
                self.weights = rewind.snapshot(model)
    capture = Capture()
    result = trainer.train(rewind.snapshot(model), pruning.full_masks(model), record_at=7, callbacks=[capture])
    assert result.rewind_weights.keys() == capture.weights.keys()
    for key in capture.weights:
        np.testing.assert_array_equal(result.rewind_weights[key], capture.weights[key])


def test_steps_per_execution_gives_the_same_training(tiny):
    results = []
    for steps in (1, 10):
        model = net(seed=6)
        trainer = RoundTrainer(model, tiny, spec(steps_per_execution=steps))
        masks = random_masks(model, 0.4, seed=2)
        result = trainer.train(rewind.snapshot(model), masks)
        results.append((rewind.snapshot(model), result.curve))
    (w1, c1), (w10, c10) = results
    for key in w1:
        np.testing.assert_allclose(w10[key], w1[key], rtol=1e-5, atol=1e-6)
    assert [p["iteration"] for p in c10] == [p["iteration"] for p in c1]
    np.testing.assert_allclose([p["val_loss"] for p in c10], [p["val_loss"] for p in c1], rtol=1e-4)


def test_a_round_evaluates_every_eval_every_and_trains_the_rounded_up_iterations(tiny):
    model = net(seed=7)
    trainer = RoundTrainer(model, tiny, spec(iterations=45, eval_every=20))
    result = trainer.train(rewind.snapshot(model), pruning.full_masks(model))
    assert result.iterations == 60
    assert [p["iteration"] for p in result.curve] == [20, 40, 60]
    assert int(trainer.trainer.optimizer.iterations.numpy()) == 60
    assert all(p["eval_seconds"] >= 0 for p in result.curve) and result.eval_seconds < result.seconds


def test_mixed_precision_trains_with_pruned_weights_exactly_zero(tiny):
    assert keras.mixed_precision.global_policy().name == "float32"
    with precision_policy(True):
        model = net(seed=8)
        assert model.get_layer("fc1").compute_dtype == "float16"
        trainer = RoundTrainer(model, tiny, spec(mixed_precision=True))
        masks = random_masks(model, 0.5, seed=3)
        start = rewind.snapshot(model)
        probe = StepProbe(model, masks)
        result = trainer.train(start, masks, callbacks=[probe])
        assert trainer.trainer(tiny.x_val[:4]).dtype == tf.float32  # logits for the loss are float32
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert isinstance(trainer.trainer.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert probe.steps == 40 and probe.bad == []
    assert np.isfinite([p["val_loss"] for p in result.curve]).all()
    moved = []
    for name, mask in masks.items():
        kernel = model.get_layer(name).kernel
        assert kernel.dtype == tf.float32
        moved.append(kernel.numpy()[mask] != start[f"{name}/kernel"][mask])
    assert np.concatenate(moved).mean() > 0.8  # (a few hidden units of this tiny net die: their weights stay)


def test_the_trainers_streams_are_train_stream_built_once(tiny):
    trainer = RoundTrainer(net(), tiny, spec(batch_size=7))
    x, y = tf.constant(tiny.x_train), tf.constant(tiny.y_train)
    for key, start in ((3, 0), (3, 50), (2**32 - 5, 1)):  # data keys are 32-bit; start past one data epoch
        ours = trainer.stream(key, start_batch=start).take(40)
        reference = train_stream(x, y, 7, key, start_batch=start).take(40)
        for (xa, ya), (xb, yb) in zip(ours, reference):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    assert trainer._make_stream.experimental_get_tracing_count() == 1


def test_the_trainers_pipelines_are_not_autotuned(tiny):
    # Deleting an autotuned iterator (every fit's end) could wait out its model thread's sleep, up to seconds:
    # issue 29's bimodal rounds. Every pipeline a round iterates is built without autotuning.
    trainer = RoundTrainer([net(), net()], tiny, spec(batch_size=7))
    pipelines = {"stream": trainer.stream(3), "stacked": trainer.stacked_stream([3, 4]),
                 "validation": trainer.val_data, "test": trainer.test_data}
    assert {name: ds.options().autotune.enabled for name, ds in pipelines.items()} == dict.fromkeys(pipelines, False)


class _RateProbe(keras.callbacks.Callback):
    """The learning rate each training step uses, and the optimizer's step at train begin."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        self.rates.append(float(opt._learning_rate(opt.iterations)))


def test_late_rewound_round_trains_k_to_t_with_the_schedule_continuing_from_k(tiny):
    # T = 60, k = 25 (not a multiple of eval_every = 20): 35 steps, evaluations at 40 and 60 (round 0's grid),
    # learning rate 0.05 for steps 25..29 then 0.005 from the boundary at 30, a fresh optimizer.
    model = net(seed=8)
    trainer = RoundTrainer(model, tiny, spec(iterations=60, eval_every=20, lr_boundaries=(30,)))
    trainer.train(rewind.snapshot(model), pruning.full_masks(model))  # a round 0 leaves momentum behind
    start, masks = rewind.snapshot(net(seed=9)), random_masks(model, 0.5, seed=3)
    probe = _RateProbe()
    result = trainer.train(start, masks, start_iteration=25, data_key=7, callbacks=[probe])
    assert result.iterations == 35
    assert int(trainer.trainer.optimizer.iterations.numpy()) == 35
    assert [p["iteration"] for p in result.curve] == [40, 60]
    np.testing.assert_allclose(probe.rates, [0.05] * 5 + [0.005] * 30, rtol=1e-6)
    late = rewind.snapshot(model)
    # The same 35 steps by hand: a fresh trainer whose schedule drops after 5 steps, same start, same batches.
    other = net(seed=8)
    fresh = RoundTrainer(other, tiny, spec(iterations=35, eval_every=35, lr_boundaries=(5,)))
    fresh.train(start, masks, data_key=7)
    for key, value in rewind.snapshot(other).items():
        np.testing.assert_allclose(late[key], value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="start_iteration"):
        trainer.train(start, masks, start_iteration=60)


def test_warmup_continues_from_k_too(tiny):
    model = net(seed=10)
    trainer = RoundTrainer(model, tiny, spec(iterations=40, eval_every=20, warmup_iterations=40))
    probe = _RateProbe()
    trainer.train(rewind.snapshot(model), pruning.full_masks(model), start_iteration=20, callbacks=[probe])
    np.testing.assert_allclose(probe.rates, [0.05 * (step + 1) / 40 for step in range(20, 40)], rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_tfmot_trainer_gives_the_masked_trainers_rounds(tiny, optimizer):
    # The reference path (tfmot's PruneLowMagnitude wrappers, UpdatePruningStep, mask held fixed) and the fast
    # path (gradients masked) train the same rounds: same survivors within float tolerance, pruned exactly zero.
    out = {}
    for kind in ("masked", "tfmot"):
        model = net(seed=11)
        start = rewind.snapshot(model)
        trainer = RoundTrainer(model, tiny, spec(trainer=kind, optimizer=optimizer, learning_rate=0.01))
        weights = []
        for round_, keep in enumerate((1.0, 0.5)):
            masks = random_masks(model, keep, seed=round_)
            trainer.train(start, masks, data_key=round_)
            weights.append(rewind.snapshot(model))
            for name, mask in masks.items():
                assert np.all(model.get_layer(name).kernel.numpy()[~mask] == 0.0)
            if kind == "tfmot":
                assert {n: m.tolist() for n, m in pruning.masks_of(trainer.wrapped).items()} == \
                    {n: m.tolist() for n, m in masks.items()}
        out[kind] = weights
    for masked, tfmot_ in zip(out["masked"], out["tfmot"]):
        for key in masked:
            np.testing.assert_allclose(tfmot_[key], masked[key], rtol=1e-5, atol=1e-5)
