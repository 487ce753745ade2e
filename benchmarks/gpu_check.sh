#!/usr/bin/env bash
# The GPU checks of lth_tf in one short run (under 8 minutes on one GPU), ending in one table:
#   1. masked/dense throughput ratio of conv2 and resnet18 at batch 128 (benchmarks/throughput.py), with
#      mixed precision off and on;
#   2. --parallel_trials for lenet300_100 at N = 1, 2, 4, 8, 16, 32, 64 (benchmarks/trials_throughput.py);
#   3. with 2 or more GPUs, a --strategy=mirrored smoke run of the quickstart (one round).
# Usage, from the repository root on a machine with a GPU, with lth_tf installed (pip install -e .):
#   bash benchmarks/gpu_check.sh [OUT]          # OUT: where logs and the table go (default benchmarks/out_gpu)
# The table is OUT/table.md (printed at the end); paste it into BENCHMARKS.md with the date and the machine.
set -u
OUT="${1:-benchmarks/out_gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export TF_CPP_MIN_LOG_LEVEL=2
GPUS=$("$PY" -c "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null || echo 0)
if [ "$GPUS" = "0" ]; then
  echo "gpu_check: no GPU visible to TensorFlow; nothing to check" >&2
  exit 1
fi
began=$(date +%s)
step() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# 1. masked/dense ratio, batch 128, fp32 and mixed precision (tfmot's naive wrapper left out: it is the CPU story)
for mp in off on; do
  flag=""; [ "$mp" = on ] && flag="--mixed_precision"
  step "throughput conv2,resnet18 batch 128 mixed_precision=$mp"
  timeout 200 "$PY" -m benchmarks.throughput --models=conv2,resnet18 --batch=128 --steps=100 --epochs=2 \
    --repeats=3 --sparsities=0,0.9 --tfmot_sparsities= --clock=wall $flag --random_data \
    > "$OUT/throughput_mp_$mp.log" 2>&1 || echo "(throughput mixed_precision=$mp failed or timed out: see $OUT/throughput_mp_$mp.log)" >&2
done

# 2. stacked trials, lenet300_100 on MNIST-1D, N = 1..64 (conv2 needs Fashion-MNIST; left to the CPU benchmark)
step "trials_throughput lenet300_100 N=1..64"
timeout 170 "$PY" -m benchmarks.trials_throughput --ns=1,2,4,8,16,32,64 --models=lenet300_100 --out="$OUT/trials" \
  > "$OUT/trials.log" 2>&1 || echo "(trials_throughput failed or timed out: see $OUT/trials.log)" >&2

# 3. mirrored smoke run on several GPUs
mirrored="skipped ($GPUS GPU)"
if [ "$GPUS" -ge 2 ]; then
  step "mirrored smoke run on $GPUS GPUs"
  rm -rf "$OUT/mirrored"
  if timeout 120 "$PY" -m lth_tf.main --flagfile=flags/quickstart.flags --rounds=1 --epochs=2 \
      --strategy=mirrored --output_dir="$OUT/mirrored" --quiet > "$OUT/mirrored.log" 2>&1; then
    mirrored="passed ($GPUS GPUs): $(grep -c 'lottery' "$OUT/mirrored.log") rounds"
  else
    mirrored="FAILED: see $OUT/mirrored.log"
  fi
fi

# One table from the logs.
{
  echo "GPU check, $(date -u +%Y-%m-%d), $("$PY" -c "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; import tensorflow as tf; d=tf.config.list_physical_devices('GPU'); print(len(d), 'x', tf.config.experimental.get_device_details(d[0]).get('device_name','GPU'), '; TensorFlow', tf.__version__)" 2>/dev/null)"
  echo
  echo "| check | value |"
  echo "|---|---|"
  for mp in off on; do
    grep -h "masked/dense throughput ratio" "$OUT/throughput_mp_$mp.log" 2>/dev/null | sed 's/^\[[0-9:]*\] //' |
      while read -r line; do echo "| ${line%%:*} (mixed precision $mp) | ${line##*: } |"; done
    grep -h -E "^(\[[0-9:]*\] )?(conv2|resnet18) +128 (keras dense|lth_tf masked) +[0-9]+ +(-|0\.90)" "$OUT/throughput_mp_$mp.log" 2>/dev/null |
      sed 's/^\[[0-9:]*\] //' | awk -v mp="$mp" '{print "| " $1 " " $3 " " $4 " sparsity " $6 " ex/s (mixed precision " mp ") | " $8 " |"}'
  done
  grep -h -E "^lenet300_100 (sequential|parallel_trials=[0-9]+) " "$OUT/trials.log" 2>/dev/null |
    awk '{l=$1; for (i = 2; i <= NF - 5; i++) l = l " " $i; print "| " l ": rounds/hour (x sequential) | " $(NF-1) " (" $NF "x) |"}'
  echo "| mirrored smoke run | $mirrored |"
  echo
  echo "wall time: $(( $(date +%s) - began )) s"
} > "$OUT/table.md"
cat "$OUT/table.md"
