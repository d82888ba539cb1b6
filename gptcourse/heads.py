"""Looking inside attention: every head's weights, scores for what a head does, and switching a head off.

A score means little alone: compare it with what `even_attention` (a head that spreads its weight evenly over
the past) scores on the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["attention_maps", "previous_token_score", "same_token_score", "first_token_score", "induction_score",
           "even_attention", "repeated_random_tokens", "head_switched_off"]


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


def induction_score(weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """How much each head looks at the token that followed an earlier copy of the current token:
    weights (B, nh, T, T), idx (B, T) -> (nh,).

    In "... A B ... A" an induction head at the second A looks at B, which lets the model continue a repeat
    (Olsson et al. 2022). For query t the targets are the keys s + 1 for every s <= t - 2 with idx[s] == idx[t]
    (s = t - 1 is left out: the token after it is t itself). The score is the weight on the targets, averaged
    over the queries that have at least one. 1.0 is a perfect induction head; a head that attends evenly
    scores m / (t + 1) at a query t with m targets.
    """
    same = idx[:, :, None] == idx[:, None, :]  # (B, T, T): token t equals token s
    copies = same & torch.ones_like(same).tril(diagonal=-2)  # s <= t - 2 is an earlier copy of token t
    targets = torch.zeros_like(copies)
    targets[:, :, 1:] = copies[:, :, :-1]  # (B, T, T): key s + 1 follows an earlier copy of token t
    mass = (weights * targets[:, None]).sum(dim=-1)  # (B, nh, T): each query's weight on its targets
    counted = targets.any(dim=-1)[:, None].expand_as(mass)  # (B, nh, T): queries with at least one target
    if not counted.any():
        raise ValueError("no token repeats with a token after its earlier copy, so induction cannot be scored")
    return (mass * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2))


def even_attention(B: int, T: int) -> torch.Tensor:
    """(B, 1, T, T): one head that spreads each query's weight evenly over itself and the past (a baseline)."""
    even = torch.ones(T, T).tril()  # (T, T)
    return (even / even.sum(-1, keepdim=True)).expand(B, 1, T, T)


def repeated_random_tokens(n_seq: int, half: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """(n_seq, 2 * half) token ids: `half` distinct random tokens, then the same tokens again (an induction test)."""
    first = torch.stack([torch.randperm(vocab_size, generator=generator)[:half] for _ in range(n_seq)])  # (n_seq, half)
    return torch.cat([first, first], dim=1)  # (n_seq, 2 * half)


@contextmanager
def head_switched_off(model: nn.Module, layer: int, head: int) -> Iterator[None]:
    """Inside the `with`, one head of `model` writes nothing: its slice of the attention output is zeroed
    before the output projection `c_proj` mixes the heads. Measures what a head is for (an ablation)."""
    hs = model.config.n_embd // model.config.n_head

    def zero_head(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        y = args[0].clone()  # (B, T, C): the heads side by side, nh slices of hs channels
        y[..., head * hs : (head + 1) * hs] = 0.0
        return (y, *args[1:])

    handle = model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(zero_head)
    try:
        yield
    finally:
        handle.remove()
