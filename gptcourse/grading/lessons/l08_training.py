"""Lesson 08: batches, the learning-rate schedule, one training step (references in gptcourse.data/train)."""

from __future__ import annotations

import copy
import math

import torch

from ...config import GPTConfig
from ...model import GPT
from ..core import Context, register
from ..tools import Fail, call, expect_number, expect_tensor

DRAW = ("draw the starts with the generator you are given: "
        "torch.randint(len(data) - block_size, (batch_size,), generator=generator)")


@register("train.get_batch", lesson=8, title="get_batch function")
def get_batch(fn, ctx: Context) -> str:
    from ...data import get_batch as ref_get_batch  # imported here: the training module is the newest part

    N, T, B = ctx.choice([40, 100]), ctx.choice([4, 8]), ctx.choice([3, 5])
    data = torch.randperm(N, generator=ctx.gen) + 7  # distinct ids, so each window's start can be found
    where = {int(v): i for i, v in enumerate(data)}
    seed = int(ctx.randint(0, 2**31 - 1, (1,)))
    out = call(fn, data, T, B, torch.Generator().manual_seed(seed), names=("data",))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Fail(f"get_batch should return a pair (x, y), got {type(out).__name__}")
    x = expect_tensor(out[0], (B, T), "x", hint="batch_size rows of block_size tokens", dtype=torch.int64)
    y = expect_tensor(out[1], (B, T), "y", hint="the same shape as x", dtype=torch.int64)
    for b in range(B):
        s = where.get(int(x[b, 0]))
        if s is None or s + T > N or not torch.equal(x[b], data[s : s + T]):
            raise Fail(f"row {b} of x is not a contiguous window of the data: x[b] = data[start : start + block_size]")
        if torch.equal(y[b], x[b]):
            raise Fail("y equals x: the targets are the inputs shifted by one, y[b] = data[start + 1 : start + 1 + T]")
        if s + T + 1 > N or not torch.equal(y[b], data[s + 1 : s + T + 1]):
            raise Fail("y should be x shifted one token to the left: y[b] = data[start + 1 : start + block_size + 1]")
    rx, ry = ref_get_batch(data, T, B, generator=torch.Generator().manual_seed(seed))
    if not torch.equal(x, rx):
        raise Fail("the windows are valid but not the ones the seeded generator picks: " + DRAW)
    return "(B, T) int64 windows, y shifted by one, the same draws as gptcourse.data.get_batch"


def _lr_variants(learning_rate: float, warmup: int, decay: int, min_lr: float) -> dict[str, object]:
    def cosine(it: int, floor: float = min_lr, half: float = 0.5, denominator: int | None = None) -> float:
        ratio = (it - warmup) / (denominator or (decay - warmup))
        return floor + half * (1 + math.cos(math.pi * ratio)) * (learning_rate - floor)

    def schedule(it: int, warm=None, cos=cosine, after=min_lr) -> float:
        if it < warmup:
            return warm(it) if warm else learning_rate * (it + 1) / (warmup + 1)
        if it > decay:
            return after
        return cos(it)

    return {
        "the warmup rises linearly as learning_rate * (it + 1) / (warmup_iters + 1)":
            lambda it: schedule(it, warm=lambda i: learning_rate * i / warmup),
        "the cosine ends at min_lr, not 0: min_lr + 0.5 * (1 + cos(pi * ratio)) * (learning_rate - min_lr)":
            lambda it: schedule(it, cos=lambda i: cosine(i, floor=0.0), after=0.0),
        "the factor 0.5 in 0.5 * (1 + cos(pi * ratio)) is missing":
            lambda it: schedule(it, cos=lambda i: cosine(i, half=1.0)),
        "ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters): the decay starts after the warmup":
            lambda it: schedule(it, cos=lambda i: cosine(i + warmup, denominator=decay)),
    }


