"""Layer normalisation, written from scratch."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerNorm"]


class LayerNorm(nn.Module):
    """Normalise each token's vector to mean 0, variance 1, then scale and shift. (..., C) -> (..., C).

    Equal to `torch.nn.LayerNorm` (tested); the model uses PyTorch's fused one for speed.
    """

    def __init__(self, ndim: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1): the population variance
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # eps inside the root keeps it finite
        out = x_hat * self.weight
        return out + self.bias if self.bias is not None else out
