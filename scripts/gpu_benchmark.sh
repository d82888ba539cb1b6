#!/usr/bin/env bash
# The GPU measurement: nanoGPT's Shakespeare-char model (6 layers, 6 heads, 384 wide, context 256, 10.7M
# parameters) on one GPU. Writes three JSON reports and prints a summary: tokens/s and MFU of the training
# step (nanoGPT's recipe, eager and compiled), and the `shakespeare-gpu` recipe trained end to end with its
# validation loss against wall-clock time (target: at most 1.47 within 60 s).
#
#   scripts/gpu_benchmark.sh            on a CUDA machine: about 6 minutes; JSON into $OUT (default: .)
#   scripts/gpu_benchmark.sh --tiny     the same steps at a tiny size on the CPU, in seconds (a dry run; the
#                                       tests run it). --dry-run is the same.
#
# Needs Tiny Shakespeare on disk (the script refuses to start without it rather than try to download it):
# set GPTCOURSE_DATA_DIR to the folder holding tinyshakespeare.txt. PYTHON picks the interpreter (default:
# .venv/bin/python if there is one, else python3); the package is imported from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

TINY=false
case "${1:-}" in
  --tiny | --dry-run) TINY=true ;;
  "") ;;
  *) echo "usage: scripts/gpu_benchmark.sh [--tiny | --dry-run]" >&2; exit 2 ;;
esac

if ! "$PY" -c "from gptcourse.data import find_shakespeare; raise SystemExit(find_shakespeare() is None)"; then
  echo "Tiny Shakespeare is not on disk: set GPTCOURSE_DATA_DIR to the folder holding tinyshakespeare.txt" >&2
  exit 1
fi

if $TINY; then
  OUTDIR=${OUT:-$(mktemp -d)}
  # 2 layers, 32 wide, context 32, on the CPU, uncompiled: checks the commands and the summary, not the speed
  SIZE=(--device cpu --compile false --n_layer 2 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --eval_iters 2)
  SPEED=(--preset shakespeare-char --runs 1 --iters 3 --warmup 1 "${SIZE[@]}" --max_iters 10)
  EAGER=("${SPEED[@]}")
  COMPILED=("${SPEED[@]}")  # compiling takes a minute on a CPU: the dry run skips it
  TRAIN=(--preset shakespeare-gpu --runs 1 --no-speed --train "${SIZE[@]}" --max_iters 10 --lr_decay_iters 10
         --eval_interval 5)
else
  OUTDIR=${OUT:-.}
  if [ "$("$PY" -c "import torch; print(torch.cuda.is_available())")" != "True" ]; then
    echo "no CUDA GPU visible to PyTorch: run with --tiny for the CPU check" >&2
    exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  # nanoGPT's own recipe (batch 64); compiled runs skip their first 10 steps (compiling happens there)
  EAGER=(--preset shakespeare-char --runs 3 --iters 50 --warmup 5)
  COMPILED=(--preset shakespeare-char --runs 3 --iters 50 --warmup 10 --compile true)
  TRAIN=(--preset shakespeare-gpu --runs 1 --no-speed --train)  # the whole command, compiling included
fi

mkdir -p "$OUTDIR"
echo "== step speed, eager $(date -u +%T)"
"$PY" -m gptcourse bench "${EAGER[@]}" --output "$OUTDIR/gpu-benchmark-eager.json"
echo "== step speed, compiled $(date -u +%T)"
"$PY" -m gptcourse bench "${COMPILED[@]}" --output "$OUTDIR/gpu-benchmark-compiled.json"
echo "== shakespeare-gpu, whole command $(date -u +%T)"
"$PY" -m gptcourse bench "${TRAIN[@]}" --output "$OUTDIR/gpu-benchmark-train.json"

"$PY" - "$OUTDIR" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"== summary (JSON in {out})")
for name in ("eager", "compiled"):
    report = json.loads((out / f"gpu-benchmark-{name}.json").read_text())
    s = report["speed"]
    ms, tps = s["ms_per_iter"], s["tokens_per_s"]
    mfu = f"MFU {100 * s['mfu']['median']:.1f}%" if "mfu" in s else "MFU n/a (no stated peak for this device)"
    print(f"{name:9s} {report['environment']['cuda'] or s['device']}: {ms['median']:.2f} ms/step "
          f"({ms['min']:.2f}-{ms['max']:.2f}), {tps['median']:,.0f} tokens/s, {mfu}, "
          f"peak memory {s['peak_memory_mb']:.0f} MB")
train = json.loads((out / "gpu-benchmark-train.json").read_text())["train"]
print(f"shakespeare-gpu: whole command {train['wall_s']['median']:.1f} s, "
      f"final val loss {train['final_val_loss']['median']:.4f} (target: at most 1.47 within 60 s)")
for point in train["curves"][0]:
    print(f"  step {point['iter']:5d}  {point['elapsed_s']:7.1f} s  val loss {point['val_loss']:.4f}")
EOF
