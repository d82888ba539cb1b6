"""Lesson 07: the GPT forward pass from the model's parts, and counting parameters from the config."""

from __future__ import annotations

import contextlib
import functools
import numbers

import torch

from ...config import GPTConfig
from ...model import GPT
from ...params import count_parameters
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_number, expect_tensor

GPT2_SMALL_TIED = 124_439_808  # GPT-2 small with the head tied to the token embedding


@register("gpt.forward", lesson=7, title="GPT forward-pass function")
def forward(fn, ctx: Context) -> str:
    cfg = GPTConfig(vocab_size=ctx.choice([11, 29]), block_size=16, n_layer=2, n_head=2, n_embd=ctx.choice([16, 32]))
    torch.manual_seed(ctx.seed)  # the model's own initialisation draws from the global generator (restored after)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=ctx.gen) * 0.05)
    B, T = 2, ctx.choice([6, 10])
    idx = ctx.randint(0, cfg.vocab_size, (B, T))
    with torch.no_grad():
        ref = model(idx)

    def refuse(*args, **kwargs):
        raise Fail("write the forward pass from the model's parts (wte, wpe, h, ln_f, lm_head): "
                   "calling model(idx) itself is not the exercise")

    model.forward = refuse  # instance attribute: model(idx) now lands here
    try:
        out = expect_tensor(call(fn, model, idx, names=("model", "idx")), (B, T, cfg.vocab_size),
                            "gpt_forward(model, idx)", hint="logits are (B, T, vocab_size): one score per next token")
        idx2 = idx.clone()
        idx2[:, -1] = (idx2[:, -1] + 1) % cfg.vocab_size
        out2 = expect_tensor(call(fn, model, idx2, names=("model", "idx")), (B, T, cfg.vocab_size))
    finally:
        del model.forward
    if not torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-5):
        raise Fail("changing the last token changed the logits at earlier positions: the blocks must stay causal")
    tr = model.transformer
    pos = torch.arange(T)

    def run(x: torch.Tensor, final_norm: bool = True) -> torch.Tensor:
        for block in tr.h:
            x = block(x)
        return model.lm_head(tr.ln_f(x) if final_norm else x)

    with torch.no_grad():
        expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the logits", mistakes={
            "the position embeddings are missing: x = wte(idx) + wpe(positions)": lambda: run(tr.wte(idx)),
            "the final LayerNorm ln_f is missing before lm_head": lambda: run(tr.wte(idx) + tr.wpe(pos), False),
            "wpe takes the positions 0..T-1 (torch.arange(T)), not the token ids":
                lambda: run(tr.wte(idx) + tr.wpe(idx)),
            "the blocks are missing: x goes through every block in model.transformer.h":
                lambda: model.lm_head(tr.ln_f(tr.wte(idx) + tr.wpe(pos))),
        })
    return "causal; logits equal model(idx) for a random tiny GPT"


