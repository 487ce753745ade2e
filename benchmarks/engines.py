"""The training engines side by side: tf_keras, keras3 on TensorFlow, keras3 on JAX, each setting in a fresh process.

    python -m benchmarks.engines                       # lenet300_100 and conv2 on Fashion-MNIST, all three engines
    python -m benchmarks.engines --quick               # a smoke test: tiny settings, about 7 minutes on 2 cores
    python -m benchmarks.engines --engines=keras3-jax --models=lenet300_100 --dataset=mnist1d   (gpu_check_jax.sh)

For each (model, engine), in its own process (Keras' backend is chosen at import; one engine never warms up
another's caches):
  1. the masked/dense step ratio: the engine's round trainer training under a round-1 IMP mask (fc 20%, conv 10%
     pruned) against the same network trained by plain Keras `fit` (no masking) on the same batches, both
     compiled alike; training steps only (evaluations excluded), the fastest of --repeats interleaved
     measurements of --steps steps each, after one untimed warm-up (tracing). Target: >= 0.95.
  2. the wall time of a fixed IMP run through the experiment loop (lth_tf.experiment.experiment.run): 3 rounds
     after the dense one, variants lottery and reinit (7 rounds of --imp_iterations), evaluations every
     --eval_every iterations, data already loaded; and the rounds per hour it makes.
Then one table, and per model which engine ran the IMP run fastest and by how much. The full run takes about
35-45 minutes on 2 CPU cores, most of it conv2 on JAX (XLA's CPU convolutions are slower than TensorFlow's
oneDNN ones); on a GPU, minutes.
The dataset is Fashion-MNIST (its IDX files, /usr/share/datasets/fashion-mnist or --data_dir), or mnist1d
where they are absent (lenet300_100 only: conv2 needs images).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = {"tf_keras": ("tf_keras", None), "keras3-tensorflow": ("keras3", "tensorflow"),
           "keras3-jax": ("keras3", "jax")}
IMP_ROUNDS, IMP_VARIANTS = 3, ("lottery", "reinit")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet300_100,conv2")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--dataset", default="auto", help="fashion_mnist, mnist1d, or auto (Fashion-MNIST if found)")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--steps", type=int, default=200, help="steps per timed step measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--imp_iterations", type=int, default=500, help="iterations per round of the IMP run")
    p.add_argument("--eval_every", type=int, default=250)
    p.add_argument("--subset", type=int, default=0, help="train on this many examples, evaluate on a fifth as "
                   "many each (0: the whole dataset)")
    p.add_argument("--quick", action="store_true", help="tiny settings: --steps=20 --repeats=2 "
                   "--imp_iterations=40 --eval_every=20 --subset=2000")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "ENGINE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.imp_iterations, args.eval_every = 20, 2, 40, 20
        args.subset = args.subset or 2000
    return args


def dataset_for(model: str, args) -> str | None:
    if args.dataset != "auto":
        return args.dataset
    from lth_tf.data import idx
    if any(idx._idx_files(d) for d in idx._idx_dirs("fashion_mnist", args.data_dir)):
        return "fashion_mnist"
    return "mnist1d" if model.startswith("lenet") else None


# ---- the child: one (model, engine) ----------------------------------------------------------------------
def child(model: str, engine_name: str, args) -> dict:
    import numpy as np

    from lth_tf.data import loading
    from lth_tf.experiment import engines, experiment
    from lth_tf.experiment.config import Config
    from lth_tf.experiment.plan import train_spec
    from lth_tf.experiment.store import Store
    from lth_tf.pruning import arrays
    from lth_tf.training.jobs import Job

    dataset = dataset_for(model, args)
    engine_field, backend = ENGINES[engine_name]
    data = loading.load(dataset, args.data_dir)
    if args.subset:
        n, m = args.subset, max(1, args.subset // 5)
        data = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_val=data.x_val[:m],
                                   y_val=data.y_val[:m], x_test=data.x_test[:m], y_test=data.y_test[:m])
    cfg = Config(model=model, dataset=dataset, data_dir=args.data_dir, engine=engine_field, rounds=IMP_ROUNDS,
                 iterations=args.imp_iterations, eval_every=args.eval_every, variants=IMP_VARIANTS).resolve()
    engine = engines.make(cfg)
    engine.set_seed(0)
    spec = train_spec(cfg, 0)
    spec = dataclasses.replace(spec, iterations=args.steps, eval_every=args.steps)  # one evaluation, excluded
    net = engine.build(data, 0)
    start = engine.snapshot(net)
    masks = arrays.prune({n: start[f"{n}/kernel"] for n in engine.full_masks(net)}, engine.full_masks(net),
                         engine.layer_rates(net))
    trainer = engine.trainer([net], data, spec)
    dense_net, dense_step = _dense(engine_field, model, data, spec, engine)

    masked, dense = [], []
    for repeat in range(args.repeats + 1):  # the first of each is the warm-up (tracing), not timed
        result = trainer.train_many([Job(start, masks, data_key=repeat)])[0]
        seconds = dense_step(repeat)
        if repeat:
            masked.append((result.seconds - result.eval_seconds) / args.steps)
            dense.append(seconds / args.steps)

    with tempfile.TemporaryDirectory() as out:
        store = Store(out)
        with store.open(cfg.to_dict(), cfg.identity_hash(), cfg.identity()):
            began = time.perf_counter()
            rows = experiment.run(cfg, store, dataset=data)
            wall = time.perf_counter() - began
    return {"model": model, "engine": engine_name, "dataset": dataset, "masked_ms": 1000 * min(masked),
            "dense_ms": 1000 * min(dense), "ratio": min(dense) / min(masked), "imp_seconds": wall,
            "imp_rounds": len(rows), "rounds_per_hour": 3600 * len(rows) / wall,
            "backend": backend or "tensorflow (tf_keras)", "sparsity": 1 - arrays.remaining(masks)}


def _dense(engine_field, model, data, spec, engine):
    """A second copy of the network, trained by plain Keras fit (no masking) on the engine's batches: a function
    (data key) -> seconds for spec.iterations steps."""
    net = engine.build(data, 0)
    if engine_field == "keras3":
        import keras

        from lth_tf.keras3.batches import Batches
        optimizer = (keras.optimizers.Adam(spec.learning_rate) if spec.optimizer == "adam"
                     else keras.optimizers.SGD(spec.learning_rate, momentum=spec.momentum))
        net.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                             keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")],
                    jit_compile=True if keras.backend.backend() == "jax" else bool(spec.jit_compile),
                    steps_per_execution=max(1, min(int(spec.steps_per_execution), spec.chunk)))

        def step(key):
            began = time.perf_counter()
            x, y = Batches(data.x_train, data.y_train, spec.batch_size, key, spec.augment,
                           tensorflow_order=keras.backend.backend() == "tensorflow").take(0, spec.iterations)
            net.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0)
            return time.perf_counter() - began
        return net, step
    import tf_keras as keras

    from lth_tf.training.schedule import make_optimizer
    from lth_tf.training.trainer import RoundTrainer
    streams = RoundTrainer(engine.build(data, 1), data, spec)  # its traced data streams only
    net.compile(optimizer=make_optimizer(spec), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")],
                steps_per_execution=max(1, min(spec.steps_per_execution, spec.chunk)),
                jit_compile=bool(spec.jit_compile))

    def step(key):
        began = time.perf_counter()
        net.fit(streams.stream(key), steps_per_epoch=spec.iterations, epochs=1, verbose=0)
        return time.perf_counter() - began
    return net, step


# ---- the parent: fresh processes, one table ----------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(*args.child, args)), flush=True)
        return 0
    models = [m for m in args.models.split(",") if m]
    names = [e for e in args.engines.split(",") if e]
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        print(f"benchmarks.engines: unknown engine {', '.join(unknown)}; choose from {', '.join(ENGINES)}",
              file=sys.stderr)
        return 2
    rows, began = [], time.perf_counter()
    for model in models:
        if dataset_for(model, args) is None:
            print(f"[skip] {model}: needs images and no Fashion-MNIST IDX files were found", flush=True)
            continue
        for name in names:
            engine_field, backend = ENGINES[name]
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
            if backend:
                env["KERAS_BACKEND"] = backend
                env.pop("TF_USE_LEGACY_KERAS", None)
            print(f"[{time.strftime('%H:%M:%S')}] {model} {name} ...", flush=True)
            done = subprocess.run([sys.executable, "-m", "benchmarks.engines", "--child", model, name,
                                   *(argv if argv is not None else sys.argv[1:])], env=env, cwd=REPO,
                                  capture_output=True, text=True)
            found = [line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not found:
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                print(f"[fail] {model} {name}: " + " | ".join(tail), flush=True)
                continue
            rows.append(json.loads(found[0]))
    print(table(rows))
    print(f"total {time.perf_counter() - began:.0f}s")
    return 0 if rows else 1


def table(rows: list) -> str:
    lines = ["| model | engine | dataset | masked ms/step | dense ms/step | masked/dense | IMP run (7 rounds) s | "
             "rounds/hour |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = "" if r["ratio"] >= 0.95 else " (below 0.95)"
        lines.append(f"| {r['model']} | {r['engine']} | {r['dataset']} | {r['masked_ms']:.2f} | {r['dense_ms']:.2f} "
                     f"| {r['ratio']:.2f}{flag} | {r['imp_seconds']:.1f} | {r['rounds_per_hour']:.0f} |")
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["imp_seconds"])
        if len(mine) > 1:
            best, nxt = mine[0], mine[1]
            lines.append(f"{model}: fastest IMP run on {best['engine']} ({best['imp_seconds']:.1f}s), "
                         f"{nxt['imp_seconds'] / best['imp_seconds']:.2f}x faster than the next ({nxt['engine']}), "
                         f"{mine[-1]['imp_seconds'] / best['imp_seconds']:.2f}x than the slowest ({mine[-1]['engine']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
