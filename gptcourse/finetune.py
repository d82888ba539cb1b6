"""Fine-tuning (lesson 12): the same model, new data, and a choice of which weights may move.

- `freeze_all_but` trains only the named parts (the last block and the head, say);
- `LoRALinear` and `add_lora` keep every pretrained matrix frozen and learn a low-rank update beside it
  (Hu et al. 2021), which `merge_lora` folds back into the matrix, so the tuned model costs nothing extra;
- `response_mask` and `response_loss` are instruction tuning's objective: the next-token loss counted on
  the response's tokens only, never on the prompt's;
- `text_loss` measures a model on a whole text, window after window, the same numbers on every call.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .step import split_loss

__all__ = ["freeze_all_but", "trainable_count", "LoRALinear", "add_lora", "merge_lora", "response_mask",
           "response_loss", "text_loss"]


def freeze_all_but(model: nn.Module, prefixes: Iterable[str]) -> nn.Module:
    """Freeze every parameter except those whose name starts with one of `prefixes`; returns the model.

    A tied matrix has two names (the GPT's `lm_head.weight` is `transformer.wte.weight`): it trains when
    either name is listed.
    """
    prefixes = tuple(prefixes)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, p in model.named_parameters(remove_duplicate=False):
        if name.startswith(prefixes):
            p.requires_grad_(True)
    return model


def trainable_count(model: nn.Module) -> tuple[int, int]:
    """(numbers that train, all numbers) of the model, a tied matrix counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable rank-r update: base(x) + (alpha / r) * x A^T B^T.

    A (r, in) starts random and B (out, r) at zero, so the layer starts as exactly the base layer and the
    update grows from nothing. alpha / r keeps the update's size steady when r changes.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        if r < 1:
            raise ValueError(f"the rank r must be >= 1, got {r}")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        w = base.weight
        A = torch.randn(r, base.in_features, generator=generator) / base.in_features**0.5  # (r, in): unit-size outputs
        self.lora_A = nn.Parameter(A.to(device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))  # (out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = x @ self.lora_A.T @ self.lora_B.T  # (..., in) @ (in, r) @ (r, out) -> (..., out)
        return self.base(x) + self.scale * update

    def merged_weight(self) -> torch.Tensor:
        """The one (out, in) matrix this layer applies: W + (alpha / r) B A."""
        return self.base.weight + self.scale * self.lora_B @ self.lora_A  # (out, r) @ (r, in) -> (out, in)


def add_lora(model: nn.Module, r: int, alpha: float, targets: Iterable[str],
             generator: torch.Generator | None = None) -> nn.Module:
    """Freeze the whole model and wrap each nn.Linear whose name ends with one of `targets` in a LoRALinear."""
    targets = tuple(targets)
    model.requires_grad_(False)
    chosen = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.endswith(targets)]
    if not chosen:
        raise ValueError(f"no nn.Linear in the model has a name ending with one of {targets}")
    for name, layer in chosen:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, LoRALinear(layer, r, alpha, generator))
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its base layer holding the merged weight: the same outputs, no extra work."""
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            m.base.weight.copy_(m.merged_weight())
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, m.base)
    return model


def response_mask(prompt_lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Which targets belong to the response: prompt_lengths (B,) -> (B, T) bool.

    Row b holds T + 1 tokens, its prompt's prompt_lengths[b] first; the inputs are tokens 0..T-1 and the
    targets tokens 1..T, so target t is token t + 1, a response token when t + 1 >= prompt_lengths[b].
    """
    t = torch.arange(T, device=prompt_lengths.device)  # (T,)
    return t[None, :] + 1 >= prompt_lengths[:, None]  # (1, T) vs (B, 1) -> (B, T)


def response_loss(logits: torch.Tensor, targets: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the response targets only: logits (B, T, V), targets (B, T) -> a scalar."""
    B, T, V = logits.shape
    per_target = F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T), reduction="none")
    mask = response_mask(prompt_lengths, T)  # (B, T)
    return per_target.view(B, T)[mask].mean()  # the mean over response targets, not over all B * T


def text_loss(model: nn.Module, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token loss over ids (N,), cut into consecutive windows of the model's block_size (eval mode)."""
    return split_loss(model, ids, model.config.block_size, batch_size)
