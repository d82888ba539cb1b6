"""gptcourse.finetune: freezing, LoRA (equal to its merged weight), the response-only loss, text_loss."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptcourse import GPT, GPTConfig
from gptcourse import finetune as ft

CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(CFG)


def test_freeze_all_but_trains_only_the_named_parts_and_a_tied_head_by_either_name():
    model = ft.freeze_all_but(tiny_gpt(), ["transformer.h.1", "lm_head"])
    training = {n for n, p in model.named_parameters() if p.requires_grad}
    assert training and all(n.startswith(("transformer.h.1", "transformer.wte")) for n in training)
    assert "transformer.wte.weight" in training  # lm_head.weight is the tied embedding
    trainable, total = ft.trainable_count(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if n in training)
    assert total == model.num_parameters()


def test_lora_starts_as_its_base_layer_trains_only_a_and_b_and_equals_its_merged_weight():
    base = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    layer = ft.LoRALinear(base, r=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(layer(x), base(x))
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    with torch.no_grad():
        layer.lora_B.normal_()
    torch.testing.assert_close(layer(x), F.linear(x, layer.merged_weight(), base.bias))
    torch.testing.assert_close(layer.merged_weight(), base.weight + 2.0 * layer.lora_B @ layer.lora_A)


def test_add_lora_then_merge_gives_the_same_outputs_and_plain_layers_again():
    model = ft.add_lora(tiny_gpt(), r=2, alpha=4.0, targets=["c_attn", "c_fc"],
                        generator=torch.Generator().manual_seed(0))
    lora = [m for m in model.modules() if isinstance(m, ft.LoRALinear)]
    assert len(lora) == 2 * CFG.n_layer
    assert {n.split(".")[-1] for n, p in model.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}
    with torch.no_grad():
        for m in lora:
            m.lora_B.normal_(0.0, 0.1)
    idx = torch.randint(0, CFG.vocab_size, (2, CFG.block_size))
    before = model(idx)
    merged = ft.merge_lora(copy.deepcopy(model))
    assert not any(isinstance(m, ft.LoRALinear) for m in merged.modules())
    torch.testing.assert_close(merged(idx), before, atol=1e-5, rtol=1e-5)


def test_add_lora_refuses_names_that_match_nothing():
    with pytest.raises(ValueError, match="no nn.Linear"):
        ft.add_lora(tiny_gpt(), 2, 4.0, targets=["nothing_here"])


def test_the_response_mask_starts_at_the_target_that_is_the_first_response_token():
    mask = ft.response_mask(torch.tensor([1, 3]), 5)  # targets are tokens 1..5
    assert mask.tolist() == [[True] * 5, [False, False, True, True, True]]


def test_response_loss_is_the_mean_over_response_targets_and_ignores_the_prompt():
    logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    P = torch.tensor([2, 4])
    per = F.cross_entropy(logits.reshape(10, 7), targets.reshape(10), reduction="none").view(2, 5)
    want = torch.cat([per[0, 1:], per[1, 3:]]).mean()
    torch.testing.assert_close(ft.response_loss(logits, targets, P), want)
    changed = logits.clone()
    changed[1, :3] = torch.randn(3, 7)  # the prompt's predictions do not count
    torch.testing.assert_close(ft.response_loss(changed, targets, P), want)


def test_text_loss_is_the_mean_cross_entropy_over_consecutive_windows():
    model = tiny_gpt()
    ids = torch.randint(0, CFG.vocab_size, (3 * CFG.block_size + 4,))
    T = CFG.block_size
    x, y = ids[: 3 * T].view(3, T), ids[1 : 3 * T + 1].view(3, T)
    model.eval()
    want = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    assert ft.text_loss(model, ids, batch_size=2) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="no window"):
        ft.text_loss(model, ids[:T])