@contextlib.contextmanager
def _no_init():
    """Skip weight initialisation while a model is built: its tensors are allocated but never touched,
    so even GPT-2 small costs no time and (its pages never being written) next to no memory."""
    names = ("normal_", "zeros_", "ones_", "uniform_", "kaiming_uniform_", "trunc_normal_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


@functools.lru_cache(maxsize=64)
def _real_count(cfg: GPTConfig) -> tuple[int, int]:
    """(all parameters, feed-forward parameters) of a real GPT built from the config."""
    with _no_init():
        model = GPT(cfg)
    total = sum(p.numel() for p in model.parameters())  # a tied matrix is yielded once
    ffn = sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    return total, ffn


def _configs(ctx: Context, n: int) -> list[GPTConfig]:
    gpt2 = GPTConfig()
    out = [gpt2, gpt2.replace(tie_weights=False), gpt2.replace(bias=False)]
    for _ in range(n):
        nh = ctx.choice([1, 2, 3, 4, 6])
        out.append(GPTConfig(
            vocab_size=int(ctx.randint(2, 3000, (1,))),
            block_size=int(ctx.randint(1, 300, (1,))),
            n_layer=int(ctx.randint(1, 7, (1,))),
            n_head=nh,
            n_embd=nh * int(ctx.randint(1, 24, (1,))),
            bias=ctx.choice([True, False]),
            tie_weights=ctx.choice([True, False]),
        ))
    return out


def _describe(cfg: GPTConfig) -> str:
    return (f"GPTConfig(vocab_size={cfg.vocab_size}, block_size={cfg.block_size}, n_layer={cfg.n_layer}, "
            f"n_head={cfg.n_head}, n_embd={cfg.n_embd}, bias={cfg.bias}, tie_weights={cfg.tie_weights})")


@register("params.count", lesson=7, title="parameter-count function", timeout=30.0)
def count(fn, ctx: Context) -> str:
    configs = _configs(ctx, 20)
    for cfg in configs:
        got = call(fn, cfg)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, numbers.Integral) and not isinstance(got, bool):
            got = int(got)
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if isinstance(got, bool) or not isinstance(got, int):
            raise Fail(f"count_params should return an int, got {type(got).__name__}")
        want, _ = _real_count(cfg)
        if cfg == GPTConfig() and want != GPT2_SMALL_TIED:  # the reference itself is checked here too
            raise Fail("internal: GPT-2 small does not count 124,439,808")
        if got == want:
            continue
        b = count_parameters(cfg)
        d, L, V = cfg.n_embd, cfg.n_layer, cfg.vocab_size
        biases = L * (3 * d + d + 4 * d + d) + (2 * L + 1) * d
        diffs = {
            V * d if cfg.tie_weights else None:
                "you counted the output head although tie_weights=True: a tied head reuses the token embedding",
            -V * d if not cfg.tie_weights else None:
                "with tie_weights=False the head (lm_head) is its own (vocab_size x n_embd) matrix: count it",
            -biases if cfg.bias else None:
                "biases are missing: with bias=True every Linear (c_attn, c_proj, c_fc) and LayerNorm has one",
            biases if not cfg.bias else None: "with bias=False there are no biases at all",
            -b.position_embedding: "the learned position embeddings (block_size x n_embd) are missing",
            -b.norms: "the LayerNorms are missing: ln_1 and ln_2 per block and the final ln_f, each with a weight "
                      "(and a bias when bias=True)",
            -d * (1 + int(cfg.bias)): "the final LayerNorm ln_f is missing",
            -b.token_embedding: "the token embedding (vocab_size x n_embd) is missing",
            -L * 4 * d * d: "the feed-forward layers hold 8 * n_embd^2 weights per block (two matrices, 4x wide)",
        }
        hint = diffs.get(got - want)
        name = "GPT-2 small (124,439,808 with tied weights)" if cfg == GPTConfig() else _describe(cfg)
        raise Fail(f"for {name} you counted {got:,}; the real model has {want:,}" + (f": {hint}" if hint else ""))
    return (f"exact on GPT-2 small (124,439,808) and {len(configs) - 1} other configs, "
            "tied and untied, with and without bias")


@register("params.ffn_share", lesson=7, title="feed-forward share function", timeout=30.0)
def ffn_share(fn, ctx: Context) -> str:
    configs = _configs(ctx, 8)
    for cfg in configs:
        got = expect_number(call(fn, cfg), "ffn_share(config)")
        total, ffn = _real_count(cfg)
        want = ffn / total
        if abs(got - want) <= 1e-9 + 1e-6 * want:
            continue
        b = count_parameters(cfg)
        hint = ""
        if abs(got - 100 * want) < 1e-6 * 100:
            hint = "return a fraction between 0 and 1, not a percentage"
        elif abs(got - ffn / (b.attention + b.feed_forward)) < 1e-6:
            hint = "divide by every parameter of the model (embeddings and norms too), not only the blocks'"
        elif abs(got - ffn / 2 / total) < 1e-6 or abs(got - ffn / 2 / (total - ffn / 2)) < 1e-6:
            hint = "the feed-forward network has two matrices per block, c_fc (C x 4C) and c_proj (4C x C)"
        name = "GPT-2 small" if cfg == GPTConfig() else _describe(cfg)
        raise Fail(f"for {name} you said {got:.6f}; the feed-forward layers hold {want:.6f} of the parameters"
                   + (f": {hint}" if hint else ""))
    return f"the feed-forward share is right on {len(configs)} configs (GPT-2 small: about {_share_gpt2():.1%})"


def _share_gpt2() -> float:
    total, ffn = _real_count(GPTConfig())
    return ffn / total
