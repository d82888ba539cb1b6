"""Lesson 07: the GPT forward pass from the model's parts, dropout, and counting parameters from the config."""

from __future__ import annotations

import contextlib
import functools
import numbers
from collections.abc import Callable

import torch

from ...config import GPTConfig
from ...model import GPT
from ...params import count_parameters
from ..core import Context, register
from ..tools import Fail, call, call_explained, expect_causal, expect_close, expect_number, expect_tensor, randomise

GPT2_SMALL_TIED = 124_439_808  # GPT-2 small with the head tied to the token embedding
WPE_IDS = "wpe takes the positions 0..T-1 (torch.arange(T)), not the token ids"
WPE_TABLE = ("the positions are torch.arange(T) for the T = idx.shape[1] tokens you were given, not all "
             "block_size rows of wpe")
WPE_BATCH = "idx is (B, T): the positions are torch.arange(idx.shape[1]), not idx.shape[0]"


@register("gpt.forward", lesson=7, title="GPT forward-pass function")
def forward(fn, ctx: Context) -> str:
    cfg = GPTConfig(vocab_size=ctx.choice([11, 29]), block_size=16, n_layer=2, n_head=2, n_embd=ctx.choice([16, 32]))
    torch.manual_seed(ctx.seed)  # the model's own initialisation draws from the global generator (restored after)
    model = randomise(GPT(cfg).eval(), ctx, scale=0.05, add=True)  # `call` hands the learner copies of it
    B, T = 2, ctx.choice([6, 10])
    idx = ctx.randint(0, cfg.vocab_size, (B, T))

    def refuse(*args, **kwargs):
        raise Fail("write the forward pass from the model's parts (wte, wpe, h, ln_f, lm_head): "
                   "calling model(idx) itself is not the exercise")

    tr = model.transformer

    def position_errors(ids: torch.Tensor) -> list[tuple[str, Callable[[], torch.Tensor]]]:
        """What positions built the wrong way raise, so that such an error gets its hint."""
        def added(positions: torch.Tensor, tokens_first: bool) -> Callable[[], torch.Tensor]:
            return lambda: tr.wte(ids) + tr.wpe(positions) if tokens_first else tr.wpe(positions) + tr.wte(ids)

        table, batch = torch.arange(cfg.block_size), torch.arange(ids.shape[0])
        return [(WPE_IDS, lambda: tr.wpe(ids)), (WPE_TABLE, added(table, True)), (WPE_TABLE, added(table, False)),
                (WPE_BATCH, added(batch, True)), (WPE_BATCH, added(batch, False))]

    model.forward = refuse  # instance attribute: model(idx) now lands here
    try:
        out = expect_tensor(call_explained(fn, model, idx, names=("model", "idx"), errors=position_errors(idx)),
                            (B, T, cfg.vocab_size), "gpt_forward(model, idx)",
                            hint="logits are (B, T, vocab_size): one score per next token")
        idx2 = idx.clone()
        idx2[:, -1] = (idx2[:, -1] + 1) % cfg.vocab_size
        out2 = expect_tensor(call_explained(fn, model, idx2, names=("model", "idx"), errors=position_errors(idx2)),
                             (B, T, cfg.vocab_size))
    finally:
        del model.forward
    expect_causal(out, out2, T - 2, "the blocks must stay causal")
    pos = torch.arange(T)

    def run(x: torch.Tensor, final_norm: bool = True) -> torch.Tensor:
        for block in tr.h:
            x = block(x)
        return model.lm_head(tr.ln_f(x) if final_norm else x)

    with torch.no_grad():
        ref = model(idx)  # only now: the expected answer never sits on the stack while the learner's code runs
        expect_close(out, ref, atol=1e-4, rtol=1e-4, what="the logits", mistakes={
            "the position embeddings are missing: x = wte(idx) + wpe(positions)": lambda: run(tr.wte(idx)),
            "the final LayerNorm ln_f is missing before lm_head": lambda: run(tr.wte(idx) + tr.wpe(pos), False),
            WPE_IDS: lambda: run(tr.wte(idx) + tr.wpe(idx)),
            "the blocks are missing: x goes through every block in model.transformer.h":
                lambda: model.lm_head(tr.ln_f(tr.wte(idx) + tr.wpe(pos))),
        })
    return "causal; logits equal model(idx) for a random tiny GPT"


