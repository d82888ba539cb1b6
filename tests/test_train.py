"""gptcourse.train: the schedule, the loss, the optimiser groups, one step, and the trainer loop."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gptcourse import GPT
from gptcourse.checkpoint import load_checkpoint
from gptcourse.data import get_batch, load_dataset
from gptcourse.recipes import RECIPES
from gptcourse.step import configure_optimizer, get_lr, loss_fn, train_step
from gptcourse.train import train

TEXT = "".join(f"{i} little pigs went to market, said the {i % 7}th goose.\n" for i in range(400))
SCHED = dict(learning_rate=1e-3, warmup_iters=10, lr_decay_iters=100, min_lr=1e-4)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("char", text=TEXT)


def tiny(dataset, tmp_path, **changes):
    model = RECIPES["tiny"].model.replace(vocab_size=dataset.tokenizer.vocab_size, block_size=16)
    cfg = RECIPES["tiny"].train.replace(out_dir=str(tmp_path / "run"), **changes)
    return model, cfg


def test_trainer_loop_equals_repeated_train_step(dataset, tmp_path):
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=6, eval_interval=100)
    result = train(model_cfg, cfg, dataset=dataset, progress=False)
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg)
    opt = configure_optimizer(model, cfg, "cpu")
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for it in range(6):
        for group in opt.param_groups:
            group["lr"] = get_lr(it, learning_rate=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                                 lr_decay_iters=cfg.lr_decay_iters, min_lr=cfg.min_lr)
        x, y = get_batch(dataset.train, model_cfg.block_size, cfg.batch_size, gen)
        losses.append(train_step(model, opt, x, y, cfg.grad_clip))
    assert [r["train_loss"] for r in result.history] == pytest.approx(losses, rel=1e-6, abs=1e-6)
    for a, b in zip(model.parameters(), result.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_train_logs_rows_callbacks_and_learns(dataset, tmp_path):
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=30, eval_interval=15, log_interval=5, learning_rate=1e-2)
    seen = []
    result = train(model_cfg, cfg, dataset=dataset, callbacks=[seen.append], progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history == seen
    assert [r["iter"] for r in rows] == [0, 5, 10, 14, 15, 20, 25, 29]  # every 5th, and at each evaluation
    assert {"iter", "train_loss", "lr", "ms_per_iter", "tokens_per_s", "elapsed_s"} <= set(rows[0])
    assert "val_loss" not in rows[0] and all(a["elapsed_s"] <= b["elapsed_s"] for a, b in zip(rows, rows[1:]))
    assert "val_loss" in rows[3] and "val_loss" in rows[-1]
    assert rows[-1]["val_loss"] < rows[3]["val_loss"] < math.log(dataset.tokenizer.vocab_size)
    assert result.best_val_loss == min(r["val_loss"] for r in rows if "val_loss" in r)
    assert not result.model.training


def test_gradient_accumulation_matches_a_bigger_batch_on_step_one(dataset, tmp_path):
    """Two micro-batches of 4 give the mean of their losses; the first step's loss equals that mean."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=1, gradient_accumulation_steps=2, batch_size=4)
    result = train(model_cfg, cfg, dataset=dataset, progress=False)
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg)
    parts = [loss_fn(model(x), y).item() for x, y in
             (get_batch(dataset.train, 16, 4, torch.Generator().manual_seed(cfg.seed + m)) for m in range(2))]
    assert result.history[0]["train_loss"] == pytest.approx(sum(parts) / 2, rel=1e-5)


