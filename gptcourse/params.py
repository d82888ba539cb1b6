"""Counting a GPT's parameters from its config alone, by where they sit."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from .config import GPTConfig

__all__ = ["ParamBreakdown", "count_parameters", "model_breakdown"]


@dataclass(frozen=True)
class ParamBreakdown:
    token_embedding: int
    position_embedding: int
    attention: int
    feed_forward: int
    norms: int
    head: int  # 0 when tied: the head reuses the token embedding

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def count_parameters(config: GPTConfig) -> ParamBreakdown:
    """The parameter count by component. 12 * n_layer * d^2 is attention + MLP weights without biases."""
    d, L, V, b = config.n_embd, config.n_layer, config.vocab_size, int(config.bias)
    attention = L * (d * 3 * d + 3 * d * b + d * d + d * b)  # c_attn (q, k, v) and c_proj
    feed_forward = L * (d * 4 * d + 4 * d * b + 4 * d * d + d * b)  # c_fc and c_proj
    n_norms = 2 * L + (1 if config.norm_placement == "pre" else 0)  # ln_1, ln_2 per block, ln_f
    return ParamBreakdown(
        token_embedding=V * d,
        position_embedding=config.block_size * d if config.pos_encoding == "learned" else 0,
        attention=attention,
        feed_forward=feed_forward,
        norms=n_norms * d * (1 + b),  # a weight (and a bias) per channel
        head=0 if config.tie_weights else V * d,
    )


def model_breakdown(model: nn.Module) -> ParamBreakdown:
    """The same breakdown read off a built GPT by parameter names (shared tensors counted once)."""
    sums = dict.fromkeys(("token_embedding", "position_embedding", "attention", "feed_forward", "norms", "head"), 0)
    for name, p in model.named_parameters():  # named_parameters() yields a tied tensor once
        if ".wte." in name:
            key = "token_embedding"
        elif ".wpe." in name:
            key = "position_embedding"
        elif ".attn." in name:
            key = "attention"
        elif ".mlp." in name:
            key = "feed_forward"
        elif ".ln_" in name:
            key = "norms"
        elif name.startswith("lm_head"):
            key = "head"
        else:
            raise ValueError(f"parameter {name!r} belongs to no known component")
        sums[key] += p.numel()
    return ParamBreakdown(**sums)
