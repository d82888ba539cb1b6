"""Lesson 03: the causal mask, attention weights, and one causal head."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...attention import attention_weights, causal_mask
from ..core import Context, register
from ..tools import Fail, call, call_explained, diagnose, expect_causal, expect_close, expect_tensor

MISSING_SCALE = "scores are not scaled: divide q @ k^T by sqrt(head size) before the softmax"
WRONG_SCALE = "scale by 1/sqrt(head size), not 1/head size"
WRONG_AXIS = "softmax over the wrong axis: each row (one query) must sum to one, so use dim=-1"
NAN_HINT = ("a row of the weights is all masked (softmax of only -inf gives NaN): mask off by one? "
            "A token may look at itself, so the diagonal stays unmasked")
OFF_BY_ONE = "mask off by one: a token may look at itself (the diagonal) and everything before it"
INVERTED = ("the mask is used the wrong way round: masked_fill(mask, ...) fills where the mask is True, and True "
            "means 'may look'; fill where it is False: scores.masked_fill(~mask, float('-inf'))")
K_DOT_T = ("k.T reverses all three dimensions of the (B, T, hs) keys: use k.transpose(-2, -1) to swap only the "
           "last two")
K_T_CALL = "k.t() only transposes a 2-D matrix: use k.transpose(-2, -1) on the (B, T, hs) keys"


def _transposes(q: Callable[[], torch.Tensor], k: Callable[[], torch.Tensor]) -> list[tuple[str, Callable[[], Any]]]:
    return [(K_DOT_T, lambda: q() @ k().T), (K_T_CALL, lambda: q() @ k().t())]


def _nan_hint(out: Any, inverted: Callable[[], torch.Tensor]) -> str:
    """NaN from a mask used the wrong way round (the last query may then look at nothing) gets its own hint."""
    if isinstance(out, torch.Tensor) and out.is_floating_point() and torch.isnan(out).any():
        ref = inverted()
        if out.shape == ref.shape and torch.allclose(out.double(), ref.double(), 1e-4, 1e-4, equal_nan=True):
            return INVERTED
    return NAN_HINT


def _masked_softmax(scores: torch.Tensor, fill_where: torch.Tensor, fill: float = float("-inf")) -> torch.Tensor:
    return scores.masked_fill(fill_where, fill).softmax(-1)


@register("attention.causal_mask", lesson=3, title="causal mask function")
def mask(fn, ctx: Context) -> str:
    for T in (1, 4, ctx.choice([7, 12])):
        out = expect_tensor(call(fn, T), (T, T), f"causal_mask({T})")
        if out.dtype != torch.bool:
            raise Fail(f"the mask should hold booleans (True = may look), got {out.dtype}")
        ref = causal_mask(T)
        if torch.equal(out, ref):
            continue
        if torch.equal(out, ref.tril(-1)):
            raise Fail(OFF_BY_ONE)
        if torch.equal(out, ref.T) or torch.equal(out, ~ref.tril(-1)):
            raise Fail("the mask is upside down: query i (row) may see keys j <= i, the lower triangle (tril)")
        if torch.equal(out, ~ref):
            raise Fail("True should mean 'may look' (j <= i); you marked the future instead")
        raise Fail("row i should be True for columns 0..i and False after them")
    return "lower triangle with the diagonal, booleans, for T = 1, 4 and more"


@register("attention.weights", lesson=3, title="attention weights function")
def weights(fn, ctx: Context) -> str:
    B, T, hs = 2, ctx.choice([5, 8]), ctx.choice([16, 32])
    q, k = ctx.randn(B, T, hs, scale=2.0), ctx.randn(B, T, hs, scale=2.0)
    raw = call_explained(fn, q, k, names=("q", "k"), errors=_transposes(lambda: q, lambda: k))

    def scaled() -> torch.Tensor:
        return q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)

    out = expect_tensor(raw, (B, T, T), "attention_weights(q, k)",
                        nan_hint=_nan_hint(raw, lambda: _masked_softmax(scaled(), causal_mask(T))),
                        hint="q @ k.transpose(-2, -1) is (B, T, hs) @ (B, hs, T) -> (B, T, T)")
    if (out < -1e-6).any():
        raise Fail("some weights are negative: apply the softmax to the scores")
    if not torch.allclose(out.sum(-1), torch.ones(B, T), atol=1e-4):
        if torch.allclose(out.sum(-2), torch.ones(B, T), atol=1e-4):
            raise Fail(WRONG_AXIS)
        raise Fail("rows do not sum to one: apply softmax(dim=-1) after masking")
    diagnose(out, {INVERTED: lambda: _masked_softmax(scaled(), causal_mask(T), -1e9)}, atol=1e-5)
    if out.triu(1).abs().max() > 1e-6:
        raise Fail("query i puts weight on later keys j > i: fill the masked scores with -inf before the softmax")
    scores = q @ k.transpose(-2, -1)
    m = causal_mask(T)
    expect_close(out, attention_weights(q, k, m), atol=1e-5, what="the weights", mistakes={
        MISSING_SCALE: lambda: scores.masked_fill(~m, float("-inf")).softmax(-1),
        WRONG_SCALE: lambda: (scores / hs).masked_fill(~m, float("-inf")).softmax(-1),
        "scale by 1/sqrt(head size) (the last dimension of q), not 1/sqrt(T)":
            lambda: (scores / math.sqrt(T)).masked_fill(~m, float("-inf")).softmax(-1),
        OFF_BY_ONE: lambda: (scores / math.sqrt(hs)).masked_fill(~m.tril(-1), -1e9).softmax(-1),
    })
    return "rows sum to one, nothing on the future, values equal softmax(q k^T / sqrt(hs)) with the mask"


@register("attention.causal", lesson=3, title="causal single-head attention function")
def causal(fn, ctx: Context) -> str:
    B, T, C, hs = 2, ctx.choice([6, 9]), ctx.choice([8, 12]), ctx.choice([4, 8])
    x = ctx.randn(B, T, C)
    Wq, Wk, Wv = ctx.randn(C, hs), ctx.randn(C, hs), ctx.randn(C, hs)
    names = ("x", "Wq", "Wk", "Wv")
    transposes = _transposes(lambda: x @ Wq, lambda: x @ Wk)

    def inverted(inputs: torch.Tensor, fill: float = float("-inf")) -> torch.Tensor:
        q, k = inputs @ Wq, inputs @ Wk
        return _masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), causal_mask(T), fill) @ (inputs @ Wv)

    raw = call_explained(fn, x, Wq, Wk, Wv, names=names, errors=transposes)
    out = expect_tensor(raw, (B, T, hs), "causal_attention(x, Wq, Wk, Wv)",
                        nan_hint=_nan_hint(raw, lambda: inverted(x)),
                        hint="weights (B, T, T) @ values (B, T, hs) -> (B, T, hs)")
    t = T // 2
    x2 = x.clone()
    x2[:, t + 1 :] = ctx.randn(B, T - t - 1, C)  # change only the future of position t
    raw2 = call_explained(fn, x2, Wq, Wk, Wv, names=names, errors=transposes)
    out2 = expect_tensor(raw2, (B, T, hs), nan_hint=_nan_hint(raw2, lambda: inverted(x2)))
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    scores = q @ k.transpose(-2, -1)
    m = causal_mask(T)
    ref = attention_weights(q, k, m) @ v
    mistakes = {
        MISSING_SCALE: lambda: scores.masked_fill(~m, float("-inf")).softmax(-1) @ v,
        WRONG_SCALE: lambda: (scores / hs).masked_fill(~m, float("-inf")).softmax(-1) @ v,
        "scale by 1/sqrt(head size), not 1/sqrt(n_embd)":
            lambda: (scores / math.sqrt(C)).masked_fill(~m, float("-inf")).softmax(-1) @ v,
        WRONG_AXIS: lambda: (scores / math.sqrt(hs)).masked_fill(~m, float("-inf")).softmax(-2).nan_to_num() @ v,
        OFF_BY_ONE: lambda: (scores / math.sqrt(hs)).masked_fill(~m.tril(-1), -1e9).softmax(-1) @ v,
        "the weights should multiply the values x @ Wv, not x itself": lambda: attention_weights(q, k, m) @ x,
        INVERTED: lambda: inverted(x, -1e9),
    }
    expect_causal(out, out2, t, "the causal mask is missing or the wrong way round", mistakes)
    expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the outputs", mistakes=mistakes)
    return "future tokens do not change the past; values match the reference head"
