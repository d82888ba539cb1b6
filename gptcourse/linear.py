"""`nn.Linear` with its float32 CPU matrix products done by oneDNN, the kernel library PyTorch ships for x86.

PyTorch multiplies float32 matrices on the CPU with MKL, which on AMD CPUs takes its AVX2 code path even
where the CPU has AVX-512: on one Zen 5 core the (768, 128) @ (128, 512) product of the course's CPU models
ran at 106 GFLOP/s with MKL and 238 with oneDNN (BENCHMARKS.md). The model's layers are this class; on
those CPUs their float32 products go through oneDNN, everywhere else (other CPUs, GPUs, bf16 autocast,
`torch.compile`) it is exactly `nn.Linear`, and the tests check that both give the same numbers.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastLinear", "onednn_usable"]


def onednn_usable() -> bool:
    """True where oneDNN beats MKL at float32: an AMD CPU with AVX-512 (that PyTorch may use), and a
    PyTorch with oneDNN's linear kernel. Elsewhere MKL already runs at the CPU's full width (measured:
    held to AVX2, routing through oneDNN made a training step no faster)."""
    return (
        _cpu_is_amd()
        and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _cpu_is_amd() -> bool:
    if "AuthenticAMD" in platform.processor():  # Windows names the vendor here
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # Linux
            return any(line.startswith("vendor_id") and "AuthenticAMD" in line for line in f)
    except OSError:
        return False


_ONEDNN = onednn_usable()
# oneDNN sets up each product in about 10 us: it pays from about 32 rows on (measured), so a single token's
# row (generation) stays with MKL
MIN_ROWS = 64


def _onednn_matmul(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """a @ w.T (+ b) by oneDNN: a (..., in), w (out, in) -> (..., out). Transposed views need no copy."""
    return torch.ops.mkldnn._linear_pointwise(a, w, b, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b, with the backward's two products by oneDNN as well."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_matmul(x, weight, bias)  # (..., in) -> (..., out)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.size(-1))  # (N, out)
        x_rows = x.reshape(-1, x.size(-1))  # (N, in)
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = _onednn_matmul(grad_out, weight.t()) if need_x else None  # (..., out) @ (out, in) -> (..., in)
        grad_w = _onednn_matmul(g.t(), x_rows.t()) if need_w else None  # (out, N) @ (N, in) -> (out, in)
        grad_b = g.sum(0) if ctx.has_bias and need_b else None  # (out,)
        return grad_x, grad_w, grad_b


class FastLinear(nn.Linear):
    """`nn.Linear` (same parameters, same results) whose float32 CPU products go through oneDNN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            _ONEDNN
            and x.numel() >= MIN_ROWS * self.in_features  # first: a generation step fails here, quickly
            and x.device.type == "cpu"
            and x.dtype == torch.float32 == self.weight.dtype
            and not torch.is_autocast_enabled("cpu")  # bf16 autocast: PyTorch's own bf16 path is fast
            and not torch.compiler.is_compiling()  # compiled graphs choose their own kernels
        ):
            return _OneDNNLinear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
