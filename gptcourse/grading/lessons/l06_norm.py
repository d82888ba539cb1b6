"""Lesson 06: LayerNorm from scratch; a pre-norm block as a function, then as a module GPT-2's weights load into."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...block import Block
from ...config import GPTConfig
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_tensor, fmt, randomise

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


SHARED_NORM = ("each sub-layer has its own LayerNorm: ln_1 (before attention) and ln_2 (before the MLP) are two "
               "separate modules with their own weights, not one module under two names")


def _block_mistakes(x: torch.Tensor, a: nn.Module, m: nn.Module, ln1: nn.Module,
                    ln2: nn.Module) -> dict[str, Callable[[], torch.Tensor]]:
    """The wrong blocks learners write, from the reference's own sub-layers, each with the hint that names it."""

    def post_norm() -> torch.Tensor:
        h = ln1(x + a(x))
        return ln2(h + m(h))

    def no_residual() -> torch.Tensor:
        return m(ln2(a(ln1(x))))

    def ln_on_stream() -> torch.Tensor:
        h = ln1(x)
        h = h + a(h)
        h = ln2(h)
        return h + m(h)

    def norm_after() -> torch.Tensor:
        h = x + ln1(a(x))
        return h + ln2(m(h))

    def one_norm() -> torch.Tensor:
        h = x + a(ln1(x))
        return h + m(ln1(h))

    def parallel() -> torch.Tensor:
        return x + a(ln1(x)) + m(ln2(x))

    return {
        "that is a post-norm block: normalise the input of each sub-layer, x + attn(ln_1(x)), "
        "and leave the residual stream itself unnormalised": post_norm,
        "the residual connections are missing: x = x + attn(ln_1(x)); then x = x + mlp(ln_2(x))": no_residual,
        "add the sub-layer's output to the un-normalised x: x + attn(ln_1(x)), not ln_1(x) + attn(ln_1(x))":
            ln_on_stream,
        "the LayerNorm goes before the sub-layer, on its input, not on its output: x + attn(ln_1(x)), "
        "not x + ln_1(attn(x))": norm_after,
        "each sub-layer has its own LayerNorm: ln_1 before attention, ln_2 before the MLP": one_norm,
        "the MLP reads the stream after attention has been added: x = x + attn(ln_1(x)) first": parallel,
    }


def _small_block(ctx: Context, n_head: int) -> Block:
    """A course Block with GPT-2's choices (biases, tanh GELU) and every weight moved off its initial value."""
    C = ctx.choice([16, 32])
    block = Block(GPTConfig(vocab_size=10, block_size=16, n_layer=1, n_head=n_head, n_embd=C, bias=True))
    return randomise(block, ctx, scale=0.3, add=True).eval()


@register("norm.pre_norm_block", lesson=6, title="pre-norm block function")
def pre_norm_block(fn, ctx: Context) -> str:
    block = _small_block(ctx, 4)
    B, T, C = 2, ctx.choice([5, 8]), block.ln_1.normalized_shape[0]
    x = ctx.randn(B, T, C)
    names = ("x", "attn", "mlp", "ln_1", "ln_2")
    args = (x, block.attn, block.mlp, block.ln_1, block.ln_2)  # `call` hands the learner copies of these
    out = expect_tensor(call(fn, *args, names=names), (B, T, C), "pre_norm_block(x, attn, mlp, ln_1, ln_2)")
    with torch.no_grad():
        expect_close(out, block(x), atol=1e-4, rtol=1e-4, what="the outputs",
                     mistakes=_block_mistakes(x, block.attn, block.mlp, block.ln_1, block.ln_2))
    return "x + attn(ln_1(x)), then + mlp(ln_2(x)): equal to gptcourse.block.Block (pre-norm)"


def _expect_gpt2_names(block: nn.Module, ref: Block) -> None:
    """The learner's block must hold the reference's weights under the same names and shapes, two LayerNorms apart."""
    params = call(lambda: {n: p.data_ptr() for n, p in block.named_parameters(remove_duplicate=False)})
    if "ln_1.weight" in params and params["ln_1.weight"] == params.get("ln_2.weight"):
        raise Fail(SHARED_NORM)
    got = call(lambda: {k: tuple(v.shape) for k, v in block.state_dict().items()})
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing and all(k.startswith("ln_2.") for k in missing) and not unexpected:
        raise Fail(SHARED_NORM + ": create ln_2 as well as ln_1")
    if {"ln_1.weight", "ln_2.weight"} <= set(missing):
        raise Fail("name the two LayerNorms ln_1 (before attention) and ln_2 (before the MLP), so that the weights "
                   f"load by name; each sub-layer has its own LayerNorm (your block has {', '.join(unexpected[:4])})")
    if missing and all(k.endswith(".bias") and k.startswith("ln_") for k in missing):
        raise Fail("your LayerNorm needs a bias (a shift of n_embd numbers, initialised to 0) next to its weight "
                   "(a gain of n_embd numbers, initialised to 1)")
    if missing or unexpected:
        raise Fail("name the parts as GPT-2 does, so that the course's weights load by name: ln_1, attn (with "
                   "c_attn and c_proj inside), ln_2, mlp (with c_fc and c_proj inside); "
                   f"missing {', '.join(missing[:4]) or 'nothing'}; "
                   f"not expected {', '.join(unexpected[:4]) or 'nothing'}")
    for key, shape in want.items():
        if got[key] != shape:
            raise Fail(f"{key} has shape {fmt(got[key])} where the course's Block has {fmt(shape)}: build the layer "
                       "from config.n_embd (the MLP widens to 4 * n_embd)")


@register("norm.block_module", lesson=6, title="pre-norm block module")
def block_module(cls, ctx: Context) -> str:
    if not callable(cls):
        raise Fail(f"pass the class itself (MyBlock), not a {type(cls).__name__}")
    ref = _small_block(ctx, ctx.choice([2, 4]))
    config = GPTConfig(vocab_size=10, block_size=16, n_layer=1, n_head=ref.attn.n_head, n_embd=ref.attn.n_embd)
    block = call(cls, config, names=("config",))
    if not isinstance(block, nn.Module):
        raise Fail(f"MyBlock(config) gave a {type(block).__name__}: subclass nn.Module and call super().__init__() "
                   "first in __init__")
    _expect_gpt2_names(block, ref)
    call(block.load_state_dict, ref.state_dict())  # the learner gets a copy of the weights
    call(block.eval)
    B, T, C = 2, ctx.choice([5, 8]), config.n_embd
    x = ctx.randn(B, T, C)
    out = expect_tensor(call(block, x, names=("x",)), (B, T, C), "MyBlock(config)(x)", hint="a block keeps the shape")
    with torch.no_grad():
        expect_close(out, ref(x), atol=1e-4, rtol=1e-4, what="the outputs with the course's weights loaded",
                     mistakes=_block_mistakes(x, ref.attn, ref.mlp, ref.ln_1, ref.ln_2),
                     hint="if the wiring is right, compare your LayerNorm module with torch.nn.LayerNorm")
    return ("GPT-2's names, two LayerNorms, x + attn(ln_1(x)) then + mlp(ln_2(x)): equal to gptcourse.block.Block "
            "with the same weights")
