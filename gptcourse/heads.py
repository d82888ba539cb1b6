"""Looking inside attention: every head's weights, and scores for what a head does."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["attention_maps", "previous_token_score", "same_token_score", "first_token_score"]


@torch.no_grad()
def attention_maps(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """The attention weights of every layer and head for idx (B, T): (n_layer, B, nh, T, T).

    Hooks record each attention layer's input during one forward pass; the weights are then recomputed
    from it with the layer's own `weights` method (the fused kernel never materialises them).
    """
    blocks = model.transformer.h
    inputs: list[torch.Tensor] = [None] * len(blocks)  # type: ignore[list-item]
    hooks = [
        block.attn.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0]))
        for i, block in enumerate(blocks)
    ]
    was_training = model.training
    model.eval()
    try:
        model(idx)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return torch.stack([block.attn.weights(x) for block, x in zip(blocks, inputs)])


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """How much each head looks at the token just before: weights (..., nh, T, T) -> (nh,).

    The mean, over batches and positions t >= 1, of the weight that query t puts on key t - 1.
    1.0 is a perfect previous-token head; a head that attends evenly to the past scores about 2/T.
    """
    T = weights.size(-1)
    if T < 2:
        raise ValueError("need at least 2 tokens to score previous-token attention")
    diag = weights.diagonal(offset=-1, dim1=-2, dim2=-1)  # (..., nh, T-1): weight of t on t-1
    return diag.reshape(-1, weights.size(-3), T - 1).mean(dim=(0, 2))


def same_token_score(weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """How much each head looks at earlier copies of the current token: weights (B, nh, T, T), idx (B, T) -> (nh,).

    For each query whose token appeared before, the weight it puts on those earlier copies (not itself),
    averaged over such queries.
    """
    same = idx[:, :, None] == idx[:, None, :]  # (B, T, T): token t equals token s
    earlier = torch.ones_like(same).tril(diagonal=-1)  # strictly earlier keys
    copies = (same & earlier)[:, None]  # (B, 1, T, T)
    has_copy = copies.any(dim=-1)  # (B, 1, T)
    mass = (weights * copies).sum(dim=-1)  # (B, nh, T)
    counted = has_copy.expand_as(mass)
    if not counted.any():
        raise ValueError("no token repeats in idx, so same-token attention cannot be scored")
    return (mass * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2))


def first_token_score(weights: torch.Tensor) -> torch.Tensor:
    """How much each head parks its attention on position 0 (a common 'no-op' pattern): (..., nh, T, T) -> (nh,)."""
    first = weights[..., 1:, 0]  # (..., nh, T-1), skipping query 0 which can only see itself
    return first.reshape(-1, weights.size(-3), weights.size(-1) - 1).mean(dim=(0, 2))
