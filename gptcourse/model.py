"""The GPT: token and position embeddings, a stack of blocks, a final LayerNorm, the output head."""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import KVCache
from .block import Block
from .config import GPTConfig
from .embeddings import TokenEmbedding
from .linear import FastLinear
from .positions import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

__all__ = ["GPT"]


class GPT(nn.Module):
    """A decoder-only transformer. `model(idx)` maps (B, T) token ids to (B, T, vocab_size) logits.

    The logits at position t score every possible next token given tokens 0..t, so one forward pass
    makes T predictions at once: that is what training uses.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        modules: dict[str, nn.Module] = {"wte": TokenEmbedding(config.vocab_size, config.n_embd)}
        if config.pos_encoding == "learned":
            modules["wpe"] = LearnedPositionalEmbedding(config.block_size, config.n_embd)
        elif config.pos_encoding == "sinusoidal":
            modules["wpe"] = SinusoidalPositionalEncoding(config.block_size, config.n_embd)
        # "rope": positions enter inside attention, nothing is added here
        modules["drop"] = nn.Dropout(config.dropout)
        modules["h"] = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        if config.norm_placement == "pre":  # post-norm blocks already end in a LayerNorm
            modules["ln_f"] = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = FastLinear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # one (V, C) matrix reads and writes tokens
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * n_layer), so the
        # stream's variance does not grow with depth (each block adds two such writes).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def new_cache(self) -> list[KVCache]:
        """An empty key/value cache, one per block, for `forward(..., cache=...)` during generation."""
        return [KVCache(self.config.block_size) for _ in self.transformer.h]

    def forward(self, idx: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """idx: (B, T) token ids -> logits (B, T, vocab_size). With a cache, idx holds only new tokens."""
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        past = len(cache[0]) if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(
                f"input of {past + T} tokens is longer than the context window of "
                f"{self.config.block_size} tokens (block_size); crop it to the last {self.config.block_size}"
            )
        x = self.transformer.wte(idx)  # (B, T) -> (B, T, C); ids checked on the CPU only (no device sync)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe.window(past, T)  # (B, T, C) + (T, C): positions past..past+T-1
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache[i] if cache is not None else None)  # (B, T, C)
        if "ln_f" in self.transformer:
            x = self.transformer.ln_f(x)
        return self.lm_head(x)  # (B, T, C) @ (C, V) -> (B, T, V)

    def num_parameters(self) -> int:
        """Every trainable number, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters())