DROPOUT_EVAL = "with training=False dropout does nothing: return x unchanged (that is what model.eval() relies on)"
DROPOUT_SCALE = ("scale the numbers you keep by 1 / (1 - p), so that each number's expected value stays x "
                 "(inverted dropout)")
DROPOUT_KEEP = "p is the probability of dropping (zeroing) a number, not of keeping it: keep x where rand >= p"


@register("gpt.dropout", lesson=7, title="dropout function")
def dropout(fn, ctx: Context) -> str:
    x = ctx.randn(200, 300) + 3.0  # no exact zeros, so a zero in the output was dropped
    p = ctx.choice([0.1, 0.2, 0.5])
    names = ("x", "p", "training", "generator")
    seed = int(ctx.randint(0, 2**31 - 1, (1,)))
    shape = tuple(x.shape)
    out = expect_tensor(call(fn, x, p, False, torch.Generator().manual_seed(seed), names=names), shape,
                        f"dropout(x, {p}, training=False, generator)")
    if not torch.equal(out, x):
        raise Fail(DROPOUT_EVAL)
    out = expect_tensor(call(fn, x, p, True, torch.Generator().manual_seed(seed), names=names), shape,
                        f"dropout(x, {p}, training=True, generator)", hint="dropout keeps the shape")
    dropped = out == 0
    for dim in (0, 1):
        along = dropped.float().mean(dim=dim)  # the share dropped in each column (dim 0) or row (dim 1)
        if ((along == 0) | (along == 1)).all():
            raise Fail("draw one random number per element of x (torch.rand(x.shape, generator=generator)), not "
                       "one per row or column")
    share, spread = dropped.float().mean().item(), 5 * (p * (1 - p) / x.numel()) ** 0.5 + 1e-3
    if abs(share - p) > spread:
        if abs(share - (1 - p)) <= spread:
            raise Fail(DROPOUT_KEEP)
        raise Fail(f"{share:.1%} of the numbers were zeroed where about {p:.0%} should be: zero each number "
                   "independently with probability p")
    ratio = out[~dropped] / x[~dropped]  # what each kept number was multiplied by
    if not torch.allclose(ratio, torch.full_like(ratio, 1 / (1 - p)), rtol=1e-5):
        if torch.allclose(ratio, torch.ones_like(ratio)):
            raise Fail(DROPOUT_SCALE)
        if torch.allclose(ratio, torch.full_like(ratio, 1 - p), rtol=1e-5):
            raise Fail(DROPOUT_SCALE + ": divide by (1 - p), don't multiply by it")
        raise Fail("each number you keep should become x / (1 - p), and each one you drop 0")
    again = call(fn, x, p, True, torch.Generator().manual_seed(seed), names=names)
    if not isinstance(again, torch.Tensor) or not torch.equal(again, out):
        raise Fail("draw the random numbers with the generator you are given (torch.rand(x.shape, "
                   "generator=generator)): the same seed must give the same numbers dropped")
    none_dropped = expect_tensor(call(fn, x, 0.0, True, torch.Generator().manual_seed(seed), names=names), shape,
                                 "dropout(x, 0.0, training=True, generator)")
    if not torch.allclose(none_dropped, x):
        if (none_dropped == 0).all():  # at p = 0.5 keeping with probability p looks right; at p = 0 it drops all
            raise Fail(DROPOUT_KEEP)
        raise Fail("with p = 0 nothing is dropped and nothing rescaled: the output must equal x")
    return (f"p = {p}: {share:.1%} zeroed, the rest scaled by 1 / (1 - p); identity with training=False; "
            "reproducible with the generator")


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


