"""Four lottery-ticket rounds of a Keras 3 Functional Conv+BatchNorm+Dense model with lth_tf.keras3, written the
way a Keras 3 user would, and the step time of each masked round against the same model trained dense.

    python benchmarks/keras3_rounds.py [--backend=tensorflow|jax|torch] [--epochs=4] [--data=mnist1d|random]

Round 0 trains the dense network; rounds 1-3 prune conv 10%, fc 20%, output 10% of the survivors per layer and
rewind to the weights after 20 steps (late rewinding). After each masked round, two fresh copies start from the
rewind weights, one under the round's masks and one dense, compiled alike; they are fitted one epoch at a time,
in turn, on the same batches (shuffle=False), so the two step times differ only by the masking. Each copy's
first epoch (tracing) is dropped and the fastest of its --repeats others kept.
"""
import argparse
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                    choices=["tensorflow", "jax", "torch"])
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--data", default="mnist1d", choices=["mnist1d", "random"])
parser.add_argument("--repeats", type=int, default=3, help="timed epochs per model and round, taken in turn")
args = parser.parse_args()
if args.epochs < 1 or args.repeats < 1:
    sys.exit("--epochs and --repeats must be at least 1")
os.environ["KERAS_BACKEND"] = args.backend  # Keras reads it on import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lth_tf import keras3 as lth  # noqa: E402

if args.data == "mnist1d":
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    x_train, y_train, x_test, y_test = d["x"], d["y"], d["x_test"], d["y_test"]
else:
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(4000, 40)), rng.normal(size=(1000, 40))
    y_train, y_test = (x_train[:, :10].argmax(1)), (x_test[:, :10].argmax(1))
x_train, x_test = (a.astype("float32")[..., None] for a in (x_train, x_test))
y_train, y_test = y_train.astype("int32"), y_test.astype("int32")
BATCH = 100


def build():
    inputs = keras.Input((40, 1))
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="output")(x))


def compile_(model):
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def step_times(masked, dense, repeats):
    """ms per step of `masked` and `dense`, fitted one epoch at a time in turn on the same batches; the
    first epoch of each (tracing) is dropped, and the fastest of the rest kept: other processes only add."""
    times = {"masked": [], "dense": []}
    for _ in range(repeats + 1):
        for name, model in (("masked", masked), ("dense", dense)):
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
            times[name].append(time.perf_counter() - start)
    steps = len(x_train) // BATCH
    return (1000 * min(times["masked"][1:]) / steps, 1000 * min(times["dense"][1:]) / steps)


model = build()
rewind = lth.RewindCallback(rewind_iteration=20)
rows = []
for round_ in range(4):
    if round_ > 0:
        model = lth.prune_model(model, fc=0.2, conv=0.1, output=0.1)
    compile_(model).fit(x_train, y_train, batch_size=BATCH, epochs=args.epochs, shuffle=False, verbose=0,
                        callbacks=[rewind])
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    masks, kernels = lth.masks_of(model), lth.kernels(model)
    zeros_ok = all(np.all(kernels[n][~m] == 0) for n, m in masks.items())
    step_ms = dense_ms = None
    if masks:  # timing copies from the rewind point: one under this round's masks, one dense twin
        masked_copy, dense_copy = build(), build()
        lth.apply_masks(masked_copy, masks)
        lth.restore(masked_copy, rewind.weights)
        lth.restore(dense_copy, rewind.weights, masks={})
        step_ms, dense_ms = step_times(compile_(masked_copy), compile_(dense_copy), args.repeats)
    remaining = {n: float(m.mean()) for n, m in masks.items()} or {n: 1.0 for n in kernels}
    total = sum(k.size for k in kernels.values())
    overall = sum(remaining[n] * kernels[n].size for n in kernels) / total
    rows.append((round_, overall, remaining, accuracy, step_ms, dense_ms, zeros_ok))

print(f"backend={keras.backend.backend()} keras={keras.__version__} data={args.data} epochs={args.epochs} "
      f"batch={BATCH} steps/epoch={len(x_train) // BATCH}")
print("round  remaining  conv1  conv2    fc1  output  test_acc  masked_ms  dense_ms  masked/dense  pruned==0")
for r, overall, rem, acc, ms, dense, ok in rows:
    timing = f"{ms:9.2f}  {dense:8.2f}  {ms / dense:12.3f}" if dense else f"{'-':>9}  {'-':>8}  {'-':>12}"
    print(f"{r:5d}  {overall:9.3f}  {rem['conv1']:5.3f}  {rem['conv2']:5.3f}  {rem['fc1']:5.3f}  "
          f"{rem['output']:6.3f}  {acc:8.3f}  {timing}  {str(ok):>9}")
ratios = [ms / dense for _, _, _, _, ms, dense, _ in rows if dense]
print(f"masked/dense step time over rounds 1-3: mean {np.mean(ratios):.3f} (min {min(ratios):.3f}, "
      f"max {max(ratios):.3f})")
