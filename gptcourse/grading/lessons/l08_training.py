"""Lesson 08: batches, the learning-rate schedule, one training step, the training loop.

References: gptcourse.data.get_batch, gptcourse.step (get_lr, train_step) and gptcourse.train.train.
"""

from __future__ import annotations

import copy
import math
import tempfile

import torch

from ...config import GPTConfig
from ...data import Dataset
from ...data import get_batch as ref_get_batch
from ...model import GPT
from ...recipes import TrainConfig
from ...step import configure_optimizer, loss_fn
from ...step import get_lr as ref_get_lr
from ...step import train_step as ref_step
from ...tokenizers import CharTokenizer
from ...train import train as package_train
from ..core import Context, register
from ..tools import Fail, call, expect_number, expect_tensor

DRAW = ("draw the starts with the generator you are given: "
        "torch.randint(len(data) - block_size, (batch_size,), generator=generator)")


@register("train.get_batch", lesson=8, title="get_batch function")
def get_batch(fn, ctx: Context) -> str:
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
    return "warmup, cosine to min_lr, then min_lr: equal to gptcourse.step.get_lr at every step"


def _tiny_gpt(ctx: Context) -> GPT:
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)
    torch.manual_seed(ctx.seed)  # model init draws from the global generator; the runner restores it afterwards
    return GPT(cfg)


def _trajectory(model: GPT, batches, step) -> tuple[list[float], GPT]:
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [step(model, opt, x, y) for x, y in batches]
    return losses, model


