"""Lesson 06: LayerNorm from scratch, and a pre-norm block with its two residual connections."""

from __future__ import annotations

import torch

from ...block import Block
from ...config import GPTConfig
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_tensor

EPS_OUTSIDE = "epsilon is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps"


@register("norm.layernorm", lesson=6, title="layer_norm function")
def layer_norm(fn, ctx: Context) -> str:
    B, T, C = 2, 5, ctx.choice([8, 16, 32])
    ones, zeros = torch.ones(C), torch.zeros(C)
    names = ("x", "weight", "bias")
    wide = ctx.randn(B, T, C, scale=2.0) + 3.0
    out = expect_tensor(call(fn, wide, ones, zeros, 1e-5, names=names), (B, T, C), "layer_norm(x, weight, bias, eps)",
                        hint="LayerNorm keeps the shape")
    mean, var = out.mean(-1), out.var(-1, unbiased=False)
    if not torch.allclose(mean, torch.zeros_like(mean), atol=1e-3):
        if torch.allclose(out.mean(0), torch.zeros(T, C), atol=1e-3) or torch.allclose(
                out.mean(1), torch.zeros(B, C), atol=1e-3):
            raise Fail("normalise over the last dimension (each token's C channels): mean(dim=-1, keepdim=True)")
        raise Fail("with weight 1 and bias 0 each token's output should have mean 0: subtract the mean")
    if not torch.allclose(var, torch.ones_like(var), atol=1e-2):
        if torch.allclose(var, torch.full_like(var, (C - 1) / C), atol=1e-2):
            raise Fail("use the population variance (unbiased=False, divide by C), not the sample variance")
        raise Fail("with weight 1 and bias 0 each token's output should have variance 1: divide by the std")
    # a small spread next to a larger eps, so that where eps sits makes a visible difference
    eps = ctx.choice([1e-4, 1e-3])
    x = ctx.randn(B, T, C, scale=0.03) + ctx.randn(B, T, 1)
    out = expect_tensor(call(fn, x, ones, zeros, eps, names=names), (B, T, C))
    mu, v = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    ref = torch.nn.functional.layer_norm(x, (C,), eps=eps)
    mistakes = {
        EPS_OUTSIDE: lambda: (x - mu) / (v.sqrt() + eps),
        "use the population variance (unbiased=False, divide by C), not the sample variance":
            lambda: (x - mu) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + eps),
        "epsilon is missing: sqrt(var + eps) keeps the division finite": lambda: (x - mu) / v.sqrt(),
        "divide by the standard deviation sqrt(var + eps), not the variance": lambda: (x - mu) / (v + eps),
    }
    expect_close(out, ref, atol=1e-4, rtol=1e-4, what=f"the normalised values (eps={eps:g})", mistakes=mistakes)
    w, b = ctx.randn(C), ctx.randn(C)
    out = expect_tensor(call(fn, x, w, b, eps, names=names), (B, T, C))
    expect_close(out, torch.nn.functional.layer_norm(x, (C,), w, b, eps), atol=1e-4, rtol=1e-4,
                 what="the values with a weight and bias", mistakes={
                     "apply the weight and bias after normalising: x_hat * weight + bias": lambda: ref,
                     "it is x_hat * weight + bias (you added the bias first)": lambda: (ref + b) * w,
                 })
    return "mean 0, variance 1 per token; equal to torch.nn.functional.layer_norm with eps inside the sqrt"


@register("norm.pre_norm_block", lesson=6, title="pre-norm block function")
def pre_norm_block(fn, ctx: Context) -> str:
    C, nh = ctx.choice([16, 32]), 4
    block = Block(GPTConfig(vocab_size=10, block_size=16, n_layer=1, n_head=nh, n_embd=C, bias=True))
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=ctx.gen) * 0.3)
    block.eval()
    B, T = 2, ctx.choice([5, 8])
    x = ctx.randn(B, T, C)
    names = ("x", "attn", "mlp", "ln_1", "ln_2")
    args = (x, block.attn, block.mlp, block.ln_1, block.ln_2)
    out = expect_tensor(call(fn, *args, names=names), (B, T, C), "pre_norm_block(x, attn, mlp, ln_1, ln_2)")
    with torch.no_grad():
        ref = block(x)
        a, m, ln1, ln2 = block.attn, block.mlp, block.ln_1, block.ln_2

        def post_norm() -> torch.Tensor:
            h = ln1(x + a(x))
            return ln2(h + m(h))

        def no_residual() -> torch.Tensor:
            h = a(ln1(x))
            return m(ln2(h))

        def ln_on_stream() -> torch.Tensor:
            h = ln1(x)
            h = h + a(h)
            h = ln2(h)
            return h + m(h)

        def one_norm() -> torch.Tensor:
            h = x + a(ln1(x))
            return h + m(ln1(h))

        def parallel() -> torch.Tensor:
            return x + a(ln1(x)) + m(ln2(x))

        expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the outputs", mistakes={
            "that is a post-norm block: normalise the input of each sub-layer, x + attn(ln_1(x)), "
            "and leave the residual stream itself unnormalised": post_norm,
            "the residual connections are missing: x = x + attn(ln_1(x)); then x = x + mlp(ln_2(x))": no_residual,
            "add the sub-layer's output to the un-normalised x: x + attn(ln_1(x)), not ln_1(x) + attn(ln_1(x))":
                ln_on_stream,
            "each sub-layer has its own LayerNorm: ln_1 before attention, ln_2 before the MLP": one_norm,
            "the MLP reads the stream after attention has been added: x = x + attn(ln_1(x)) first": parallel,
        })
    return "x + attn(ln_1(x)), then + mlp(ln_2(x)): equal to gptcourse.block.Block (pre-norm)"
