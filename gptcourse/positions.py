"""Telling the model where each token is: learned, sinusoidal and rotary (RoPE) positions.

Learned and sinusoidal positions give a (T, C) table that is added to the token embeddings.
RoPE instead rotates each query and key inside attention, by an angle proportional to the position,
so that their dot product depends only on how far apart the two tokens are.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding",
    "RotaryEmbedding",
    "sinusoidal_table",
    "rope_angles",
    "apply_rope",
    "check_positions",
]

def check_positions(pos: torch.Tensor, block_size: int) -> None:
    """Refuse positions past the context window with a sentence that says so."""
    if pos.numel() and int(pos.max()) >= block_size:
        raise ValueError(
            f"position {int(pos.max())} is outside the context window of {block_size} tokens "
            f"(block_size); feed at most the last {block_size} tokens"
        )

class LearnedPositionalEmbedding(nn.Embedding):
    """GPT-2's positions: one trained vector per position. pos (T,) -> (T, C)."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__(block_size, n_embd)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        check_positions(pos, self.num_embeddings)
        return super().forward(pos)

def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The 2017 Transformer's fixed encoding: (n_positions, dim); even columns sin, odd columns cos.

    Column pair i oscillates with wavelength 2*pi * base**(2i/dim): fast near column 0, slow at the end.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = pos * inv_freq  # (P, 1) * (dim/2,) -> (P, dim/2)
    table = torch.empty(n_positions, dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table

class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal positions: no parameters, a table kept as a non-persistent buffer. pos (T,) -> (T, C)."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.block_size = block_size
        self.register_buffer("table", sinusoidal_table(block_size, n_embd), persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        check_positions(pos, self.block_size)
        return self.table[pos]

def rope_angles(n_positions: int, head_size: int, base: float = 10000.0) -> torch.Tensor:
    """(n_positions, head_size/2): the angle by which each pair of dimensions turns at each position."""
    if head_size % 2:
        raise ValueError(f"RoPE rotates pairs of dimensions: head size must be even, got {head_size}")
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
    return torch.arange(n_positions, dtype=torch.float32)[:, None] * inv_freq  # (P, hs/2)

def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[..., 2i], x[..., 2i+1]) of x by angles[t, i].

    x: (..., T, hs), angles: (T, hs/2). Returns a tensor of x's shape and dtype.
    """
    x_even, x_odd = x[..., 0::2].float(), x[..., 1::2].float()  # (..., T, hs/2) each
    cos, sin = angles.cos(), angles.sin()  # (T, hs/2)
    rotated = torch.stack(
        (x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1
    )  # (..., T, hs/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (..., T, hs)

class RotaryEmbedding(nn.Module):
    """RoPE for one attention layer: rotates queries or keys by their positions. No parameters."""

    def __init__(self, head_size: int, block_size: int, base: float = 10000.0):
        super().__init__()
        self.block_size = block_size
        self.register_buffer("angles", rope_angles(block_size, head_size, base), persistent=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x: (B, nh, T, hs), pos: (T,) -> (B, nh, T, hs)."""
        check_positions(pos, self.block_size)
        return apply_rope(x, self.angles[pos])

