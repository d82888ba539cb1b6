"""Lesson 08: batches, the learning-rate schedule, one training step, the training loop."""

from __future__ import annotations

import torch

from gptcourse import data, step
from gptcourse.data import get_batch as data_get_batch


def get_batch(d, T, B, generator=None):
    return data.get_batch(d, T, B, generator=generator)


def get_batch_y_is_x(d, T, B, generator=None):
    x, _ = data.get_batch(d, T, B, generator=generator)
    return x, x.clone()


def get_batch_global_rng(d, T, B, generator=None):
    return data.get_batch(d, T, B, generator=None)


def lr_warmup_without_plus_one(it, *, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    return step.get_lr(it, learning_rate=learning_rate, warmup_iters=warmup_iters,
                       lr_decay_iters=lr_decay_iters, min_lr=min_lr)


def lr_decays_to_zero(it, *, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    return step.get_lr(it, learning_rate=learning_rate, warmup_iters=warmup_iters,
                       lr_decay_iters=lr_decay_iters, min_lr=0.0)


def step_no_zero_grad(model, opt, x, y, grad_clip=1.0):
    loss = step.loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def step_no_clip(model, opt, x, y, grad_clip=1.0):
    return step.train_step(model, opt, x, y, grad_clip=0.0)


def step_no_step(model, opt, x, y, grad_clip=1.0):
    loss = step.loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    return loss.item()


def step_returns_tensor(model, opt, x, y, grad_clip=1.0):
    step.train_step(model, opt, x, y, grad_clip)
    return step.loss_fn(model(x), y)


def loop(model, optimizer, data, cfg, block_size, *, schedule="before", zero_grad=True, clip=True,
         stream="once", train_mode=True, seed_global=True, steps=None, item=True):
    """The training loop as train() runs it; each keyword switches on one mistake learners make."""
    if seed_global:
        torch.manual_seed(cfg.seed)
    if train_mode:
        model.train()
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for it in range(cfg.max_iters if steps is None else steps):
        lr = step.get_lr(it, learning_rate=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                         lr_decay_iters=cfg.lr_decay_iters, min_lr=cfg.min_lr)
        if schedule == "before":
            for group in optimizer.param_groups:
                group["lr"] = lr
        if stream == "every step":
            generator = torch.Generator().manual_seed(cfg.seed)
        x, y = data_get_batch(data, block_size, cfg.batch_size, None if stream == "global" else generator)
        loss = step.loss_fn(model(x), y)
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if schedule != "no step":
            optimizer.step()
        if schedule == "after":
            for group in optimizer.param_groups:
                group["lr"] = lr
        losses.append(loss.item() if item else loss)
    return losses


def loop_with_train_step(model, optimizer, data, cfg, block_size):
    """The exercise's solution: the learner's train_step (here the package's) inside the scheduled loop."""
    torch.manual_seed(cfg.seed)
    model.train()
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for it in range(cfg.max_iters):
        for group in optimizer.param_groups:
            group["lr"] = step.get_lr(it, learning_rate=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                                      lr_decay_iters=cfg.lr_decay_iters, min_lr=cfg.min_lr)
        x, y = get_batch(data, block_size, cfg.batch_size, generator)
        losses.append(step.train_step(model, optimizer, x, y, cfg.grad_clip))
    return losses


def loop_with(**mistake):
    return lambda model, optimizer, data, cfg, block_size: loop(model, optimizer, data, cfg, block_size, **mistake)


GOOD = {
    "train.get_batch": get_batch,
    "train.get_lr": step.get_lr,
    "train.step": step.train_step,
    "train.loop": loop_with_train_step,
}

WRONG = [
    ("train.get_batch", get_batch_y_is_x, "shifted by one"),
    ("train.get_batch", get_batch_global_rng, "generator you are given"),
    ("train.get_batch", lambda d, T, B, g=None: get_batch(d, T, B, g)[0], "pair (x, y)"),
    ("train.get_batch", lambda d, T, B, g=None: tuple(t.int() for t in get_batch(d, T, B, g)), "int64"),
    ("train.get_lr", lr_warmup_without_plus_one, "(it + 1) / (warmup_iters + 1)"),
    ("train.get_lr", lr_decays_to_zero, "ends at min_lr"),
    ("train.step", step_no_zero_grad, "zero_grad"),
    ("train.step", step_no_clip, "not clipped"),
    ("train.step", step_no_step, "optimizer.step()"),
    ("train.step", step_returns_tensor, "loss.item()"),
    ("train.loop", loop_with(schedule=None), "never changes"),
    ("train.loop", loop_with(schedule="after"), "after optimizer.step()"),
    ("train.loop", loop_with(zero_grad=False), "zero_grad"),
    ("train.loop", loop_with(clip=False), "not clipped"),
    ("train.loop", loop_with(stream="every step"), "same batch"),
    ("train.loop", loop_with(stream="global"), "global generator"),
    ("train.loop", loop_with(train_mode=False), "model.train()"),
    ("train.loop", loop_with(seed_global=False), "torch.manual_seed(cfg.seed)"),
    ("train.loop", loop_with(schedule="no step"), "optimizer.step()"),
    ("train.loop", loop_with(steps=3), "one loss per step"),
    ("train.loop", loop_with(item=False), "loss.item()"),
]
