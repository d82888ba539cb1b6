#!/usr/bin/env bash
# The GPU measurement: nanoGPT's Shakespeare-char model (6 layers, 6 heads, 384 wide, context 256, 10.7M
# parameters) on one GPU. Prints JSON: tokens/s and MFU of the training step (eager and compiled), and the
# `shakespeare-gpu` recipe trained end to end with its validation loss against wall-clock time.
#
#   scripts/gpu_benchmark.sh            on a CUDA machine (writes gpu-benchmark-*.json beside it, or into $OUT)
#   scripts/gpu_benchmark.sh --tiny     the same steps at a tiny size on the CPU, in seconds (the tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUTDIR=${OUT:-.}

if [ "${1:-}" = "--tiny" ]; then
  SIZE=(--device cpu --compile false --n_layer 2 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --eval_iters 2)
  "$PY" -m gptcourse bench --preset shakespeare-gpu --runs 1 --iters 3 --warmup 1 "${SIZE[@]}" --max_iters 10
  "$PY" -m gptcourse bench --preset shakespeare-gpu --runs 1 --no-speed --train "${SIZE[@]}" \
    --max_iters 10 --lr_decay_iters 10 --eval_interval 5
  exit 0
fi

python_has_cuda=$("$PY" -c "import torch; print(torch.cuda.is_available())")
if [ "$python_has_cuda" != "True" ]; then
  echo "no CUDA GPU visible to PyTorch: run with --tiny for the CPU check" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# Step speed of nanoGPT's own recipe, eager then compiled.
"$PY" -m gptcourse bench --preset shakespeare-char --runs 3 --iters 50 --output "$OUTDIR/gpu-benchmark-eager.json"
"$PY" -m gptcourse bench --preset shakespeare-char --runs 3 --iters 50 --compile true \
  --output "$OUTDIR/gpu-benchmark-compiled.json"
# The 60-second recipe, whole command timed, loss against time.
"$PY" -m gptcourse bench --preset shakespeare-gpu --runs 1 --no-speed --train --output "$OUTDIR/gpu-benchmark-train.json"