def _count_mistakes(cfg: GPTConfig) -> list[tuple[str, int]]:
    """(hint, count minus the real count) of each known counting mistake, for this config."""
    b = count_parameters(cfg)
    d, L, V, bias, tied = cfg.n_embd, cfg.n_layer, cfg.vocab_size, int(cfg.bias), cfg.tie_weights
    linear_biases, norm_biases = L * (3 * d + d + 4 * d + d), (2 * L + 1) * d
    head_bias = "lm_head has no bias, even with bias=True: it is nn.Linear(n_embd, vocab_size, bias=False)"
    return [
        ("you counted the output head although tie_weights=True: a tied head reuses the token embedding",
         V * d if tied else 0),
        ("with tie_weights=False the head (lm_head) is its own (vocab_size x n_embd) matrix: count it",
         0 if tied else -V * d),
        ("biases are missing: with bias=True every Linear in the blocks (c_attn, c_proj, c_fc) and every "
         "LayerNorm has one", -(linear_biases + norm_biases) * bias),
        ("with bias=False there are no biases at all", (linear_biases + norm_biases) * (1 - bias)),
        ("the Linear layers' biases are missing: c_attn 3 * n_embd, c_proj n_embd, c_fc 4 * n_embd and the MLP's "
         "c_proj n_embd per block", -linear_biases * bias),
        ("the LayerNorms have a bias too when bias=True (a weight and a bias of n_embd each)", -norm_biases * bias),
        (head_bias, V * bias),
        (head_bias, V * bias * (not tied)),
        ("the MLP's c_proj maps 4 * n_embd back to n_embd, so its bias has n_embd entries (a bias has the "
         "layer's output size), not 4 * n_embd", 3 * d * L * bias),
        ("c_attn makes q, k and v at once: its bias has 3 * n_embd entries", -2 * d * L * bias),
        ("c_fc widens to 4 * n_embd: its bias has 4 * n_embd entries", -3 * d * L * bias),
        ("attention ends with its output projection c_proj (n_embd x n_embd, and a bias when bias=True)",
         -L * (d * d + d * bias)),
        ("the learned position embeddings (block_size x n_embd) are missing", -b.position_embedding),
        ("the LayerNorms are missing: ln_1 and ln_2 per block and the final ln_f, each with a weight "
         "(and a bias when bias=True)", -b.norms),
        ("each block has two LayerNorms, ln_1 before attention and ln_2 before the MLP", -L * d * (1 + bias)),
        ("the final LayerNorm ln_f is missing", -d * (1 + bias)),
        ("the token embedding (vocab_size x n_embd) is missing", -b.token_embedding),
        ("the feed-forward layers hold 8 * n_embd^2 weights per block (two matrices, 4x wide)", -L * 4 * d * d),
    ]


def _count_hint(diffs: list[tuple[GPTConfig, int]]) -> str:
    """The known mistake that explains the difference on every config ('' when none does): a mistake is named
    only when it fits them all, so two that happen to give the same number on one config are told apart."""
    candidates = None
    for cfg, diff in diffs:
        fits = {hint for hint, mistake in _count_mistakes(cfg) if mistake == diff}
        candidates = fits if candidates is None else candidates & fits
    order = [hint for hint, _ in _count_mistakes(diffs[0][0])] if diffs else []
    return next((hint for hint in order if hint in (candidates or ())), "")


def _parts(cfg: GPTConfig) -> str:
    """The real count by part, for a learner whose mistake has no name."""
    b = count_parameters(cfg)
    parts = {"token embedding": b.token_embedding, "position embedding": b.position_embedding,
             "attention (all blocks)": b.attention, "feed-forward (all blocks)": b.feed_forward,
             "LayerNorms": b.norms, "lm_head": b.head}
    return " + ".join(f"{name} {n:,}" for name, n in parts.items() if n) + (" (the head is tied)" if not b.head else "")


def _as_count(got: object) -> int:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, numbers.Integral) and not isinstance(got, bool):
        got = int(got)
    if isinstance(got, float) and got.is_integer():
        got = int(got)
    if isinstance(got, bool) or not isinstance(got, int):
        raise Fail(f"count_params should return an int, got {type(got).__name__}")
    return got


@register("params.count", lesson=7, title="parameter-count function", timeout=30.0)
def count(fn, ctx: Context) -> str:
    answers = [(cfg, _as_count(call(fn, cfg))) for cfg in _configs(ctx, 20)]
    for cfg, got in answers:
        want, _ = _real_count(cfg)
        if cfg == GPTConfig() and want != GPT2_SMALL_TIED:  # the reference itself is checked here too
            raise Fail("internal: GPT-2 small does not count 124,439,808")
        if got == want:
            continue
        # the hint weighs every config; the formula stands in for the real models there (it equals them)
        hint = _count_hint([(c, n - count_parameters(c).total) for c, n in answers])
        name = "GPT-2 small (124,439,808 with tied weights)" if cfg == GPTConfig() else _describe(cfg)
        raise Fail(f"for {name} you counted {got:,} ({abs(got - want):,} too {'many' if got > want else 'few'}); "
                   f"the real model has {want:,}: " + (hint or f"compare part by part: {_parts(cfg)}"))
    return (f"exact on GPT-2 small (124,439,808) and {len(answers) - 1} other configs, "
            "tied and untied, with and without bias")


