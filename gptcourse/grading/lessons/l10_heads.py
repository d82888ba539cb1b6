"""Lesson 10: scoring what an attention head does, from its weights (and the tokens, for induction)."""

from __future__ import annotations

import torch

from ...attention import causal_mask
from ...heads import first_token_score, induction_score, previous_token_score, repeated_random_tokens
from ..core import Context, register
from ..tools import Fail, call, diagnose, expect_close, expect_tensor


def _random_weights(ctx: Context, B: int, nh: int, T: int) -> torch.Tensor:
    scores = ctx.randn(B, nh, T, T, scale=2.0)
    scores[..., 1:, :] += 3.0 * torch.eye(T, T).roll(-1, dims=1)[1:]  # some heads lean on the previous token
    return scores.masked_fill(~causal_mask(T), float("-inf")).softmax(-1)  # (B, nh, T, T), rows sum to one


@register("heads.previous_token", lesson=10, title="previous-token score function")
def previous_token(fn, ctx: Context) -> str:
    B, nh, T = 2, ctx.choice([3, 4]), ctx.choice([6, 9])
    w = _random_weights(ctx, B, nh, T)
    out = expect_tensor(call(fn, w, names=("weights",)), (nh,), "previous_token_score(weights)",
                        hint="one score per head: average over the batch and the positions")
    perfect = torch.zeros(1, nh, T, T)
    perfect[..., 0, 0] = 1.0
    perfect[..., 1:, :] = torch.eye(T).roll(-1, dims=1)[1:]  # row t puts all its weight on t - 1
    top = expect_tensor(call(fn, perfect, names=("weights",)), (nh,), "the score of a perfect previous-token head")
    mistakes = {
        "that is the weight on the token itself (the main diagonal): use diagonal(offset=-1) for t - 1":
            lambda: w.diagonal(0, -2, -1).mean(dim=(0, 2)),
        "query 0 has no previous token: average over positions t >= 1 only (T - 1 of them)":
            lambda: w.diagonal(-1, -2, -1).sum(dim=(0, 2)) / (B * T),
        "the weight on t - 1 sits at row t, column t - 1: diagonal(offset=-1), not offset=+1 (the future)":
            lambda: w.diagonal(1, -2, -1).mean(dim=(0, 2)),
    }
    if not torch.allclose(top, torch.ones(nh), atol=1e-5):
        diagnose(out, mistakes, atol=1e-5)
        raise Fail(f"a head that always looks at the previous token should score 1, got {top.tolist()}")
    expect_close(out, previous_token_score(w), atol=1e-5, what="the scores", mistakes=mistakes)
    return "1 for a perfect previous-token head; equal to gptcourse.heads.previous_token_score"


@register("heads.first_token", lesson=10, title="first-token score function")
def first_token(fn, ctx: Context) -> str:
    B, nh, T = 2, ctx.choice([3, 4]), ctx.choice([6, 9])
    w = _random_weights(ctx, B, nh, T)
    out = expect_tensor(call(fn, w, names=("weights",)), (nh,), "first_token_score(weights)",
                        hint="one score per head")
    sink = torch.zeros(1, nh, T, T)
    sink[..., 0] = 1.0
    top = expect_tensor(call(fn, sink, names=("weights",)), (nh,), "the score of a head parked on token 0")
    mistakes = {
        "skip query 0 (it can only look at itself): average weights[..., 1:, 0]":
            lambda: w[..., :, 0].mean(dim=(0, 2)),
        "the weight on position 0 is column 0 (weights[..., t, 0]), not row 0": lambda: w[..., 0, :].mean(dim=(0, 2)),
    }
    if not torch.allclose(top, torch.ones(nh), atol=1e-5):
        diagnose(out, mistakes, atol=1e-5)
        raise Fail(f"a head that puts all its weight on position 0 should score 1, got {top.tolist()}")
    expect_close(out, first_token_score(w), atol=1e-5, what="the scores", mistakes=mistakes)
    return "1 for a head parked on token 0; equal to gptcourse.heads.first_token_score"


