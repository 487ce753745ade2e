#!/usr/bin/env bash
# The GPU check of lth_tf where TensorFlow is not installed: the Keras 3 engine on JAX (--engine=keras3), ending
# in one table (OUT/table.md): the masked/dense step ratio and the rounds per hour of a fixed IMP run (3 rounds,
# lottery + reinit; benchmarks/engines.py) for lenet300_100 on MNIST-1D and conv2 on Fashion-MNIST.
# --parallel_trials is refused by the Keras 3 engine (stacked trials are tf_keras-only), so rounds/hour are
# sequential rounds.
#
# Usage, from the repository root (lth_tf from the source tree: nothing is installed):
#   bash benchmarks/gpu_check_jax.sh [OUT]        # OUT: logs and table (default benchmarks/out_gpu_jax)
# Environment:
#   WHEELS=wheels           keras and mnist1d wheels to unpack onto PYTHONPATH where they are not importable
#                           (README.md, "Keras 3 engine": pip download keras mnist1d --no-deps -d wheels/)
#   FASHION_DIR=data/fashion-mnist   the four Fashion-MNIST IDX files (.gz), for conv2 (skipped without them)
#   GPU_CHECK_ARGS="--steps=300 --repeats=5 --imp_iterations=1000 --eval_every=500"   (tiny: --quick)
# Tested on CPU only (JAX without CUDA, TensorFlow unimportable, --quick): not yet run on a GPU.
set -u
OUT="${1:-benchmarks/out_gpu_jax}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
ROOT="$PWD"
export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
WHEELS="${WHEELS:-wheels}"
ARGS="${GPU_CHECK_ARGS:---steps=300 --repeats=5 --imp_iterations=1000 --eval_every=500}"
step() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# keras and mnist1d: unpacked from the carried wheels where they are not importable (a wheel is a zip file).
if ! "$PY" -c "import keras, mnist1d" >/dev/null 2>&1 && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  step "unpacking $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $OUT/site"
  mkdir -p "$OUT/site"
  for wheel in "$WHEELS"/*.whl; do "$PY" -m zipfile -e "$wheel" "$OUT/site"; done
  export PYTHONPATH="$PYTHONPATH:$ROOT/$OUT/site"
fi
# mnist1d imports matplotlib.pyplot and requests when imported, for plots and downloads lth_tf never asks of it
# (it generates the data): empty stand-ins, last on the path, only where the real ones are missing.
for module in matplotlib requests; do
  if ! "$PY" -c "import $module" >/dev/null 2>&1; then
    mkdir -p "$OUT/stubs/$module" && : > "$OUT/stubs/$module/__init__.py"
    [ "$module" = matplotlib ] && : > "$OUT/stubs/matplotlib/pyplot.py"
    STUBS=1
  fi
done
[ -n "${STUBS:-}" ] && export PYTHONPATH="$PYTHONPATH:$ROOT/$OUT/stubs"
if ! "$PY" -c "import keras, jax" >/dev/null 2>&1; then
  echo "gpu_check_jax: keras or jax is not importable (carry the keras wheel in $WHEELS)" >&2
  exit 1
fi
DEVICE=$("$PY" -c "import jax; d = jax.devices()[0]; print(d.platform, '-', getattr(d, 'device_kind', d))" 2>/dev/null)
TF=$("$PY" -c "import tensorflow" >/dev/null 2>&1 && echo "installed (not used)" || echo "absent")
step "JAX device: $DEVICE; TensorFlow $TF"
case "$DEVICE" in gpu*) ;; *) step "no GPU visible to JAX: the numbers below are CPU numbers";; esac

step "lenet300_100 on mnist1d"
timeout 300 "$PY" -m benchmarks.engines --engines=keras3-jax --models=lenet300_100 --dataset=mnist1d $ARGS \
  > "$OUT/lenet.log" 2>&1 || echo "(lenet300_100 failed or timed out: see $OUT/lenet.log)" >&2
FASHION_DIR="${FASHION_DIR:-data/fashion-mnist}"
if ls "$FASHION_DIR"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  step "conv2 on fashion_mnist ($FASHION_DIR)"
  timeout 300 "$PY" -m benchmarks.engines --engines=keras3-jax --models=conv2 --dataset=fashion_mnist \
    --data_dir="$FASHION_DIR" $ARGS > "$OUT/conv2.log" 2>&1 || echo "(conv2 failed or timed out: see $OUT/conv2.log)" >&2
else
  echo "conv2 skipped: it needs images and no Fashion-MNIST IDX files are in $FASHION_DIR" > "$OUT/conv2.log"
fi

{
  echo "GPU check (Keras 3 engine, JAX), $(date -u +%Y-%m-%d), $DEVICE, Keras $("$PY" -c 'import keras; print(keras.__version__)'), JAX $("$PY" -c 'import jax; print(jax.__version__)'), TensorFlow $TF; settings: $ARGS"
  echo
  echo "| model | engine | dataset | masked ms/step | dense ms/step | masked/dense | IMP run (7 rounds) s | rounds/hour |"
  echo "|---|---|---|---|---|---|---|---|"
  grep -h "^| [a-z0-9_]* | keras3" "$OUT/lenet.log" "$OUT/conv2.log" 2>/dev/null
  grep -h "^conv2 skipped" "$OUT/conv2.log" 2>/dev/null
  echo
  echo "rounds/hour: sequential rounds (--parallel_trials is refused by the Keras 3 engine)."
} > "$OUT/table.md"
cat "$OUT/table.md"
