"""A round's evaluation curve (validation and test sets at every evaluation point) and its result: the
early-stop point is the evaluation of minimum validation loss.
"""
from __future__ import annotations

import contextlib
import math
import time

from lth_tf import _env  # noqa: F401
import tf_keras as keras

from lth_tf.training.jobs import Diverged, RoundResult  # noqa: F401  (re-exported)


@contextlib.contextmanager
def _one_step_per_execution(model):
    """Evaluation runs one batch per call: a multi-step call would end mid-way at the end of a dataset whose
    size Keras cannot see (distributed inputs). Restores the training setting afterwards."""
    variable = getattr(model, "_steps_per_execution", None)
    steps = int(variable.numpy()) if variable is not None else 1
    if steps != 1:
        variable.assign(1)
    try:
        yield
    finally:
        if steps != 1:
            variable.assign(steps)


class _EvalCurve(keras.callbacks.Callback):
    """Evaluates validation and test sets at each evaluation point (the end of a Keras "epoch").

    Losses are the cross-entropy alone: a weight penalty (L2) changes with the mask and would move the
    early-stopping argmin, and the paper's criterion is the validation loss of the classifier.
    suffixes: the metric-name suffix of each network trained ("" for a one-network trainer, "_i" for the
    i-th of stacked trials); `curves[i]` is the i-th network's curve and on_eval[i] is told its points.
    """

    def __init__(self, val, test, points, on_eval, suffixes=("",)):
        super().__init__()
        self.val, self.test, self.points, self.on_eval, self.suffixes = val, test, points, on_eval, suffixes
        self.curves = [[] for _ in suffixes]

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        with _one_step_per_execution(self.model):
            val = self.model.evaluate(self.val, verbose=0, return_dict=True)
            test = self.model.evaluate(self.test, verbose=0, return_dict=True)
        seconds = time.perf_counter() - began
        for curve, suffix, on_eval in zip(self.curves, self.suffixes, self.on_eval):
            point = {"iteration": self.points[epoch], "train_loss": float(logs["cross_entropy" + suffix]),
                     "val_loss": val["cross_entropy" + suffix], "val_accuracy": val["accuracy" + suffix],
                     "test_loss": test["cross_entropy" + suffix], "test_accuracy": test["accuracy" + suffix],
                     # Not written to curve.csv; lets callers tell training time from evaluation time.
                     "eval_seconds": seconds}
            for index, quantity in enumerate(("train_loss", "val_loss", "test_loss")):
                if not math.isfinite(point[quantity]):
                    # Raised before the backup callbacks (after this one) save the diverged state.
                    raise Diverged(point["iteration"], quantity.replace("_", " "), point[quantity],
                                   index=self.suffixes.index(suffix))
            curve.append(point)
            if logs is not None and suffix == "":
                # Keras passes this dict on to the callbacks after this one (TensorBoard logging, History),
                # which find the evaluations under the usual val_* names, and test_* beside them.
                logs.update({key: point[key] for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy")})
            if on_eval:
                on_eval(point)
