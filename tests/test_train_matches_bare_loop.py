"""Lesson 08's claim: a bare loop written by hand equals `gptcourse.train.train`, loss for loss, in float32.

The loop below is the lesson's (and the train.loop check's): seed the global generator (initial weights,
dropout masks) and one batch generator with cfg.seed, then per step set the scheduled rate, draw a batch,
forward, loss, zero_grad, backward, clip, step. A change inside the trainer that breaks this equality
(another order of random draws, another optimiser setting) fails here before it reaches the lesson.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gptcourse import GPT
from gptcourse.data import load_dataset
from gptcourse.recipes import RECIPES
from gptcourse.train import train

TEXT = "".join(f"{i} little pigs went to market, said the {i % 7}th goose.\n" for i in range(400))
STEPS = 20
TOLERANCE = 1e-6  # float32 on the CPU: the same operations in the same order give the same bits


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, and steady when the CPU is shared
    yield
    torch.set_num_threads(threads)


def scheduled_lr(it, cfg):
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


def bare_loop(model_config, cfg, data):
    torch.manual_seed(cfg.seed)  # the initial weights, as train() draws them
    model = GPT(model_config)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": cfg.weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=True,
    )
    batches = torch.Generator().manual_seed(cfg.seed)  # the batch stream
    torch.manual_seed(cfg.seed)  # dropout's masks
    model.train()
    losses = []
    T = model_config.block_size
    for it in range(cfg.max_iters):
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(it, cfg)
        starts = torch.randint(len(data) - T, (cfg.batch_size,), generator=batches)  # (B,)
        x = torch.stack([data[s : s + T] for s in starts.tolist()])  # (B, T)
        y = torch.stack([data[s + 1 : s + 1 + T] for s in starts.tolist()])  # (B, T)
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (B*T, V) against (B*T,)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
    return losses, model


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_bare_loop_equals_train_loss_for_loss(tmp_path, dropout):
    dataset = load_dataset("char", text=TEXT)
    recipe = RECIPES["tiny"]
    model_config = recipe.model.replace(vocab_size=dataset.tokenizer.vocab_size, block_size=16, dropout=dropout)
    cfg = recipe.train.replace(max_iters=STEPS, lr_decay_iters=STEPS, warmup_iters=4, eval_interval=STEPS,
                               log_interval=1, dtype="float32", device="cpu", out_dir=str(tmp_path / "run"))
    result = train(model_config, cfg, dataset=dataset, progress=False)
    losses, model = bare_loop(model_config, cfg, dataset.train)
    assert [row["iter"] for row in result.history] == list(range(STEPS))
    assert [row["train_loss"] for row in result.history] == pytest.approx(losses, rel=0, abs=TOLERANCE)
    for mine, theirs in zip(model.parameters(), result.model.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=TOLERANCE)
