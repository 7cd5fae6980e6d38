#!/usr/bin/env bash
# The GPU numbers of the training chapter, on one CUDA machine, in at most 8 minutes:
#   1. the benchmark on CUDA: library step vs plain loop, eager fp32 vs bf16 + channels_last vs torch.compile,
#      time to 98 % condition accuracy for the GPU recipe (60 s training budget), peak GPU memory;
#   2. the full run of the GPU recipe, python -m condgan_lib.train --config mnist-projection-gpu, with its metrics.
#
#   OUT=/path/for/results bash scripts/gpu_check.sh        (PYTHON=... to choose the interpreter)
#   SMOKE=1 OUT=... bash scripts/gpu_check.sh              every stage on the CPU at a tiny size (CI runs this)
#
# Writes 7 files into $OUT, the artifacts the chapter shows (condgan_lib/artifacts/gpu/ takes the same names):
#   bench_cuda.txt, env.txt, and mnist-projection-gpu/{history.json, manifest_entry.json, samples.png, curves.png,
#   train.log}. Each stage has its own time limit, so a slow stage cannot take the other's results with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PYTHON:-python}
SMOKE=${SMOKE:-0}
RUN=$OUT/mnist-projection-gpu
mkdir -p "$RUN"
if [ -z "${CONDGAN_DATA_MIRROR:-}" ] && [ -d shared/datasets ]; then export CONDGAN_DATA_MIRROR=$PWD/shared/datasets; fi
export CONDGAN_DATA_ROOT=${CONDGAN_DATA_ROOT:-/tmp/condgan-data}
work=$(mktemp -d)
t0=$(date +%s)
if [ "$SMOKE" = 1 ]; then   # the same stages and files, on the CPU, in seconds
    DEVICE=cpu; BENCH=(--steps 4 --skip-accuracy --threads 1)
    TRAIN=(--steps 20 --threads 1 --set ch=8 --set batch_size=32 --set eval_every=10 --set eval_samples=100
           --set ckpt_every=10 --set log_every=5)
else
    DEVICE=cuda; BENCH=(--steps 200 --budget-s 60 --check-every 1000); TRAIN=()
fi

{ date -u; git rev-parse HEAD 2>/dev/null; [ "$SMOKE" = 1 ] && echo "SMOKE=1: CPU smoke test, not a GPU measurement"
  nvidia-smi 2>&1 | head -15
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} > "$OUT/env.txt" 2>&1
if [ "$SMOKE" != 1 ]; then
    $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "no CUDA device" | tee -a "$OUT/env.txt"; exit 1; }
fi

# 1. benchmark (about 2.5 minutes on a GPU; torch.compile takes most of a minute)
timeout 160 $PY -m condgan_lib.bench --device $DEVICE --config mnist-projection-gpu "${BENCH[@]}" \
    --out "$work/bench_cuda.txt" > "$work/bench.log" 2>&1
status=$?
cp "$work/bench_cuda.txt" "$OUT/bench_cuda.txt" 2>/dev/null || cp "$work/bench.log" "$OUT/bench_cuda.txt"
[ $status -eq 0 ] || echo "bench stopped with exit status $status (124: its 160 s limit)" >> "$OUT/bench_cuda.txt"

# 2. the full GPU run (the -gpu recipe: batch 256, bf16, channels_last), evaluated on 2000 samples
timeout 290 $PY -m condgan_lib.train --config mnist-projection-gpu --device $DEVICE --no-progress "${TRAIN[@]}" \
    --out "$work/run" > "$work/train.log" 2>&1
status=$?
tail -n 60 "$work/train.log" > "$RUN/train.log"
if [ $status -ne 0 ]; then
    echo "training stopped with exit status $status (124: its 290 s limit); history and pictures below are" \
         "those of the newest checkpoint" >> "$RUN/train.log"
    $PY -m condgan_lib.bench --pictures-from "$work/run" >> "$RUN/train.log" 2>&1
fi
cp "$work/run/history.json" "$work/run/samples.png" "$work/run/curves.png" "$RUN/" 2>/dev/null
cp "$work/run/mnist-projection-gpu.manifest_entry.json" "$RUN/manifest_entry.json" 2>/dev/null
echo "gpu_check: $(( $(date +%s) - t0 )) s in all" | tee -a "$OUT/env.txt"
ls -l "$OUT" "$RUN"
