"""Lesson 05: GELU, and the feed-forward network that works on each token alone."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...mlp import gelu as ref_gelu
from ..core import Context, register
from ..tools import Fail, call, close, expect_close, expect_tensor, randomise


@register("ffn.gelu", lesson=5, title="GELU function")
def gelu(fn, ctx: Context) -> str:
    x = torch.cat((ctx.randn(200, scale=3.0), torch.tensor([0.0, -10.0, 10.0, -1.0, 1.0])))
    out = expect_tensor(call(fn, x, names=("x",)), tuple(x.shape), "gelu(x)", hint="GELU works element by element")
    if abs(out[-5].item()) > 1e-6:
        raise Fail(f"gelu(0) should be 0, got {out[-5].item():.4g}")
    if abs(out[-3].item() - 10.0) > 1e-3 or abs(out[-4].item()) > 1e-3:
        raise Fail("gelu(x) should approach x for large x and 0 for very negative x: GELU(x) = x * Phi(x)")
    if (out[x < 0] < 0).sum() == 0:
        raise Fail("GELU dips below zero for negative inputs (it is not ReLU): x * Phi(x)")
    tanh_ref, exact = ref_gelu(x, "tanh"), ref_gelu(x, "none")
    if torch.allclose(out, exact, atol=1e-5) and not torch.allclose(out, tanh_ref, atol=1e-5):
        return "exact GELU x * Phi(x) (erf); GPT-2 uses the tanh approximation, also accepted"
    expect_close(out, tanh_ref, atol=1e-5, what="gelu(x)", mistakes={
        "that is ReLU: GELU is x * Phi(x), smooth and slightly negative below 0": lambda: torch.relu(x),
        "the cubic term is missing: tanh(sqrt(2/pi) * (x + 0.044715 * x**3))":
            lambda: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)),
        "multiply by x: GELU(x) = 0.5 * x * (1 + tanh(...))":
            lambda: 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "the factor 0.5 is missing: 0.5 * x * (1 + tanh(...))":
            lambda: x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "x * sigmoid(1.702 x) is a coarser approximation; write the tanh form":
            lambda: x * torch.sigmoid(1.702 * x),
    }, hint="0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))")
    return "matches GPT-2's tanh GELU within 1e-5; gelu(0) = 0; negative dip below 0"


@register("ffn.mlp", lesson=5, title="feed-forward function")
def feed_forward(fn, ctx: Context) -> str:
    B, T, C = 2, ctx.choice([4, 7]), ctx.choice([8, 16])
    c_fc, c_proj = randomise(nn.Linear(C, 4 * C), ctx, scale=0.5), randomise(nn.Linear(4 * C, C), ctx, scale=0.5)
    x = ctx.randn(B, T, C)
    names = ("x", "c_fc", "c_proj")
    out = expect_tensor(call(fn, x, c_fc, c_proj, names=names), (B, T, C), "feed_forward(x, c_fc, c_proj)",
                        hint="(B, T, C) -> c_fc -> (B, T, 4C) -> GELU -> c_proj -> (B, T, C)")
    x2 = x.clone()
    x2[:, 0] = ctx.randn(B, C)
    out2 = expect_tensor(call(fn, x2, c_fc, c_proj, names=names), (B, T, C))
    if not torch.allclose(out[:, 1:], out2[:, 1:], atol=1e-5):
        raise Fail("changing token 0 changed other tokens' outputs: the feed-forward network works on each token alone")
    with torch.no_grad():
        h = c_fc(x)
        ref = c_proj(ref_gelu(h))
        if close(out, c_proj(ref_gelu(h, "none")), atol=1e-4, rtol=1e-4):
            return "per token; equal to c_proj(gelu(c_fc(x))) with the exact GELU"
        expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the outputs", mistakes={
            "there is no nonlinearity between c_fc and c_proj: apply GELU to the 4C-wide hidden layer":
                lambda: c_proj(h),
            "use GELU, not ReLU, between the two layers": lambda: c_proj(torch.relu(h)),
            "GELU goes between the layers (on the 4C hidden units), not after c_proj":
                lambda: ref_gelu(c_proj(h)),
            "c_proj is missing: project the 4C hidden units back to C": lambda: ref_gelu(h),
        })
    return "per token; equal to c_proj(gelu(c_fc(x))) with the tanh GELU"
