"""The feed-forward network: widen each token's vector 4x, bend it with GELU, project it back."""

from __future__ import annotations

import math

import torch
from torch import nn

from .linear import FastLinear

__all__ = ["gelu", "MLP", "make_activation"]


def gelu(x: torch.Tensor, approximate: str = "tanh") -> torch.Tensor:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF. "tanh" is GPT-2's approximation of Phi."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(f"approximate must be 'tanh' or 'none', got {approximate!r}")


def make_activation(name: str) -> nn.Module:
    """PyTorch's fused versions of the activations (tested equal to `gelu` above)."""
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"activation must be 'gelu_tanh', 'gelu' or 'relu', got {name!r}")


class MLP(nn.Module):
    """Per-token computation: (B, T, C) -> (B, T, 4C) -> (B, T, C). Tokens do not mix here."""

    def __init__(self, n_embd: int, bias: bool = True, dropout: float = 0.0, activation: str = "gelu_tanh"):
        super().__init__()
        self.c_fc = FastLinear(n_embd, 4 * n_embd, bias=bias)
        self.act = make_activation(activation)
        self.c_proj = FastLinear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c_fc(x))  # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(h))  # (B, T, 4C) -> (B, T, C)
