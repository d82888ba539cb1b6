"""gptcourse.train: the schedule, the loss, the optimiser groups, one step, and the trainer loop."""

from __future__ import annotations

import json
import math

import pytest
import torch

import gptcourse.train as train_mod
from gptcourse import GPT
from gptcourse.data import get_batch, load_dataset
from gptcourse.train import (
    PRESETS,
    TrainConfig,
    configure_optimizer,
    estimate_loss,
    get_lr,
    load_checkpoint,
    loss_fn,
    train,
    train_step,
    trained_model,
)

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
    model = PRESETS["tiny"].model.replace(vocab_size=dataset.tokenizer.vocab_size, block_size=16)
    cfg = PRESETS["tiny"].train.replace(out_dir=str(tmp_path / "run"), **changes)
    return model, cfg


def test_lr_warmup_is_linear_from_a_small_start():
    lrs = [get_lr(i, **SCHED) for i in range(10)]
    assert lrs[0] == pytest.approx(1e-3 / 11) and lrs[9] == pytest.approx(1e-3 * 10 / 11)
    assert all(b - a == pytest.approx(1e-3 / 11) for a, b in zip(lrs, lrs[1:]))


def test_lr_cosine_decays_monotonically_to_min():
    assert get_lr(10, **SCHED) == pytest.approx(1e-3)  # the top, right after warmup
    assert get_lr(55, **SCHED) == pytest.approx((1e-3 + 1e-4) / 2)  # halfway: the mean
    assert get_lr(100, **SCHED) == pytest.approx(1e-4)
    assert get_lr(101, **SCHED) == get_lr(5000, **SCHED) == 1e-4
    lrs = [get_lr(i, **SCHED) for i in range(10, 101)]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))


def test_lr_without_warmup_or_decay_span():
    assert get_lr(0, learning_rate=1.0, warmup_iters=0, lr_decay_iters=0, min_lr=0.1) == 1.0
    assert get_lr(1, learning_rate=1.0, warmup_iters=0, lr_decay_iters=0, min_lr=0.1) == 0.1


def test_loss_fn_is_cross_entropy_per_token():
    logits = torch.randn(2, 3, 5)
    targets = torch.randint(5, (2, 3))
    manual = -logits.log_softmax(-1).gather(-1, targets[..., None]).mean()
    assert loss_fn(logits, targets).item() == pytest.approx(manual.item(), rel=1e-6)
    uniform = loss_fn(torch.zeros(4, 8, 65), torch.randint(65, (4, 8)))
    assert uniform.item() == pytest.approx(math.log(65), rel=1e-6)  # knowing nothing costs ln(V)


def test_optimizer_decays_matrices_only(tiny_config):
    model = GPT(tiny_config.replace(bias=True))
    opt = configure_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == model.num_parameters()  # every parameter once, the tied matrix included
    assert any(p is model.lm_head.weight for p in decay["params"])


def test_train_step_lowers_the_loss_on_one_batch(tiny_config):
    model = GPT(tiny_config)
    opt = configure_optimizer(model, TrainConfig(learning_rate=3e-3, weight_decay=0.0), "cpu")
    x = torch.randint(tiny_config.vocab_size, (4, 16))
    y = torch.roll(x, -1, dims=1)
    losses = [train_step(model, opt, x, y) for _ in range(30)]
    assert isinstance(losses[0], float)
    assert losses[-1] < losses[0] - 1.0  # it memorises the batch


def test_train_step_clips(tiny_config):
    model = GPT(tiny_config)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randint(tiny_config.vocab_size, (2, 8))
    train_step(model, opt, x, x, grad_clip=1e-3)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert moved.norm().item() == pytest.approx(1e-3, rel=1e-3)  # lr 1 x the clipped gradient norm


def test_estimate_loss_is_repeatable_and_restores_train_mode(dataset, tiny_config):
    model = GPT(tiny_config.replace(vocab_size=dataset.tokenizer.vocab_size, dropout=0.1))
    cfg = TrainConfig(batch_size=4, eval_iters=3)
    a = estimate_loss(model, dataset, cfg, torch.Generator().manual_seed(0))
    b = estimate_loss(model, dataset, cfg, torch.Generator().manual_seed(0))
    assert a == b and set(a) == {"train", "val"} and model.training
    assert abs(a["val"] - math.log(dataset.tokenizer.vocab_size)) < 0.5  # untrained: about ln(V)


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


def test_train_config_validates():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(learning_rate=1e-3, min_lr=1e-2)
    cfg = TrainConfig(max_iters=7)
    assert TrainConfig.from_dict({**cfg.to_dict(), "gone_field": 1}) == cfg


def test_presets():
    assert set(PRESETS) >= {"shakespeare-cpu", "shakespeare-char", "nanogpt-cpu", "tiny"}
    nano = PRESETS["nanogpt-cpu"]
    assert (nano.model.block_size, nano.model.n_layer, nano.model.n_head, nano.model.n_embd) == (64, 4, 4, 128)
    assert not nano.model.bias and nano.model.dropout == 0.0
    t = nano.train
    assert (t.batch_size, t.learning_rate, t.max_iters, t.lr_decay_iters, t.min_lr, t.beta2) == (
        12, 1e-3, 2000, 2000, 1e-4, 0.99)
    assert PRESETS["shakespeare-char"].model.n_embd == 384 and PRESETS["shakespeare-char"].model.block_size == 256


def test_trained_model_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_FAST", "1")
    model, tok = trained_model("tiny")
    assert (tmp_path / "runs" / "tiny-fast" / "ckpt.pt").is_file()
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("trained again instead of loading"))
    again, tok2 = trained_model("tiny")
    assert tok2 == tok and not again.training
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown preset"):
        trained_model("huge")


def test_bf16_autocast_on_cpu_trains(dataset, tmp_path):
    """The CPU bf16 path (used by dtype="auto" on CPUs with native bf16 matmuls) learns like float32."""
    model_cfg, cfg = tiny(dataset, tmp_path, max_iters=30, lr_decay_iters=30, eval_interval=30)
    fp32 = train(model_cfg, cfg, dataset=dataset, progress=False)
    bf16 = train(model_cfg, cfg.replace(dtype="bfloat16", out_dir=str(tmp_path / "bf16")), dataset=dataset,
                 progress=False)
    first, last = bf16.history[0]["train_loss"], bf16.history[-1]["train_loss"]
    assert last < first - 0.3  # it learns
    assert abs(bf16.history[-1]["val_loss"] - fp32.history[-1]["val_loss"]) < 0.05  # and as well as float32
