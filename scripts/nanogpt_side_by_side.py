"""nanoGPT against gptcourse on nanoGPT's README CPU run, interleaved: ms per step, median of each run.

    python scripts/nanogpt_side_by_side.py NANOGPT_DIR [--rounds 4] [--iters 300] [--avx2] [--dtype float32 auto]

NANOGPT_DIR is a checkout of karpathy/nanoGPT after `python data/shakespeare_char/prepare.py`. Each round runs
nanoGPT's train.py with the README's CPU flags for iters + 10 steps and `python -m gptcourse bench --preset
nanogpt-cpu` for the same steps (once per --dtype), alternating the order from round to round; a run's figure
is the median step time after its first 10 steps. --avx2 holds PyTorch, oneDNN and MKL to AVX2 code, the
kernels a CPU without AVX-512 runs (an emulation: the caches and clocks stay this CPU's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
README_CPU = (
    "--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 "
    "--n_layer=4 --n_head=4 --n_embd=128 --lr_decay_iters=2000 --dropout=0.0"
).split()
WARMUP = 10


def nanogpt_ms(nanogpt: Path, iters: int, env: dict[str, str], out_dir: str) -> float:
    args = [
        sys.executable,
        "train.py",
        "config/train_shakespeare_char.py",
        *README_CPU,
        f"--max_iters={iters + WARMUP}",
        f"--out_dir={out_dir}",
    ]
    proc = subprocess.run(args, cwd=nanogpt, env=env, capture_output=True, text=True)
    steps = [
        float(ms)
        for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", proc.stdout)
        if int(it) >= WARMUP
    ]
    if proc.returncode or not steps:
        raise SystemExit(f"nanoGPT failed:\n{proc.stderr[-2000:]}")
    return statistics.median(steps)


def gptcourse_ms(dtype: str, iters: int, env: dict[str, str]) -> float:
    args = [
        sys.executable,
        "-m",
        "gptcourse",
        "bench",
        "--preset",
        "nanogpt-cpu",
        "--runs",
        "1",
        "--iters",
        str(iters),
        "--warmup",
        str(WARMUP),
        "--dtype",
        dtype,
    ]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"gptcourse bench failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["speed"]["ms_per_iter"]["median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nanogpt", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--avx2", action="store_true")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "auto", "bfloat16"])
    args = parser.parse_args()
    env = {**os.environ, **(AVX2 if args.avx2 else {})}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(ROOT)
    runs = {"nanoGPT": lambda: nanogpt_ms(args.nanogpt, args.iters, env, "/tmp/nanogpt-side-by-side")}
    runs |= {f"gptcourse {d}": (lambda d=d: gptcourse_ms(d, args.iters, env)) for d in args.dtype}
    ms: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:  # alternate the order
            ms[name].append(runs[name]())
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.2f} ms" for n, v in ms.items()), flush=True)
    tokens = 12 * 64  # batch x context of the README run
    base = statistics.median(ms["nanoGPT"])
    for name, values in ms.items():
        med = statistics.median(values)
        print(
            f"{name:20s} {med:6.2f} ms/step ({min(values):.2f}-{max(values):.2f}), {tokens * 1000 / med:7,.0f} "
            f"tokens/s, {base / med:.2f}x nanoGPT"
        )


if __name__ == "__main__":
    main()
