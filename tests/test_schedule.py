"""lth_tf.training.schedule: iterations rounded up to whole evaluation chunks; a fresh optimizer's loss scale."""
import pytest
import tf_keras as keras

from lth_tf.training.schedule import reset_optimizer

from test_trainer import spec


@pytest.mark.parametrize("iterations,eval_every,chunk,total", [(45, 20, 20, 60), (40, 20, 20, 40), (7, 20, 7, 7),
                                                                (1, 1, 1, 1)])
def test_iterations_round_up_to_a_multiple_of_eval_every(iterations, eval_every, chunk, total):
    s = spec(iterations=iterations, eval_every=eval_every)
    assert (s.chunk, s.total_iterations) == (chunk, total)


def test_reset_optimizer_restarts_the_dynamic_loss_scale():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))
    optimizer.build(model.trainable_variables)
    optimizer._loss_scale._current_loss_scale.assign(4.0)  # as after overflows in an earlier round
    optimizer._loss_scale._counter.assign(7)
    reset_optimizer(optimizer)
    assert float(optimizer.loss_scale) == optimizer.initial_scale
    assert int(optimizer._loss_scale._counter.numpy()) == 0