def _weights(model: GPT) -> list[torch.Tensor]:
    return [p.detach() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(p.shape == q.shape and torch.allclose(p, q, atol=atol, rtol=1e-4)
                                    for p, q in zip(a, b))


@register("train.step", lesson=8, title="train_step function", timeout=30.0)
def train_step(fn, ctx: Context) -> str:
    model = _tiny_gpt(ctx)
    clip = 0.05  # small enough that clipping changes every step
    batches = [(ctx.randint(0, 13, (4, 8)), ctx.randint(0, 13, (4, 8))) for _ in range(3)]
    learner = copy.deepcopy(model)
    opt = torch.optim.AdamW(learner.parameters(), lr=1e-2)
    losses = []
    for x, y in batches:
        out = call(fn, learner, opt, x, y, clip, names=("model", "optimizer", "x", "y"), grad=True, mutable=(0, 1))
        if isinstance(out, torch.Tensor):
            raise Fail("return loss.item(), a Python float, not the loss tensor (it keeps the whole graph alive)")
        losses.append(expect_number(out, "train_step(...)"))
    weights = call(lambda: list(learner.parameters()))  # plain copies of what the learner's steps made
    if _same(weights, _weights(model), atol=0.0):
        raise Fail("the parameters did not change: call optimizer.step() after loss.backward()")
    ref_losses, ref_model = _trajectory(model, batches, lambda m, o, x, y: ref_step(m, o, x, y, grad_clip=clip))
    if abs(losses[0] - ref_losses[0]) > 1e-4:
        raise Fail(f"the first loss is {losses[0]:.4f}, expected {ref_losses[0]:.4f}: "
                   "cross-entropy of logits (B*T, V) against targets (B*T,) before the step")
    if _same(weights, _weights(ref_model)) and all(abs(a - b) <= 1e-4 for a, b in zip(losses, ref_losses)):
        return "3 steps give the same losses and weights as gptcourse.step.train_step (clipping included)"

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
        if _same(weights, _weights(v_model)) and all(abs(a - b) <= 1e-4 for a, b in zip(losses, v_losses)):
            raise Fail(hint)
    raise Fail("after 3 steps the losses or weights differ from the reference: forward, cross-entropy, "
               "zero_grad, backward, clip_grad_norm_, step, return loss.item()")


# -- the training loop: the learner's loop against the package's trainer, loss for loss ----------------------

LOOP_VOCAB, LOOP_BLOCK = 13, 8


def _loop_problem(ctx: Context) -> tuple[GPTConfig, TrainConfig, torch.Tensor, GPT]:
    """A tiny GPT with dropout (so train and eval mode differ), a schedule that moves, clipping that bites."""
    steps = ctx.choice([10, 12])
    cfg = TrainConfig(batch_size=4, max_iters=steps, lr_decay_iters=steps, warmup_iters=ctx.choice([2, 3]),
                      learning_rate=ctx.choice([2e-2, 3e-2]), min_lr=2e-3, grad_clip=0.05, eval_interval=steps,
                      eval_iters=1, log_interval=1, device="cpu", dtype="float32",
                      seed=int(ctx.randint(0, 100_000, (1,))))
    model_config = GPTConfig(vocab_size=LOOP_VOCAB, block_size=LOOP_BLOCK, n_layer=1, n_head=2, n_embd=16,
                             dropout=0.1)
    data = ctx.randint(0, LOOP_VOCAB, (300,))  # (N,) token ids
    torch.manual_seed(ctx.seed)  # the runner restores the global generator afterwards
    return model_config, cfg, data, GPT(model_config)


def _package_run(model_config: GPTConfig, cfg: TrainConfig, data: torch.Tensor, model: GPT) -> tuple[list[float], GPT]:
    """The package's trainer on the same model, config and data: its loss at every step, and the model after."""
    tokenizer = CharTokenizer(chr(ord("a") + i) for i in range(LOOP_VOCAB))
    dataset = Dataset(train=data, val=data[:100], tokenizer=tokenizer)
    with tempfile.TemporaryDirectory() as out_dir:
        result = package_train(model_config, cfg.replace(out_dir=out_dir), model=copy.deepcopy(model),
                               dataset=dataset, progress=False)
    return [row["train_loss"] for row in result.history], result.model


def _reference_loop(model: GPT, optimizer, data: torch.Tensor, cfg: TrainConfig, block_size: int, *,
                    schedule: str = "before", zero_grad: bool = True, clip: bool = True, batches: str = "one stream",
                    train_mode: bool = True, seed_global: bool = True) -> list[float]:
    """The loop train() runs (with each flag: a mistake learners make)."""
    if seed_global:
        torch.manual_seed(cfg.seed)  # dropout's masks
    if train_mode:
        model.train()
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for it in range(cfg.max_iters):
        lr = ref_get_lr(it, learning_rate=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                        lr_decay_iters=cfg.lr_decay_iters, min_lr=cfg.min_lr)
        if schedule == "before":
            for group in optimizer.param_groups:
                group["lr"] = lr
        if batches == "new stream every step":
            generator = torch.Generator().manual_seed(cfg.seed)
        x, y = ref_get_batch(data, block_size, cfg.batch_size, None if batches == "global" else generator)
        loss = loss_fn(model(x), y)
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if schedule == "after":
            for group in optimizer.param_groups:
                group["lr"] = lr
        losses.append(loss.item())
    return losses


LOOP_MISTAKES = {
    "the learning rate never changes: at the start of every step set each param_group's 'lr' to get_lr(it, ...)":
        dict(schedule=None),
    "the rate is set after optimizer.step(), so step it runs at get_lr(it - 1): set it before the step":
        dict(schedule="after"),
    "gradients pile up from step to step: call optimizer.zero_grad(set_to_none=True) before backward()":
        dict(zero_grad=False),
    "the gradient is not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) between "
    "backward() and step()": dict(clip=False),
    "every step trains on the same batch: make the generator once, before the loop, not inside it":
        dict(batches="new stream every step"),
    "the batches come from torch's global generator: draw them with get_batch(..., generator) from "
    "torch.Generator().manual_seed(cfg.seed), made once before the loop": dict(batches="global"),
    "the model is in eval mode, so dropout is off: call model.train() before the loop (train() does)":
        dict(train_mode=False),
    "dropout's masks differ from the trainer's: call torch.manual_seed(cfg.seed) before the loop, as train() "
    "does": dict(seed_global=False),
}


def _close(a: list[float], b: list[float], tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(abs(p - q) <= tol for p, q in zip(a, b))


@register("train.loop", lesson=8, title="training loop function", timeout=60.0)
def train_loop(fn, ctx: Context) -> str:
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and steady on a busy CPU (the runner restores it)
    model_config, cfg, data, model = _loop_problem(ctx)
    learner = copy.deepcopy(model).eval()  # handed over as an evaluation leaves it
    optimizer = configure_optimizer(learner, cfg, "cpu")
    torch.manual_seed(cfg.seed + 1)  # a known global state: a loop that forgets to seed it is found out
    out = call(fn, learner, optimizer, data, cfg, LOOP_BLOCK, names=("model", "optimizer", "data", "cfg"),
               grad=True, mutable=(0, 1))
    steps = cfg.max_iters
    if not isinstance(out, (list, tuple)):
        raise Fail(f"return the list of losses, one per step (cfg.max_iters = {steps}); got a {type(out).__name__}")
    if any(isinstance(v, torch.Tensor) for v in out):
        raise Fail("return loss.item() for each step, Python floats, not loss tensors (they keep the graph alive)")
    if len(out) != steps:
        raise Fail(f"got {len(out)} losses for cfg.max_iters = {steps} steps: one loss per step, "
                   "for it in range(cfg.max_iters)")
    losses = [expect_number(v, f"loss {i}") for i, v in enumerate(out)]
    weights = call(lambda: list(learner.parameters()))
    if _same(weights, _weights(model), atol=0.0):
        raise Fail("the parameters never changed: call optimizer.step() after loss.backward() in every step")
    want, trained = _package_run(model_config, cfg, data, model)
    if _close(losses, want) and _same(weights, _weights(trained), atol=1e-4):
        gap = max(abs(a - b) for a, b in zip(losses, want))
        return (f"{steps} steps give the losses of gptcourse.train.train on the same seed, config and data "
                f"(largest difference {gap:.1e}), and the same weights")
    for hint, mistake in LOOP_MISTAKES.items():
        variant = copy.deepcopy(model).eval()
        torch.manual_seed(cfg.seed + 1)
        if _close(losses, _reference_loop(variant, configure_optimizer(variant, cfg, "cpu"), data, cfg, LOOP_BLOCK,
                                          **mistake)):
            raise Fail(hint)
    first = next((i for i, (a, b) in enumerate(zip(losses, want)) if abs(a - b) > 1e-4), None)
    if first == 0:
        raise Fail(f"the first loss is {losses[0]:.4f}, the trainer's {want[0]:.4f}: before the loop seed as train() "
                   "does (torch.manual_seed(cfg.seed); one torch.Generator().manual_seed(cfg.seed) for get_batch), "
                   "call model.train(), and take the cross-entropy of model(x) against y")
    if first is not None:
        raise Fail(f"steps 0..{first - 1} match the trainer, step {first} does not ({losses[first]:.4f} against "
                   f"{want[first]:.4f}): each step sets the rate, draws a batch, then forward, loss, zero_grad, "
                   "backward, clip, step")
    raise Fail("the losses match the trainer's but the weights after the last step do not: finish every step with "
               "optimizer.step(), including the last")