@register("train.get_lr", lesson=8, title="learning-rate schedule function")
def get_lr(fn, ctx: Context) -> str:
    from ...train import get_lr as ref_get_lr

    for _ in range(3):
        lr = ctx.choice([6e-4, 1e-3, 3e-3])
        warmup = ctx.choice([5, 10, 20])
        decay = warmup + ctx.choice([50, 100])
        min_lr = lr / ctx.choice([10, 20])
        kw = dict(learning_rate=lr, warmup_iters=warmup, lr_decay_iters=decay, min_lr=min_lr)
        its = list(range(0, decay + 10))
        got = [expect_number(call(fn, it, **kw), f"get_lr({it})") for it in its]
        want = [ref_get_lr(it, **kw) for it in its]
        if any(got[i] >= got[i + 1] for i in range(warmup - 1)):
            raise Fail("the rate should rise during the warmup (it < warmup_iters)")
        if max(got) > lr * (1 + 1e-9):
            raise Fail(f"the rate went above learning_rate ({lr:g})")
        bad = [i for i in its if abs(got[i] - want[i]) > 1e-12 + 1e-7 * abs(want[i])]
        if bad:
            for hint, variant in _lr_variants(lr, warmup, decay, min_lr).items():
                if all(abs(got[i] - variant(i)) <= 1e-12 + 1e-7 * abs(variant(i)) for i in its):
                    raise Fail(hint)
            if abs(got[-1] - min_lr) > 1e-12 + 1e-9 * min_lr:
                raise Fail(f"after lr_decay_iters the rate should stay at min_lr ({min_lr:g}), got {got[-1]:g}")
            i = bad[0]
            raise Fail(f"get_lr({i}) = {got[i]:.6g} with warmup_iters={warmup}, lr_decay_iters={decay}; "
                       f"expected {want[i]:.6g}")
    return "warmup, cosine to min_lr, then min_lr: equal to gptcourse.train.get_lr at every step"


def _tiny_gpt(ctx: Context) -> GPT:
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)
    torch.manual_seed(ctx.seed)  # model init draws from the global generator; the runner restores it afterwards
    return GPT(cfg)


def _trajectory(model: GPT, batches, step) -> tuple[list[float], GPT]:
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [step(model, opt, x, y) for x, y in batches]
    return losses, model


def _same_params(a: GPT, b: GPT, atol: float = 1e-5) -> bool:
    return all(torch.allclose(p, q, atol=atol, rtol=1e-4) for p, q in zip(a.parameters(), b.parameters()))


@register("train.step", lesson=8, title="train_step function", timeout=30.0)
def train_step(fn, ctx: Context) -> str:
    from ...train import loss_fn
    from ...train import train_step as ref_step

    model = _tiny_gpt(ctx)
    clip = 0.05  # small enough that clipping changes every step
    batches = [(ctx.randint(0, 13, (4, 8)), ctx.randint(0, 13, (4, 8))) for _ in range(3)]
    ref_losses, ref_model = _trajectory(model, batches, lambda m, o, x, y: ref_step(m, o, x, y, grad_clip=clip))
    learner = copy.deepcopy(model)
    opt = torch.optim.AdamW(learner.parameters(), lr=1e-2)
    losses = []
    for x, y in batches:
        out = call(fn, learner, opt, x, y, clip, names=("model", "optimizer", "x", "y"), grad=True, mutable=(0, 1))
        if isinstance(out, torch.Tensor):
            raise Fail("return loss.item(), a Python float, not the loss tensor (it keeps the whole graph alive)")
        losses.append(expect_number(out, "train_step(...)"))
    if _same_params(learner, model, atol=0.0):
        raise Fail("the parameters did not change: call optimizer.step() after loss.backward()")
    if abs(losses[0] - ref_losses[0]) > 1e-4:
        raise Fail(f"the first loss is {losses[0]:.4f}, expected {ref_losses[0]:.4f}: "
                   "cross-entropy of logits (B*T, V) against targets (B*T,) before the step")
    if _same_params(learner, ref_model) and all(abs(a - b) <= 1e-4 for a, b in zip(losses, ref_losses)):
        return "3 steps give the same losses and weights as gptcourse.train.train_step (clipping included)"

    def no_clip(m, o, x, y):
        o.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        o.step()
        return loss.item()

    def no_zero(m, o, x, y):
        loss = loss_fn(m(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        o.step()
        return loss.item()

    def loss_after(m, o, x, y):
        ref_step(m, o, x, y, grad_clip=clip)
        with torch.no_grad():
            return loss_fn(m(x), y).item()

    variants = {
        "the gradient is not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) "
        "between backward() and step()": no_clip,
        "gradients pile up from step to step: call optimizer.zero_grad(set_to_none=True) before backward()": no_zero,
        "return the loss computed before the step (the one you called backward on)": loss_after,
    }
    for hint, step in variants.items():
        v_losses, v_model = _trajectory(model, batches, step)
        if _same_params(learner, v_model) and all(abs(a - b) <= 1e-4 for a, b in zip(losses, v_losses)):
            raise Fail(hint)
    raise Fail("after 3 steps the losses or weights differ from the reference: forward, cross-entropy, "
               "zero_grad, backward, clip_grad_norm_, step, return loss.item()")
