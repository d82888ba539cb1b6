"""The pieces of training that lesson 08 writes by hand: the schedule, the loss, the optimiser, one step,
and the evaluation. `gptcourse.train.train` runs the same pieces in a loop.

`train_step` is the whole idea: forward, loss, clear the old gradients, backward, clip, step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, get_batch
from .precision import autocast, resolve_dtype
from .recipes import TrainConfig

__all__ = ["get_lr", "loss_fn", "configure_optimizer", "train_step", "estimate_loss", "split_loss", "unwrap"]


def get_lr(it: int, *, learning_rate: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """The rate at step `it`: linear warmup, then a cosine from learning_rate down to min_lr, then min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    span = lr_decay_iters - warmup_iters
    ratio = (it - warmup_iters) / span if span > 0 else 0.0  # 0 -> 1 across the decay
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token predictions: logits (B, T, V), targets (B, T) -> a scalar."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T))  # (B*T, V) vs (B*T,)


def configure_optimizer(model: nn.Module, cfg: TrainConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW over the parameters that train (requires_grad), decaying only matrices: not biases or LayerNorm gains.

    Fused AdamW (one kernel for all parameters) on CUDA and on the CPU, where it measured faster than the
    default multi-tensor path on this course's models.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # a tied matrix appears once; frozen ones never
    if not params:
        raise ValueError("no parameter of the model requires a gradient: unfreeze at least one to train")
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device_type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=fused)


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float = 1.0
) -> float:
    """One optimiser step on one batch: x, y (B, T) -> the batch's loss before the step."""
    logits = model(x)  # (B, T) -> (B, T, V)
    loss = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # d loss / d every parameter
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
    block_size: int | None = None,
) -> dict[str, float]:
    """Mean loss over cfg.eval_iters random batches of each split, in eval mode (no dropout).

    Batches are block_size tokens long: the model's `config.block_size` unless given.
    """
    raw = unwrap(model)
    block_size = block_size or raw.config.block_size
    device = next(raw.parameters()).device
    dtype = resolve_dtype(cfg.dtype, device)
    was_training = raw.training
    raw.eval()
    out = {}
    try:
        for split, data in (("train", dataset.train), ("val", dataset.val)):
            losses = torch.zeros(cfg.eval_iters, device=device)
            for i in range(cfg.eval_iters):
                x, y = get_batch(data, block_size, cfg.batch_size, generator, device)  # (B, T) each
                with autocast(device, dtype):
                    losses[i] = loss_fn(raw(x), y)
            out[split] = losses.mean().item()  # one sync per split
    finally:
        raw.train(was_training)
    return out


@torch.no_grad()
def split_loss(model: nn.Module, tokens: torch.Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token loss over all of `tokens` (1-D), cut into consecutive windows of block_size, in float32.

    Every window is read once, so the number has no sampling noise: two models are compared on exactly the
    same characters.
    """
    n = (len(tokens) - 1) // block_size
    if n < 1:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(tokens)}: they make no window of "
                         "block_size + 1")
    device = next(model.parameters()).device
    x = tokens[: n * block_size].view(n, block_size).long()  # (n, T)
    y = tokens[1 : n * block_size + 1].view(n, block_size).long()  # (n, T): the next character of each
    was_training, total = model.training, 0.0
    model.eval()
    try:
        for i in range(0, n, batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            logits = model(xb).float()  # (B, T, V)
            total += F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum").item()
    finally:
        model.train(was_training)
    return total / (n * block_size)
