"""lth_tf.training.curve: the early stop is the evaluation of minimum validation loss; the curve's losses are
the cross-entropy alone."""
import pytest
import tensorflow as tf
import tf_keras as keras

from lth_tf.pruning import masks as pruning
from lth_tf.pruning import rewind
from lth_tf.training.curve import RoundResult
from lth_tf.training.trainer import RoundTrainer

from test_trainer import CLASSES, FEATURES, spec, tiny  # noqa: F401  (tiny: a fixture)


def test_early_stop_is_the_evaluation_with_minimum_validation_loss():
    def point(iteration, val_loss, test_accuracy):
        return {"iteration": iteration, "train_loss": 1.0, "val_loss": val_loss, "val_accuracy": 0.5,
                "test_loss": 1.0, "test_accuracy": test_accuracy, "eval_seconds": 0.25}
    curve = [point(100, 0.9, 0.7), point(200, 0.4, 0.8), point(300, 0.5, 0.95), point(400, 0.6, 0.9)]
    result = RoundResult(curve=curve, iterations=400, seconds=3.0)
    assert result.early_stop["iteration"] == 200  # not the best test accuracy (300), not the last (400)
    assert result.early_stop["test_accuracy"] == 0.8
    assert result.eval_seconds == pytest.approx(1.0)


def test_validation_and_test_losses_are_the_cross_entropy_without_the_weight_penalty(tiny):
    # A large L2 penalty: were it in val_loss, the stored losses would exceed the cross-entropy by sum(model.losses).
    inputs = keras.Input((FEATURES,))
    x = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.5), name="fc1",
                           kernel_initializer=keras.initializers.GlorotNormal(1))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, kernel_regularizer=keras.regularizers.L2(0.5),
                                                   name="output")(x))
    trainer = RoundTrainer(model, tiny, spec(iterations=20, eval_every=20, momentum=0.0))
    result = trainer.train(rewind.snapshot(model), pruning.full_masks(model))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    by_hand = {split: float(ce(y, model(x, training=False)))
               for split, (x, y) in {"val": (tiny.x_val, tiny.y_val), "test": (tiny.x_test, tiny.y_test)}.items()}
    penalty = float(tf.add_n(model.losses))
    assert penalty > 0.05
    point = result.curve[-1]
    assert point["val_loss"] == pytest.approx(by_hand["val"], rel=1e-5)
    assert point["test_loss"] == pytest.approx(by_hand["test"], rel=1e-5)
