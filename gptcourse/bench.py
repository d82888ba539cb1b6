"""`python -m gptcourse bench`: how fast the trainer runs here, and how fast the loss falls, as JSON.

Speed: several short runs of the real trainer (`gptcourse.train.train`), each timing every step; we report
the median step time per run and the median and spread across runs, tokens per second, peak memory, and on
CUDA the model FLOPs utilisation (MFU) against the GPU's stated bf16 peak.

Loss against time (`--train`): the whole `python -m gptcourse train` command run as a subprocess, timed
from launch to exit, with the validation loss at each evaluation and the wall-clock second it was reached.

    python -m gptcourse bench --preset nanogpt-cpu --runs 5 --iters 60
    python -m gptcourse bench --preset shakespeare-cpu --train --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["flops_per_token", "peak_flops", "speed_run", "train_run", "main"]

# Dense bf16 tensor-core peaks (TFLOP/s) as the vendors state them, matched against the device name.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                   "4090": 165.2, "3090": 71.0, "V100": 125.0, "T4": 65.0}


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> float:
    """Training FLOPs per token: 6 per parameter (forward 2, backward 4) plus attention's 12 * L * C * T."""
    return 6 * n_params + 12 * n_layer * n_embd * block_size


def peak_flops(device: torch.device) -> float | None:
    """The device's stated bf16 peak in FLOP/s, or None where we do not know it (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in GPU_PEAK_TFLOPS.items() if key in name), None)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def speed_run(model_cfg: Any, train_cfg: Any, iters: int, warmup: int) -> dict[str, Any]:
    """One short run of the real trainer; the median step time after `warmup` steps."""
    from .train import train

    total = warmup + iters
    with tempfile.TemporaryDirectory(prefix="gptcourse-bench-") as out:
        cfg = train_cfg.replace(max_iters=total, lr_decay_iters=total, log_interval=1, eval_interval=total + 1,
                                eval_iters=1, out_dir=out)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result = train(model_cfg, cfg, progress=False)
    steps = [row["ms_per_iter"] for row in result.history if row["iter"] >= warmup]
    device = next(result.model.parameters()).device
    ms = statistics.median(steps)
    tokens_per_iter = cfg.batch_size * model_cfg.block_size * cfg.gradient_accumulation_steps
    out: dict[str, Any] = {"ms_per_iter": ms, "tokens_per_s": tokens_per_iter * 1000 / ms, "device": str(device)}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        peak = peak_flops(device)
        if peak:
            n = result.model.num_parameters()
            fpt = flops_per_token(n, model_cfg.n_layer, model_cfg.n_embd, model_cfg.block_size)
            out["mfu"] = fpt * out["tokens_per_s"] / peak
    else:  # the process's high-water mark (Linux reports KiB)
        out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def train_run(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Time the whole `python -m gptcourse train` command; read its validation losses."""
    with tempfile.TemporaryDirectory(prefix="gptcourse-bench-") as out:
        args = [sys.executable, "-m", "gptcourse", "train", "--preset", preset, "--out_dir", out]
        for key, value in overrides.items():
            args += [f"--{key}", str(value)]
        start = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"training failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val_loss" in r]
    return {
        "wall_s": wall,
        "final_val_loss": evals[-1]["val_loss"],
        "curve": [{"iter": r["iter"] + 1, "elapsed_s": r.get("elapsed_s"), "val_loss": r["val_loss"]} for r in evals],
    }


def _environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str]) -> int:
    from .recipes import RECIPES
    from .train_cli import UsageError, parse_train_args

    parser = argparse.ArgumentParser(prog="python -m gptcourse bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="nanogpt-cpu", help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (the median and spread are reported)")
    parser.add_argument("--iters", type=int, default=50, help="timed steps per speed run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first in each speed run")
    parser.add_argument("--train", action="store_true", help="also time whole training commands (loss vs time)")
    parser.add_argument("--no-speed", dest="speed", action="store_false", help="skip the speed runs")
    parser.add_argument("--output", type=Path, help="also write the JSON to this file")
    args, rest = parser.parse_known_args(argv)
    if args.runs < 1 or args.iters < 1 or args.warmup < 0:
        print("--runs and --iters must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    try:  # the rest are --FIELD VALUE overrides, checked exactly as `train` checks them
        parsed = parse_train_args(["--preset", args.preset, *rest])
    except (UsageError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    model_cfg, train_cfg = parsed.model_config, parsed.train_config
    overrides = _overrides(rest)
    report: dict[str, Any] = {"preset": args.preset, "overrides": overrides, "environment": _environment()}
    if args.speed:
        runs = [speed_run(model_cfg, train_cfg, args.iters, args.warmup) for _ in range(args.runs)]
        report["speed"] = {
            "device": runs[0]["device"],
            "tokens_per_iter": train_cfg.batch_size * model_cfg.block_size * train_cfg.gradient_accumulation_steps,
            "ms_per_iter": _spread([r["ms_per_iter"] for r in runs]),
            "tokens_per_s": _spread([r["tokens_per_s"] for r in runs]),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
        }
        if "mfu" in runs[0]:
            report["speed"]["mfu"] = _spread([r["mfu"] for r in runs])
    if args.train:
        runs = [train_run(args.preset, overrides) for _ in range(args.runs)]
        report["train"] = {
            "wall_s": _spread([r["wall_s"] for r in runs]),
            "final_val_loss": _spread([r["final_val_loss"] for r in runs]),
            "curves": [r["curve"] for r in runs],
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def _overrides(rest: list[str]) -> dict[str, str]:
    """The --FIELD VALUE pairs as text (already validated), to pass on to `train`."""
    pairs, items = {}, list(rest)
    while items:
        name, sep, value = items.pop(0)[2:].partition("=")
        pairs[name] = value if sep else items.pop(0)
    return pairs
