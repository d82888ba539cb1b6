"""Lesson 04: splitting into heads, merging them back, and multi-head attention with GPT-2's layers."""

from __future__ import annotations

import math

import torch

from ...attention import MultiHeadAttention, attention_weights, causal_mask
from ..core import Context, register
from ..tools import call, expect_causal, expect_close, expect_tensor, randomise

NO_TRANSPOSE_SPLIT = ("view as (B, T, nh, hs) first, then transpose(1, 2); viewing straight as (B, nh, T, hs) "
                      "mixes tokens into heads")
NO_TRANSPOSE_MERGE = ("transpose(1, 2) back to (B, T, nh, hs) before the view/reshape to (B, T, C); "
                      "reshaping (B, nh, T, hs) directly mixes heads into tokens")


@register("multihead.split", lesson=4, title="split_heads function")
def split(fn, ctx: Context) -> str:
    B, T, nh, hs = 2, ctx.choice([3, 5]), ctx.choice([2, 4]), ctx.choice([3, 4])
    C = nh * hs
    x = ctx.randn(B, T, C)
    out = expect_tensor(call(fn, x, nh, names=("x",)), (B, nh, T, hs), f"split_heads(x, {nh})",
                        hint="heads come before time: (B, T, C) -> (B, nh, T, hs)")
    ref = x.view(B, T, nh, hs).transpose(1, 2)
    expect_close(out, ref, atol=0.0, what="the heads", mistakes={
        NO_TRANSPOSE_SPLIT: lambda: x.view(B, nh, T, hs),
        "head h should take channels h*hs .. (h+1)*hs - 1 (contiguous blocks), not every nh-th channel":
            lambda: x.view(B, T, hs, nh).permute(0, 3, 1, 2),
    })
    return "head h of token t holds channels h*hs .. (h+1)*hs - 1"


@register("multihead.merge", lesson=4, title="merge_heads function")
def merge(fn, ctx: Context) -> str:
    B, T, nh, hs = 2, ctx.choice([3, 5]), ctx.choice([2, 4]), ctx.choice([3, 4])
    y = ctx.randn(B, nh, T, hs)
    out = expect_tensor(call(fn, y, names=("y",)), (B, T, nh * hs), "merge_heads(y)",
                        hint="(B, nh, T, hs) -> (B, T, nh * hs)")
    ref = y.transpose(1, 2).reshape(B, T, nh * hs)
    expect_close(out, ref, atol=0.0, what="the merged channels", mistakes={
        NO_TRANSPOSE_MERGE: lambda: y.reshape(B, T, nh * hs),
        "channels should be grouped by head (head 0's hs channels, then head 1's, ...)":
            lambda: y.permute(0, 2, 3, 1).reshape(B, T, nh * hs),
    })
    return "merge_heads undoes split_heads: (B, nh, T, hs) -> (B, T, C)"


@register("multihead.attention", lesson=4, title="multi-head attention function")
def multi_head(fn, ctx: Context) -> str:
    B, T, nh, hs = 2, ctx.choice([5, 8]), ctx.choice([2, 4]), ctx.choice([4, 8])
    C = nh * hs
    ref_layer = randomise(MultiHeadAttention(C, nh, block_size=16, bias=True), ctx, scale=0.5)
    c_attn, c_proj = ref_layer.c_attn, ref_layer.c_proj  # `call` hands the learner copies of these
    x = ctx.randn(B, T, C)
    names = ("x", "c_attn", "c_proj")
    out = expect_tensor(call(fn, x, c_attn, c_proj, nh, names=names), (B, T, C), "multi_head_attention(...)",
                        hint="the heads are merged back to C channels and projected by c_proj")
    t = T // 2
    x2 = x.clone()
    x2[:, t + 1 :] += 1.0
    out2 = expect_tensor(call(fn, x2, c_attn, c_proj, nh, names=names), (B, T, C))
    expect_causal(out, out2, t, "apply the causal mask in every head")
    with torch.no_grad():
        ref = ref_layer(x)
        q, k, v = c_attn(x).split(C, dim=2)
        split = lambda z: z.view(B, T, nh, hs).transpose(1, 2)  # noqa: E731  (B, T, C) -> (B, nh, T, hs)
        q, k, v = split(q), split(k), split(v)
        m = causal_mask(T)
        merged = lambda y: y.transpose(1, 2).reshape(B, T, C)  # noqa: E731  (B, nh, T, hs) -> (B, T, C)
        scores = q @ k.transpose(-2, -1)
        expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the outputs", mistakes={
            "scale each head's scores by 1/sqrt(head size), not 1/sqrt(n_embd)":
                lambda: c_proj(merged((scores / math.sqrt(C)).masked_fill(~m, float("-inf")).softmax(-1) @ v)),
            "scores are not scaled: divide by sqrt(head size)":
                lambda: c_proj(merged(scores.masked_fill(~m, float("-inf")).softmax(-1) @ v)),
            "the output projection c_proj is missing after merging the heads":
                lambda: merged(attention_weights(q, k, m) @ v),
            NO_TRANSPOSE_MERGE: lambda: c_proj((attention_weights(q, k, m) @ v).reshape(B, T, C)),
            "q, k and v come out of c_attn in that order: q, k, v = c_attn(x).split(C, dim=2)":
                lambda: c_proj(merged(attention_weights(k, q, m) @ v)),
        })
    return "causal in every head; equal to gptcourse.attention.MultiHeadAttention with the same weights"


