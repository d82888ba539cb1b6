"""Lesson 10: scoring what an attention head does, from its weights."""

from __future__ import annotations

import torch

from ...heads import first_token_score, previous_token_score
from ..core import Context, register
from ..tools import Fail, call, diagnose, expect_close, expect_tensor


def _random_weights(ctx: Context, B: int, nh: int, T: int) -> torch.Tensor:
    scores = ctx.randn(B, nh, T, T, scale=2.0)
    scores[..., 1:, :] += 3.0 * torch.eye(T, T).roll(-1, dims=1)[1:]  # some heads lean on the previous token
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, nh, T, T), rows sum to one


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
