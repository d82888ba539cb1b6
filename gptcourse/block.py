"""The transformer block: attention (communication between tokens) then the MLP (computation per token)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import CausalSelfAttention, KVCache
from .config import GPTConfig
from .mlp import MLP

__all__ = ["Block"]


class Block(nn.Module):
    """One block. Pre-norm (GPT-2): x + f(LN(x)). Post-norm (2017): LN(x + f(x)). (B, T, C) -> (B, T, C).

    `residual=False` drops the skip connections, for the lesson that shows why they are there.
    """

    def __init__(self, config: GPTConfig, residual: bool = True):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.residual = residual
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(
            config.n_embd,
            config.n_head,
            config.block_size,
            dropout=config.dropout,
            bias=config.bias,
            rope=config.pos_encoding == "rope",
        )
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config.n_embd, bias=config.bias, dropout=config.dropout, activation=config.activation)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if self.pre_norm:
            x = self.skip(x, self.attn(self.ln_1(x), cache))  # the residual stream carries x through
            return self.skip(x, self.mlp(self.ln_2(x)))
        x = self.ln_1(self.skip(x, self.attn(x, cache)))
        return self.ln_2(self.skip(x, self.mlp(x)))

    def skip(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """The residual connection: x + update, or the update alone with residual=False."""
        return x + update if self.residual else update
