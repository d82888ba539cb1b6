"""Mixed precision: which number format a run computes in, the autocast context, and float16's loss scaler.

bf16 has float32's range, so it needs nothing more than autocast. float16 (GPUs without bf16, such as
Colab's T4) has a narrow range: small gradients round to zero unless the loss is scaled up before the
backward pass and the gradients scaled back down before the step, which `torch.amp.GradScaler` does.
"""

from __future__ import annotations

import contextlib

import torch

from .env import cpu_has_fast_bf16

__all__ = ["resolve_dtype", "gpu_has_native_bf16", "autocast", "grad_scaler"]

NAMED = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """A TrainConfig's dtype ("auto", "float32", "bfloat16" or "float16") as the format to compute in here."""
    if dtype != "auto":
        return NAMED[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if gpu_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16  # trains to the same loss, faster (BENCHMARKS.md)
    return torch.float32


def gpu_has_native_bf16(device: torch.device) -> bool:
    """True from Ampere (compute capability 8.0) on, and on AMD GPUs. Not `torch.cuda.is_bf16_supported()`:
    it also says True on a T4 (7.5), where bf16 only works emulated, slowly."""
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Matmuls in `dtype` inside the block (reductions such as softmax stay in float32); nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler | None:
    """A loss scaler for float16, None otherwise (bf16 and float32 keep small gradients without one)."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
