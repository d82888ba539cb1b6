"""Telling the model where each token is: learned, sinusoidal and rotary (RoPE) positions.

Learned and sinusoidal positions give a (T, C) table that is added to the token embeddings.
RoPE instead rotates each query and key inside attention, by an angle proportional to the position,
so that their dot product depends only on how far apart the two tokens are.

The model asks for the positions start..start+T-1 with Python ints (`window`, `RotaryEmbedding`), so the
context-window check never reads a tensor: on a GPU such a read waits for the device, and under
`torch.compile` it breaks the graph.
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
    "rotate_pairs",
    "check_window",
    "check_positions",
]


def check_window(start: int, T: int, block_size: int) -> None:
    """Refuse positions start..start+T-1 past the context window, with a sentence that says so."""
    if start + T > block_size:
        raise ValueError(
            f"position {start + T - 1} is outside the context window of {block_size} tokens "
            f"(block_size); feed at most the last {block_size} tokens"
        )


def check_positions(pos: torch.Tensor, block_size: int) -> None:
    """The same check for a tensor of positions. It reads the values only on the CPU outside
    `torch.compile` (on a GPU the read would wait for the device)."""
    if pos.device.type != "cpu" or torch.compiler.is_compiling() or not pos.numel():
        return
    if int(pos.max()) >= block_size:
        check_window(0, int(pos.max()) + 1, block_size)


class LearnedPositionalEmbedding(nn.Embedding):
    """GPT-2's positions: one trained vector per position. pos (T,) -> (T, C)."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__(block_size, n_embd)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        check_positions(pos, self.num_embeddings)
        return super().forward(pos)

    def window(self, start: int, T: int) -> torch.Tensor:
        """The vectors of positions start..start+T-1: (T, C), the same as forward(torch.arange(start, start + T))."""
        check_window(start, T, self.num_embeddings)
        return self.weight[start : start + T]


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

    def window(self, start: int, T: int) -> torch.Tensor:
        """The rows of positions start..start+T-1: (T, C)."""
        check_window(start, T, self.block_size)
        return self.table[start : start + T]


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
    return rotate_pairs(x, torch.polar(torch.ones_like(angles), angles))  # cos t + i sin t, (T, hs/2)


def rotate_pairs(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """`apply_rope` with the turns given as unit complex numbers cos t + i sin t, (T, hs/2).

    The pair (a, b) turned by t is (a cos t - b sin t, a sin t + b cos t): the product of the complex
    numbers a + ib and cos t + i sin t. One complex product does every pair at once, several times
    faster than the four real products and the interleaving written out.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())  # (..., T, hs/2): a + ib
    return torch.view_as_real(pairs * turn).flatten(-2).to(x.dtype)  # (..., T, hs/2, 2) -> (..., T, hs)


class RotaryEmbedding(nn.Module):
    """RoPE for one attention layer: rotates queries or keys by their positions. No parameters."""

    def __init__(self, head_size: int, block_size: int, base: float = 10000.0):
        super().__init__()
        self.block_size = block_size
        angles = rope_angles(block_size, head_size, base)  # (P, hs/2)
        # (P, hs/2, 2): cos and sin of every angle, computed once and sliced per call (kept real, so that
        # model.to(dtype) treats it like any other buffer)
        self.register_buffer("turns", torch.stack((angles.cos(), angles.sin()), dim=-1), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: (B, nh, T, hs) at positions start..start+T-1 -> (B, nh, T, hs)."""
        T = x.size(-2)
        check_window(start, T, self.block_size)
        turn = torch.view_as_complex(self.turns[start : start + T].float())  # (T, hs/2) complex
        return rotate_pairs(x, turn)
