"""gptcourse.step: the schedule, the loss, the optimiser groups, one step, and the evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from gptcourse import GPT
from gptcourse.data import load_dataset
from gptcourse.recipes import TrainConfig
from gptcourse.step import configure_optimizer, estimate_loss, get_lr, loss_fn, train_step

TEXT = "".join(f"{i} little pigs went to market, said the {i % 7}th goose.\n" for i in range(400))
SCHED = dict(learning_rate=1e-3, warmup_iters=10, lr_decay_iters=100, min_lr=1e-4)


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    return load_dataset("char", text=TEXT)


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


def test_optimizer_leaves_frozen_parameters_out(tiny_config):
    model = GPT(tiny_config)
    model.transformer.h.requires_grad_(False)  # every block frozen; embeddings and final norm train
    opt = configure_optimizer(model, TrainConfig(), "cpu")
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert trained == {id(p) for p in model.parameters() if p.requires_grad}
    assert trained and not any(id(p) in trained for p in model.transformer.h.parameters())
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter of the model requires a gradient"):
        configure_optimizer(model, TrainConfig(), "cpu")
