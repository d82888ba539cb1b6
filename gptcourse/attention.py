"""Causal self-attention: one head written out, many heads step by step, and the fused fast version.

`MultiHeadAttention` spells out every step (scores, mask, softmax, weighted sum) so a lesson can print
each shape. `CausalSelfAttention` is the same layer with the core handed to PyTorch's fused
`scaled_dot_product_attention` (flash attention on a GPU); it is what the model uses, and the tests
check that both give the same output from the same weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .linear import FastLinear
from .positions import RotaryEmbedding

__all__ = [
    "causal_mask",
    "attention_weights",
    "SingleHeadAttention",
    "MultiHeadAttention",
    "CausalSelfAttention",
    "KVCache",
]


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) booleans, True where query i may look at key j (j <= i): the past and itself."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) over the keys. q: (..., Tq, hs), k: (..., Tk, hs) -> (..., Tq, Tk).

    The 1/sqrt(hs) keeps the scores' variance near 1 whatever the head size, so the softmax does not
    saturate into a one-hot. mask: (Tq, Tk) booleans, True where attending is allowed.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., Tq, hs) @ (..., hs, Tk) -> (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)  # each row sums to one


class SingleHeadAttention(nn.Module):
    """One causal head: every token asks a query, offers a key and a value. (B, T, C) -> (B, T, hs)."""

    def __init__(self, n_embd: int, head_size: int, block_size: int, bias: bool = False):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=bias)
        self.key = nn.Linear(n_embd, head_size, bias=bias)
        self.value = nn.Linear(n_embd, head_size, bias=bias)
        self.block_size = block_size
        self.register_buffer("mask", causal_mask(block_size), persistent=False)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention pattern: (B, T, C) -> (B, T, T), row i = how much token i takes from each j."""
        T = x.size(1)
        if T > self.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the context window ({self.block_size})")
        return attention_weights(self.query(x), self.key(x), self.mask[:T, :T])  # (B, T, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights(x) @ self.value(x)  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


class KVCache:
    """One layer's keys and values from earlier steps, so generation computes each token's only once.

    They live in buffers sized once for `capacity` positions (the context window, as `GPT.new_cache`
    sets it): each step writes its new keys and values in place, where `torch.cat` would copy all the
    earlier ones again at every step. Without a capacity the buffers double when they fill up.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.k: torch.Tensor | None = None  # (B, nh, room, hs); the first `length` positions are filled
        self.v: torch.Tensor | None = None
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's (B, nh, T_new, hs) keys and values; return all of them so far (views)."""
        end = self.length + k.size(2)
        if self.k is None or end > self.k.size(2):
            self._grow(end, k, v)
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # (B, nh, past + T_new, hs)

    def _grow(self, needed: int, k: torch.Tensor, v: torch.Tensor) -> None:
        old_room = 0 if self.k is None else self.k.size(2)
        room = max(needed, self.capacity or 0, 2 * old_room)
        B, nh, _, hs = k.shape
        new_k, new_v = k.new_empty(B, nh, room, hs), v.new_empty(B, nh, room, hs)
        if self.length:
            new_k[:, :, : self.length] = self.k[:, :, : self.length]
            new_v[:, :, : self.length] = self.v[:, :, : self.length]
        self.k, self.v = new_k, new_v


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention, written out step by step. (B, T, C) -> (B, T, C).

    Parameter names follow GPT-2 (`c_attn` makes q, k and v in one matrix; `c_proj` mixes the heads).
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        block_size: int,
        dropout: float = 0.0,
        bias: bool = True,
        rope: bool = False,
    ):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head, self.n_embd, self.block_size, self.dropout = n_head, n_embd, block_size, dropout
        self.c_attn = FastLinear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = FastLinear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.rotary = RotaryEmbedding(n_embd // n_head, block_size) if rope else None
        self.register_buffer("mask", causal_mask(block_size), persistent=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).contiguous().view(B, T, nh * hs)  # (B, nh, T, hs) -> (B, T, C)

    def project_qkv(self, x: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, ...]:
        """(B, T, C) at positions start..start+T-1 -> q, k, v, each (B, nh, T, hs), RoPE on q and k if enabled."""
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # each (B, nh, T, hs)
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        return q, k, v

    def mask_for(self, Tq: int, Tk: int) -> torch.Tensor:
        """(Tq, Tk): the queries are the last Tq of Tk positions, so query i sees keys up to Tk - Tq + i."""
        return self.mask[Tk - Tq : Tk, :Tk]

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention pattern of every head: (B, T, C) -> (B, nh, T, T). For looking inside."""
        T = x.size(1)
        q, k, _ = self.project_qkv(x)
        return attention_weights(q, k, self.mask_for(T, T))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, nh, Tq, hs), k and v: (B, nh, Tk, hs) -> (B, nh, Tq, hs)."""
        weights = attention_weights(q, k, self.mask_for(q.size(2), k.size(2)))  # (B, nh, Tq, Tk)
        return self.attn_dropout(weights) @ v  # (B, nh, Tq, Tk) @ (B, nh, Tk, hs) -> (B, nh, Tq, hs)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        past = len(cache) if cache is not None else 0
        if past + T > self.block_size:  # Python ints: nothing waits on the device
            raise ValueError(
                f"{past + T} tokens do not fit the context window of {self.block_size} (block_size)"
            )
        q, k, v = self.project_qkv(x, past)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, nh, past + T, hs)
        y = self.attend(q, k, v)  # (B, nh, T, hs)
        return self.resid_dropout(self.c_proj(self.merge_heads(y)))  # (B, T, C)


class CausalSelfAttention(MultiHeadAttention):
    """The same layer with the core fused by `F.scaled_dot_product_attention` (flash on CUDA)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            # PyTorch's CPU kernel is several times slower in bf16 than in float32 (its backward most of all,
            # measured in BENCHMARKS.md), and attention is a small share of the FLOPs here: run it in float32.
            with torch.autocast("cpu", enabled=False):  # else autocast casts the inputs back to bf16
                return self._sdpa(q.float(), k.float(), v.float()).to(q.dtype)
        return self._sdpa(q, k, v)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        Tq, Tk = q.size(2), k.size(2)
        p = self.dropout if self.training else 0.0
        if Tq == Tk:  # the usual case: a whole sequence at once
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        if Tq == 1:  # one new token with a cache: it may see every key
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask_for(Tq, Tk), dropout_p=p)
