"""Lesson 12: the response-only mask and loss, and a LoRA linear layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptcourse import finetune


def mask_from_t(prompt_lengths, T):  # leaves out the first response target
    return torch.arange(T)[None, :] >= prompt_lengths[:, None]


def mask_inverted(prompt_lengths, T):  # marks the prompt instead of the response
    return ~finetune.response_mask(prompt_lengths, T)


def mask_as_float(prompt_lengths, T):
    return finetune.response_mask(prompt_lengths, T).float()


def _per_target(logits, targets):
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), reduction="none").view(B, T)


def loss_over_all_tokens(logits, targets, prompt_lengths):
    mask = finetune.response_mask(prompt_lengths, targets.shape[1])
    return (_per_target(logits, targets) * mask).sum() / mask.numel()


def loss_without_mask(logits, targets, prompt_lengths):
    return _per_target(logits, targets).mean()


def loss_row_by_row(logits, targets, prompt_lengths):
    mask = finetune.response_mask(prompt_lengths, targets.shape[1]).float()
    return ((_per_target(logits, targets) * mask).sum(1) / mask.sum(1)).mean()


def loss_off_by_one(logits, targets, prompt_lengths):
    return _per_target(logits, targets)[mask_from_t(prompt_lengths, targets.shape[1])].mean()


class LoRANoScale(finetune.LoRALinear):
    def forward(self, x):
        return self.base(x) + x @ self.lora_A.T @ self.lora_B.T

    def merged_weight(self):
        return self.base.weight + self.lora_B @ self.lora_A


class LoRATrainableBase(finetune.LoRALinear):
    def __init__(self, base, r, alpha, generator=None):
        super().__init__(base, r, alpha, generator)
        self.base.requires_grad_(True)


class LoRARandomB(finetune.LoRALinear):
    def __init__(self, base, r, alpha, generator=None):
        super().__init__(base, r, alpha, generator)
        with torch.no_grad():
            self.lora_B.normal_(0.0, 0.02)


class LoRAZeroA(finetune.LoRALinear):
    def __init__(self, base, r, alpha, generator=None):
        super().__init__(base, r, alpha, generator)
        with torch.no_grad():
            self.lora_A.zero_()


class LoRAMergedWithoutScale(finetune.LoRALinear):
    def merged_weight(self):
        return self.base.weight + self.lora_B @ self.lora_A


class LoRAPlainTensors(nn.Module):  # A and B stored as plain tensors: nothing trains
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = torch.randn(r, base.in_features)
        self.lora_B = torch.zeros(base.out_features, r)


GOOD = {
    "finetune.response_mask": finetune.response_mask,
    "finetune.response_loss": finetune.response_loss,
    "finetune.lora_linear": finetune.LoRALinear,
}

WRONG = [
    ("finetune.response_mask", mask_from_t, "first response token is left out"),
    ("finetune.response_mask", lambda P, T: torch.arange(T)[None, :] + 2 >= P[:, None], "last prompt token"),
    ("finetune.response_mask", mask_inverted, "wrong way round"),
    ("finetune.response_mask", mask_as_float, "torch.bool"),
    ("finetune.response_loss", loss_over_all_tokens, "not by B * T"),
    ("finetune.response_loss", loss_without_mask, "prompt's targets too"),
    ("finetune.response_loss", loss_row_by_row, "row by row"),
    ("finetune.response_loss", loss_off_by_one, "first response token is left out"),
    ("finetune.lora_linear", LoRANoScale, "not scaled by alpha / r"),
    ("finetune.lora_linear", LoRATrainableBase, "freeze the base layer"),
    ("finetune.lora_linear", LoRARandomB, "lora_B should start at zero"),
    ("finetune.lora_linear", LoRAZeroA, "lora_A should start random"),
    ("finetune.lora_linear", LoRAMergedWithoutScale, "not scaled by alpha / r"),
    ("finetune.lora_linear", LoRAPlainTensors, "nn.Parameters that train"),
]