def _induction_variants(w: torch.Tensor, idx: torch.Tensor) -> dict[str, object]:
    """The usual mistakes, each as the score it would give: which key is the target, which copies count,
    which queries are averaged."""
    same = idx[:, :, None] == idx[:, None, :]  # (B, T, T)

    def score(diagonal: int = -2, shift: int = 1, all_queries: bool = False, per_sequence: bool = False
              ) -> torch.Tensor:
        copies = same & torch.ones_like(same).tril(diagonal=diagonal)  # (B, T, T): earlier copies s of token t
        targets = torch.zeros_like(copies)
        if shift >= 0:
            targets[:, :, shift:] = copies[:, :, : copies.size(-1) - shift]  # key s + shift
        else:
            targets[:, :, :shift] = copies[:, :, -shift:]  # key s - 1
        mass = (w * targets[:, None]).sum(dim=-1)  # (B, nh, T)
        if all_queries:
            return mass.mean(dim=(0, 2))
        counted = targets.any(dim=-1)[:, None].expand_as(mass)
        if per_sequence:
            return ((mass * counted).sum(dim=-1) / counted.sum(dim=-1).clamp(min=1)).mean(dim=0)
        return (mass * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2))

    return {
        "that is the weight on the earlier copy itself: an induction head looks at the token after it, key s + 1":
            lambda: score(shift=0),
        "that is the weight on the earlier copies (the same-token score): the targets are the keys s + 1 just "
        "after them": lambda: score(diagonal=-1, shift=0),
        "the target is the token after the earlier copy (key s + 1), not the one before it (s - 1)":
            lambda: score(shift=-1),
        "leave out s = t - 1: the token after it is the query itself; earlier copies are s <= t - 2 "
        "(tril(diagonal=-2))": lambda: score(diagonal=-1),
        "average only over the queries that have a target, not over all T queries":
            lambda: score(all_queries=True),
        "average over the counted queries of all sequences together (total weight / number of counted "
        "queries), not sequence by sequence": lambda: score(per_sequence=True),
    }


@register("heads.induction", lesson=10, title="induction score function")
def induction(fn, ctx: Context) -> str:
    B, nh, T = 3, ctx.choice([2, 3]), ctx.choice([10, 13])
    w = _random_weights(ctx, B, nh, T)
    idx = ctx.randint(0, ctx.choice([3, 4]), (B, T))  # a small vocabulary: many repeats, some back to back
    idx[-1] = torch.randperm(50, generator=ctx.gen)[:T] + 10  # the last sequence repeats one token, once:
    idx[-1, -1] = idx[-1, 0]  # one counted query, far fewer than the others have
    out = expect_tensor(call(fn, w, idx, names=("weights", "idx")), (nh,), "induction_score(weights, idx)",
                        hint="one score per head: average over the counted queries of every sequence")
    half = T // 2
    repeats = repeated_random_tokens(B, half, 50, ctx.gen)  # (B, 2 * half): half distinct tokens, twice
    perfect = torch.zeros(B, nh, 2 * half, 2 * half)
    perfect[..., :half, 0] = 1.0  # the first half has nothing to copy: park on token 0
    perfect[..., torch.arange(half, 2 * half), torch.arange(1, half + 1)] = 1.0  # the token after the first copy
    top = expect_tensor(call(fn, perfect, repeats, names=("weights", "idx")), (nh,),
                        "the score of a perfect induction head")
    mistakes = _induction_variants(w, idx)
    if not torch.allclose(top, torch.ones(nh), atol=1e-5):
        diagnose(out, mistakes, atol=1e-5)
        raise Fail("a head that always looks at the token after the earlier copy should score 1 on a repeated "
                   f"sequence, got {[round(v, 3) for v in top.tolist()]}")
    expect_close(out, induction_score(w, idx), atol=1e-5, what="the scores", mistakes=mistakes)
    return "1 for a perfect induction head; equal to gptcourse.heads.induction_score"
