"""Token embeddings: a learned lookup table from token id to vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TokenEmbedding", "check_token_ids"]


def check_token_ids(idx: torch.Tensor, vocab_size: int) -> None:
    """Refuse ids outside [0, vocab_size) with a sentence that says what to do.

    It reads the ids only where that is cheap and safe: on the CPU, outside `torch.compile`. On a GPU the
    read would make the host wait for the device at every step; batches are checked where they are made.
    """
    if idx.device.type != "cpu" or torch.compiler.is_compiling() or not idx.numel():
        return
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"token ids must lie in [0, {vocab_size}); got ids from {low} to {high}: "
            "was the text encoded with another tokenizer?"
        )


class TokenEmbedding(nn.Embedding):
    """A (vocab_size, n_embd) table; row i is token i's vector. Input (B, T) ids -> (B, T, C)."""

    def __init__(self, vocab_size: int, n_embd: int):
        super().__init__(vocab_size, n_embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        check_token_ids(idx, self.num_embeddings)
        return super().forward(idx)

    def via_one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        """The same lookup written as a matrix product: one_hot(idx) @ W. Slower; for the lesson."""
        one_hot = F.one_hot(idx, self.num_embeddings).to(self.weight.dtype)  # (B, T, V)
        return one_hot @ self.weight  # (B, T, V) @ (V, C) -> (B, T, C)
