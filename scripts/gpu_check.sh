#!/usr/bin/env bash
# The GPU numbers of the training chapter, on one CUDA machine, in at most 8 minutes:
#   1. the benchmark on CUDA: library step vs plain loop, eager fp32 vs bf16 + channels_last vs torch.compile,
#      time to 98 % condition accuracy for the GPU recipe (60 s training budget), peak GPU memory;
#   2. the full run of the GPU recipe, python -m condgan_lib.train --config mnist-projection-gpu, with its metrics.
#
#   OUT=/path/for/results bash scripts/gpu_check.sh        (PYTHON=... to choose the interpreter)
#
# Writes 7 files into $OUT, the artifacts the chapter shows (condgan_lib/artifacts/gpu/ takes the same names):
#   bench_cuda.txt, env.txt, and mnist-projection-gpu/{history.json, manifest_entry.json, samples.png, curves.png,
#   train.log}. Each stage has its own time limit, so a slow stage cannot take the other's results with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PYTHON:-python}
RUN=$OUT/mnist-projection-gpu
mkdir -p "$RUN"
if [ -z "${CONDGAN_DATA_MIRROR:-}" ] && [ -d shared/datasets ]; then export CONDGAN_DATA_MIRROR=$PWD/shared/datasets; fi
export CONDGAN_DATA_ROOT=${CONDGAN_DATA_ROOT:-/tmp/condgan-data}
work=$(mktemp -d)
t0=$(date +%s)

{ date -u; git rev-parse HEAD 2>/dev/null; nvidia-smi 2>&1 | head -15
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} > "$OUT/env.txt" 2>&1
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device" | tee -a "$OUT/env.txt"; exit 1; }

# 1. benchmark (about 2.5 minutes; torch.compile takes most of a minute)
timeout 160 $PY -m condgan_lib.bench --device cuda --config mnist-projection-gpu --steps 200 \
    --budget-s 60 --check-every 1000 --out "$work/bench_cuda.txt" > "$work/bench.log" 2>&1
status=$?
cp "$work/bench_cuda.txt" "$OUT/bench_cuda.txt" 2>/dev/null || cp "$work/bench.log" "$OUT/bench_cuda.txt"
[ $status -eq 0 ] || echo "bench stopped with exit status $status (124: its 160 s limit)" >> "$OUT/bench_cuda.txt"

# 2. the full GPU run (the -gpu recipe: batch 256, bf16, channels_last), evaluated on 2000 samples
timeout 290 $PY -m condgan_lib.train --config mnist-projection-gpu --device cuda --no-progress \
    --out "$work/run" > "$work/train.log" 2>&1
status=$?
tail -n 60 "$work/train.log" > "$RUN/train.log"
if [ $status -ne 0 ]; then
    echo "training stopped with exit status $status (124: its 290 s limit); history and pictures below are" \
         "those of the newest checkpoint" >> "$RUN/train.log"
    $PY - "$work/run" >> "$RUN/train.log" 2>&1 <<'PY'
import json, sys
from pathlib import Path
import torch
from condgan_lib import train
from condgan_lib.configs import GANConfig
out = Path(sys.argv[1])
state = train.load_latest_checkpoint(out)
cfg = GANConfig(**{**state["config"], "betas": tuple(state["config"]["betas"]), "steps": state["step"]})
G, _, _ = train.build_models(cfg)
G.load_state_dict({k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")})
history = json.loads(state["history"])
(out / "history.json").write_text(json.dumps(history, indent=1))
train.write_run_pictures(out, cfg, G, history, state["wall_time_s"])
print(f"newest checkpoint: step {state['step']}, {state['wall_time_s']:.0f} s of training")
PY
fi
cp "$work/run/history.json" "$work/run/samples.png" "$work/run/curves.png" "$RUN/" 2>/dev/null
cp "$work/run/mnist-projection-gpu.manifest_entry.json" "$RUN/manifest_entry.json" 2>/dev/null
echo "gpu_check: $(( $(date +%s) - t0 )) s in all" | tee -a "$OUT/env.txt"
ls -l "$OUT" "$RUN"
