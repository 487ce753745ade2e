"""A round's evaluation curve (validation and test sets at every evaluation point) and its result: the
early-stop point is the evaluation of minimum validation loss.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time

from lth_tf import _env  # noqa: F401
import tf_keras as keras


@dataclasses.dataclass
class RoundResult:
    curve: list  # dicts: iteration, train_loss, val_loss, val_accuracy, test_loss, test_accuracy
    iterations: int
    seconds: float
    weights: dict | None = None  # set by the caller from rewind.snapshot
    rewind_weights: dict | None = None  # recorded at `record_at`, when asked
    resumed_from: int = 0  # the iteration a backup let this round start from (0: from the beginning)

    @property
    def eval_seconds(self) -> float:
        """Time spent evaluating (included in `seconds`); `seconds - eval_seconds` is pure training."""
        return float(sum(point.get("eval_seconds", 0.0) for point in self.curve))

    @property
    def early_stop(self) -> dict:
        """The evaluation with minimum validation loss (the paper's early-stopping criterion)."""
        return min(self.curve, key=lambda point: point["val_loss"])


class Diverged(ArithmeticError):
    """Training diverged: a loss was not finite at an evaluation (the training loss there is the mean over the
    chunk's steps, so a non-finite loss in any step counts). `index`: which of the networks trained together;
    `where`: the round's name once the experiment knows it (`at`). Entry points print str(e) as one line."""

    def __init__(self, iteration: int, quantity: str, value: float, index: int = 0, where: str = "training"):
        super().__init__(f"{where} diverged at iteration {iteration} ({quantity} is {value}); nothing of it is "
                         "stored: a lower --learning_rate (or a warm-up) may help")
        self.iteration, self.quantity, self.value, self.index, self.where = iteration, quantity, value, index, where

    def at(self, where: str) -> "Diverged":
        """The same divergence, named (e.g. "trial 0 lottery round 3")."""
        return Diverged(self.iteration, self.quantity, self.value, self.index, where)


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
