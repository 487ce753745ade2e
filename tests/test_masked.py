"""lth_tf.training.masked: the looping training function traces the step once and trains as Keras' loop does."""
import numpy as np
import tf_keras as keras

from lth_tf.pruning import rewind
from lth_tf.training.masked import MaskedTrainer

from test_trainer import net, random_masks, tiny  # noqa: F401  (tiny: a fixture)


def test_looping_train_function_traces_the_step_once_and_trains_as_keras_loop_does(tiny):
    """Keras' own loop traces train_step twice per function; ours once, with the same steps and logs."""
    results = {}
    for which in ("keras", "looping"):
        traces = []

        class Counting(MaskedTrainer):
            def train_step(self, data):
                traces.append(1)  # Python runs this once per trace
                return super().train_step(data)

            def make_train_function(self, force=False):
                if which == "keras":
                    return keras.Model.make_train_function(self, force)
                return super().make_train_function(force)
        model = net(seed=8)
        trainer = Counting(model)
        trainer.compile(keras.optimizers.SGD(0.05, momentum=0.9), steps_per_execution=5, metrics=["accuracy"],
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        trainer.set_masks(random_masks(model, 0.5, seed=3))

        def fit():
            return trainer.fit(tiny.x_train, tiny.y_train, batch_size=8, epochs=2, shuffle=False, verbose=0)
        fit()  # creates the optimizer's and metrics' variables, whose creation makes tf.function trace again
        traces.clear()
        trainer.make_train_function(force=True)
        history = fit()
        results[which] = (len(traces), rewind.snapshot(model), history.history,
                          int(trainer._train_counter.numpy()))
        assert int(trainer.optimizer.iterations.numpy()) == 2 * 2 * 240 // 8
    (k_traces, k_weights, k_logs, k_steps), (l_traces, l_weights, l_logs, l_steps) = \
        results["keras"], results["looping"]
    assert (k_traces, l_traces) == (2, 1)
    assert l_steps == k_steps == 2 * 240 // 8  # the counter restarts at every fit
    for key in k_weights:
        np.testing.assert_allclose(l_weights[key], k_weights[key], rtol=1e-6, atol=1e-7)
    for key in k_logs:
        np.testing.assert_allclose(l_logs[key], k_logs[key], rtol=1e-6)
