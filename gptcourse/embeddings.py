"""Token embeddings: a learned lookup table from token id to vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TokenEmbedding"]


class TokenEmbedding(nn.Embedding):
    """A (vocab_size, n_embd) table; row i is token i's vector. Input (B, T) ids -> (B, T, C)."""

    def __init__(self, vocab_size: int, n_embd: int):
        super().__init__(vocab_size, n_embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise ValueError(
                f"token ids must lie in [0, {self.num_embeddings}); got ids from "
                f"{int(idx.min())} to {int(idx.max())}: was the text encoded with another tokenizer?"
            )
        return super().forward(idx)

    def via_one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        """The same lookup written as a matrix product: one_hot(idx) @ W. Slower; for the lesson."""
        one_hot = F.one_hot(idx, self.num_embeddings).to(self.weight.dtype)  # (B, T, V)
        return one_hot @ self.weight  # (B, T, V) @ (V, C) -> (B, T, C)
