"""Lesson 12: instruction tuning's response-only loss, and a LoRA linear layer.

References: gptcourse.finetune.response_mask, response_loss and LoRALinear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...finetune import response_loss as ref_loss
from ...finetune import response_mask as ref_mask
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_number, expect_tensor, fmt

TARGET_IS_NEXT = ("target t is token t + 1, so the first response target sits at t = prompt_length - 1: "
                  "mask = t + 1 >= prompt_length")


def _lengths(ctx: Context, B: int, T: int) -> torch.Tensor:
    """Prompt lengths (B,), all different where possible, each leaving at least two response targets."""
    return torch.randperm(T - 2, generator=ctx.gen)[:B] + 1  # 1 .. T - 2


def _mask_mistakes(P: torch.Tensor, T: int) -> dict[str, torch.Tensor]:
    t = torch.arange(T)[None, :]  # (1, T)
    P = P[:, None]  # (B, 1)
    return {
        "the mask is the wrong way round: True marks the response's targets (the ones the loss counts), "
        "False the prompt's": t + 1 < P,
        "off by one: the first response token is left out. " + TARGET_IS_NEXT: t >= P,
        "off by one: the last prompt token is counted. " + TARGET_IS_NEXT: t + 2 >= P,
    }


@register("finetune.response_mask", lesson=12, title="response_mask function")
def response_mask(fn, ctx: Context) -> str:
    B, T = ctx.choice([3, 4]), ctx.choice([9, 12])
    P = _lengths(ctx, B, T)
    out = expect_tensor(call(fn, P, T, names=("prompt_lengths",)), (B, T), "response_mask(prompt_lengths, T)",
                        hint="one row per sequence, one entry per target", dtype=torch.bool)
    want = ref_mask(P, T)
    if torch.equal(out, want):
        return "True exactly on the targets that are response tokens (t + 1 >= prompt_length), row by row"
    for hint, wrong in _mask_mistakes(P, T).items():
        if torch.equal(out, wrong):
            raise Fail(hint)
    b = int((out != want).any(-1).nonzero()[0])
    raise Fail(f"row {b} (prompt_length {int(P[b])}) should be {want[b].int().tolist()}, got {out[b].int().tolist()}: "
               + TARGET_IS_NEXT)


def _loss_mistakes(logits: torch.Tensor, targets: torch.Tensor, P: torch.Tensor) -> dict[str, float]:
    """The loss each common mistake gives on these inputs, by its hint."""
    B, T, V = logits.shape
    per_target = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), reduction="none").view(B, T)
    mask = ref_mask(P, T)
    mistakes = {
        "the loss counts the prompt's targets too: keep only the response's (the mask's True entries)":
            per_target.mean(),
        "averaged over all B * T targets: divide by the number of response targets (mask.sum()), not by B * T":
            (per_target * mask).sum() / (B * T),
        "averaged row by row, then over rows: a long response should weigh more than a short one; take the "
        "mean over every response target of the batch together": torch.stack(
            [per_target[b][mask[b]].mean() for b in range(B)]).mean(),
    }
    mistakes.update({hint: per_target[wrong].mean() for hint, wrong in _mask_mistakes(P, T).items()})
    return {hint: value.item() for hint, value in mistakes.items()}


@register("finetune.response_loss", lesson=12, title="response_loss function")
def response_loss(fn, ctx: Context) -> str:
    B, T, V = ctx.choice([3, 4]), ctx.choice([9, 12]), ctx.choice([7, 11])
    for _ in range(50):  # draw until the right loss and every mistake's are far enough apart to tell by value
        P = _lengths(ctx, B, T)
        logits = ctx.randn(B, T, V, scale=2.0)
        targets = ctx.randint(0, V, (B, T))
        want = ref_loss(logits, targets, P).item()
        mistakes = _loss_mistakes(logits, targets, P)
        values = sorted([want, *mistakes.values()])
        if min(b - a for a, b in zip(values, values[1:])) > 1e-2:
            break
    out = expect_number(call(fn, logits, targets, P, names=("logits", "targets", "prompt_lengths")),
                        "response_loss(logits, targets, prompt_lengths)")
    if abs(out - want) <= 1e-4 * max(1.0, abs(want)):
        return "the mean cross-entropy over the response targets only, as gptcourse.finetune.response_loss"
    for hint, value in mistakes.items():
        if abs(out - value) <= 1e-4 * max(1.0, abs(value)):
            raise Fail(hint)
    raise Fail(f"the loss is {out:.4f}, expected {want:.4f}: cross-entropy per target (reduction='none'), "
               "then the mean over the response targets")


def _lora_reference(base: nn.Linear, A: torch.Tensor, B: torch.Tensor, scale: float) -> torch.Tensor:
    return base.weight.detach() + scale * B @ A  # (out, r) @ (r, in) -> (out, in)


@register("finetune.lora_linear", lesson=12, title="LoRALinear class")
def lora_linear(cls, ctx: Context) -> str:
    n_in, n_out, r = ctx.choice([8, 12]), ctx.choice([6, 10]), ctx.choice([2, 3])
    alpha = ctx.choice([4.0, 6.0])  # never equal to r: a missing scale shows
    base = nn.Linear(n_in, n_out)
    with torch.no_grad():
        base.weight.copy_(ctx.randn(n_out, n_in))
        base.bias.copy_(ctx.randn(n_out))
    x = ctx.randn(2, 5, n_in)
    layer = call(cls, base, r, alpha, names=("base",))
    if not isinstance(layer, nn.Module):
        raise Fail(f"LoRALinear(base, r, alpha) should make an nn.Module, got a {type(layer).__name__}")
    A, B = call(lambda m: (getattr(m, "lora_A", None), getattr(m, "lora_B", None)), layer)
    for name, t, shape in (("lora_A", A, (r, n_in)), ("lora_B", B, (n_out, r))):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = fmt(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise Fail(f"the layer needs a parameter {name} of shape {fmt(shape)} (r={r}, in={n_in}, out={n_out}); "
                       f"got {got}")
    if torch.count_nonzero(B):
        raise Fail("lora_B should start at zero, so that the new layer starts as exactly the base layer")
    if not torch.count_nonzero(A):
        raise Fail("lora_A should start random, not zero: with A = 0 and B = 0 neither gets a gradient")
    names = call(lambda m: sorted(n for n, p in m.named_parameters() if p.requires_grad), layer)
    if names != ["lora_A", "lora_B"]:
        base_trains = any(not n.startswith("lora_") for n in names)
        raise Fail("freeze the base layer (base.requires_grad_(False)): only lora_A and lora_B train"
                   if base_trains else f"lora_A and lora_B should be nn.Parameters that train; training: {names}")
    y = expect_tensor(call(layer, x, names=("x",)), (2, 5, n_out), "layer(x)", hint="the base layer's shape")
    expect_close(y, base(x).detach(), atol=1e-5, what="the outputs at the start",
                 hint="with lora_B = 0 the layer is the base layer: base(x) + the update")
    new_A, new_B = ctx.randn(r, n_in), ctx.randn(n_out, r)

    def set_weights(m):
        with torch.no_grad():
            m.lora_A.copy_(new_A)
            m.lora_B.copy_(new_B)

    call(set_weights, layer, mutable=(0,))
    scale = alpha / r
    mistakes = {
        f"the update is not scaled by alpha / r (= {scale:g} here): base(x) + (alpha / r) * x A^T B^T":
            lambda s: s * 0 + 1.0,
        "the scale is r / alpha: it should be alpha / r": lambda s: 1 / s,
    }
    want_W = _lora_reference(base, new_A, new_B, scale)
    y = expect_tensor(call(layer, x, names=("x",)), (2, 5, n_out), "layer(x)")
    expect_close(y, F.linear(x, want_W, base.bias.detach()), atol=1e-4, rtol=1e-4, what="layer(x) after training",
                 mistakes={h: (lambda f=f: F.linear(x, _lora_reference(base, new_A, new_B, f(scale)), base.bias))
                           for h, f in mistakes.items()},
                 hint="base(x) + (alpha / r) * x @ lora_A.T @ lora_B.T")
    W = expect_tensor(call(lambda m: m.merged_weight(), layer), (n_out, n_in), "merged_weight()",
                      hint="the (out, in) matrix of the base layer")
    expect_close(W, want_W, atol=1e-4, rtol=1e-4, what="merged_weight()",
                 mistakes={h: (lambda f=f: _lora_reference(base, new_A, new_B, f(scale))) for h, f in mistakes.items()},
                 hint="W + (alpha / r) * lora_B @ lora_A")
    return "starts as the base layer, trains only A and B, and applies W + (alpha / r) B A, as merged_weight()"