def test_train_refuses_to_replace_a_checkpoint(dataset, tmp_path):
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=2)
    train(model_cfg, cfg, dataset=dataset, progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(model_cfg, cfg, dataset=dataset, progress=False)
    train(model_cfg, cfg.replace(max_iters=3), dataset=dataset, progress=False, overwrite=True)
    assert load_checkpoint(tmp_path / "run").iter_num == 3


def test_train_refuses_a_vocabulary_too_small(dataset, tmp_path):
    model_cfg, cfg = tiny(dataset, tmp_path)
    with pytest.raises(ValueError, match="vocab_size"):
        train(model_cfg.replace(vocab_size=10), cfg, dataset=dataset, progress=False)


def test_resume_in_process_continues_exactly(dataset, tmp_path):
    """Stop at step 10, resume to 20: the same rows as one run of 20, dropout's random masks included."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=20, lr_decay_iters=20, eval_interval=5)
    model_cfg = model_cfg.replace(dropout=0.1)
    full = train(model_cfg, cfg.replace(out_dir=str(tmp_path / "full")), dataset=dataset, progress=False)
    train(model_cfg, cfg.replace(max_iters=10), dataset=dataset, progress=False)
    with pytest.raises(ValueError, match="dropout"):
        train(model_cfg.replace(dropout=0.0), cfg, dataset=dataset, progress=False, resume=True)
    resumed = train(model_cfg, cfg, dataset=dataset, progress=False, resume=True)
    timing = ("ms_per_iter", "tokens_per_s", "elapsed_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert len(full.history) == 20 and strip(resumed.history) == strip(full.history)


def test_bf16_autocast_on_cpu_trains(dataset, tmp_path):
    """The CPU bf16 path (used by dtype="auto" on CPUs with native bf16 matmuls) learns like float32."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=30, lr_decay_iters=30, eval_interval=30)
    fp32 = train(model_cfg, cfg, dataset=dataset, progress=False)
    bf16 = train(model_cfg, cfg.replace(dtype="bfloat16", out_dir=str(tmp_path / "bf16")), dataset=dataset,
                 progress=False)
    first, last = bf16.history[0]["train_loss"], bf16.history[-1]["train_loss"]
    assert last < first - 0.3  # it learns
    assert abs(bf16.history[-1]["val_loss"] - fp32.history[-1]["val_loss"]) < 0.05  # and as well as float32


class Bigram(nn.Module):
    """Lesson 08's baseline: the next token's logits read from a table by the current token alone."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)  # (B, T) -> (B, T, V)


def test_a_ready_model_trains_saves_and_resumes_exactly(dataset, tmp_path):
    """train(..., model=...) takes any (B, T) -> (B, T, V) module; its checkpoint resumes into the same class."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=20, lr_decay_iters=20, eval_interval=5, learning_rate=0.1)
    torch.manual_seed(0)
    whole = train(model_cfg, cfg.replace(out_dir=str(tmp_path / "whole")), model=Bigram(model_cfg.vocab_size),
                  dataset=dataset, progress=False)
    assert isinstance(whole.model, Bigram) and whole.history[-1]["val_loss"] < whole.history[0]["train_loss"] - 0.5
    torch.manual_seed(0)
    train(model_cfg, cfg.replace(max_iters=10), model=Bigram(model_cfg.vocab_size), dataset=dataset, progress=False)
    with pytest.raises(ValueError, match="holds a .*Bigram, this run trains a gptcourse.model.GPT"):
        train(model_cfg, cfg, dataset=dataset, progress=False, resume=True)
    resumed = train(model_cfg, cfg, model=Bigram(model_cfg.vocab_size), dataset=dataset, progress=False, resume=True)
    timing = ("ms_per_iter", "tokens_per_s", "elapsed_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert strip(resumed.history) == strip(whole.history)
    with pytest.raises(ValueError, match="pass an instance of that class"):
        load_checkpoint(tmp_path / "run")
    loaded = load_checkpoint(tmp_path / "run", model=Bigram(model_cfg.vocab_size))
    assert torch.equal(loaded.model.table.weight, whole.model.table.weight)


def test_frozen_parameters_stay_put(dataset, tmp_path):
    """Fine-tuning with some parameters frozen: only those that require a gradient change."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=5, eval_interval=5)
    model = GPT(model_cfg)
    model.transformer.h[0].requires_grad_(False)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = train(None, cfg, model=model, dataset=dataset, progress=False)  # the config is model.config
    after = dict(result.model.named_parameters())
    assert result.model is model and frozen and all(torch.equal(after[n], p) for n, p in frozen.items())
    assert all(not torch.equal(after[n], p) for n, p in trainable.items())
    with pytest.raises(ValueError, match="give a model_config"):
        train(None, cfg, model=Bigram(model_cfg.vocab_size), dataset=dataset, progress=False, overwrite=True)


def test_float16_trains_with_a_loss_scaler_and_resumes(dataset, tmp_path):
    """float16 (GPUs without bf16) needs a gradient scaler; its scale travels in the checkpoint."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=30, lr_decay_iters=30, eval_interval=10, dtype="float16")
    result = train(model_cfg, cfg, dataset=dataset, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.3
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
    more = train(model_cfg, cfg.replace(max_iters=35, lr_decay_iters=35), dataset=dataset, progress=False,
                 resume=True)
    assert [r["iter"] for r in more.history][-5:] == [30, 31, 32, 33, 34]