@register("params.ffn_share", lesson=7, title="feed-forward share function", timeout=30.0)
def ffn_share(fn, ctx: Context) -> str:
    answers = [(cfg, expect_number(call(fn, cfg), "ffn_share(config)")) for cfg in _configs(ctx, 8)]
    for cfg, got in answers:
        total, ffn = _real_count(cfg)
        want = ffn / total
        if abs(got - want) > 1e-9 + 1e-6 * want:
            name = "GPT-2 small" if cfg == GPTConfig() else _describe(cfg)
            raise Fail(f"for {name} you said {got:.6f}; the feed-forward layers hold {want:.6f} of the parameters: "
                       + _share_hint(answers))
    return f"the feed-forward share is right on {len(answers)} configs (GPT-2 small: about {_share_gpt2():.1%})"


def _share_forms(cfg: GPTConfig) -> list[tuple[str, list[float]]]:
    """(hint, the shares that mistake gives) for the usual ways a share goes wrong."""
    b = count_parameters(cfg)
    total, ffn = b.total, b.feed_forward
    d, L = cfg.n_embd, cfg.n_layer
    blocks = b.attention + b.feed_forward
    mlp_weights = L * 8 * d * d
    return [
        ("return a fraction between 0 and 1, not a percentage", [100 * ffn / total]),
        ("divide by every parameter of the model (embeddings, LayerNorms, and the head when untied), not only "
         "the blocks'", [ffn / blocks, ffn / (blocks + 2 * L * d * (1 + int(cfg.bias)))]),
        ("count the MLP's biases too: with bias=True c_fc has 4 * n_embd of them and c_proj n_embd, per block",
         [mlp_weights / total, mlp_weights / count_parameters(cfg.replace(bias=False)).total]),
        ("the feed-forward network has two matrices per block, c_fc (C x 4C) and c_proj (4C x C)",
         [ffn / 2 / total, ffn / 2 / (total - ffn / 2)]),
    ]


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


def _share_hint(answers: list[tuple[GPTConfig, float]]) -> str:
    """Which part of a wrong share is off, told by what explains every config: the form, the total
    (then count_params is the cause), or the feed-forward count."""
    def near(got: float, value: float) -> bool:
        return abs(got - value) <= 1e-9 + 1e-6 * abs(value)

    forms = [_share_forms(cfg) for cfg, _ in answers]
    for i, (hint, _) in enumerate(forms[0]):
        if all(any(near(got, v) for v in f[i][1]) for (_, got), f in zip(answers, forms)):
            return hint
    counts = [(cfg, count_parameters(cfg).total, count_parameters(cfg).feed_forward, got) for cfg, got in answers]
    cfg, total, ffn, got = next(c for c in counts if not near(c[3], c[2] / c[1]))
    # what the learner divided by, if the feed-forward part is right (and multiplied by, if the total is)
    if all(got > 0 and _whole(f / got) for _, _, f, got in counts):
        hint = _count_hint([(c, round(f / got) - t) for c, t, f, got in counts])
        return (f"the feed-forward part ({ffn:,}) is right, but you divided it by {round(ffn / got):,} where "
                f"GPT(config) has {total:,} parameters: fix count_params first (check('params.count', count_params))"
                + (f": {hint}" if hint else ""))
    if all(_whole(got * t) for _, t, _, got in counts):
        return (f"the total is right, but you counted {round(got * total):,} feed-forward parameters; c_fc and "
                f"c_proj of every block hold {ffn:,}")
    return f"c_fc and c_proj of every block hold {ffn:,} of the model's {total:,} parameters"


def _share_gpt2() -> float:
    total, ffn = _real_count(GPTConfig())
    return ffn / total
