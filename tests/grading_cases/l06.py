"""Lesson 06: LayerNorm, the pre-norm block as a function, and the block as a module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptcourse.attention import MultiHeadAttention
from gptcourse.mlp import MLP


def layer_norm(x, w, b, eps=1e-5, unbiased=False, eps_outside=False):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=unbiased)
    std = var.sqrt() + eps if eps_outside else torch.sqrt(var + eps)
    return (x - mean) / std * w + b


def pre_norm(x, a, m, l1, l2):
    x = x + a(l1(x))
    return x + m(l2(x))


def post_norm(x, a, m, l1, l2):
    x = l1(x + a(x))
    return l2(x + m(x))


def no_residual(x, a, m, l1, l2):
    return m(l2(a(l1(x))))


def norm_after(x, a, m, l1, l2):
    x = x + l1(a(x))
    return x + l2(m(x))


def one_norm(x, a, m, l1, l2):
    return pre_norm(x, a, m, l1, l1)


class LearnerLayerNorm(nn.Module):
    def __init__(self, n_embd, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None

    def forward(self, x):
        return layer_norm(x, self.weight, 0.0 if self.bias is None else self.bias)


class LearnerBlock(nn.Module):
    """A block as a learner writes it: `wiring` is the forward, `norms` how the LayerNorms are made and named."""

    def __init__(self, config, wiring=pre_norm, norms="two", ln_bias=True):
        super().__init__()
        C = config.n_embd
        self.wiring = wiring
        first = LearnerLayerNorm(C, ln_bias)
        if norms == "one":  # a single LayerNorm for both sub-layers
            self.ln = first
        elif norms == "renamed":
            self.norm1, self.norm2 = first, LearnerLayerNorm(C, ln_bias)
        else:
            self.ln_1 = first
            self.ln_2 = first if norms == "shared" else LearnerLayerNorm(C, ln_bias)
        self.attn = MultiHeadAttention(C, config.n_head, config.block_size, bias=config.bias)
        self.mlp = MLP(C, bias=config.bias)

    def forward(self, x):
        ln_1 = getattr(self, "ln_1", None) or getattr(self, "ln", None) or self.norm1
        ln_2 = getattr(self, "ln_2", None) or getattr(self, "ln", None) or self.norm2
        return self.wiring(x, self.attn, self.mlp, ln_1, ln_2)


class AttentionRenamed(LearnerBlock):
    def __init__(self, config):
        super().__init__(config)
        self.attention = self.attn
        del self.attn


GOOD = {
    "norm.layernorm": layer_norm,
    "norm.pre_norm_block": pre_norm,
    "norm.block_module": LearnerBlock,
}

WRONG = [
    ("norm.layernorm", lambda x, w, b, eps: layer_norm(x, w, b, eps, eps_outside=True), "outside the square root"),
    ("norm.layernorm", lambda x, w, b, eps: layer_norm(x, w, b, eps, unbiased=True), "population variance"),
    ("norm.layernorm", lambda x, w, b, eps: F.layer_norm(x, (x.shape[-1],), None, None, eps), "weight and bias"),
    ("norm.layernorm", lambda x, w, b, eps: (x - x.mean(0)) / (x.var(0) + eps).sqrt() * w + b, "last dimension"),
    ("norm.pre_norm_block", post_norm, "post-norm"),
    ("norm.pre_norm_block", no_residual, "residual connections are missing"),
    ("norm.pre_norm_block", one_norm, "its own LayerNorm"),
    ("norm.pre_norm_block", norm_after, "not on its output"),
    ("norm.block_module", lambda config: LearnerBlock(config, post_norm), "post-norm"),
    ("norm.block_module", lambda config: LearnerBlock(config, no_residual), "residual connections are missing"),
    ("norm.block_module", lambda config: LearnerBlock(config, norm_after), "not on its output"),
    ("norm.block_module", lambda config: LearnerBlock(config, one_norm), "its own LayerNorm"),
    ("norm.block_module", lambda config: LearnerBlock(config, norms="shared"), "its own LayerNorm"),
    ("norm.block_module", lambda config: LearnerBlock(config, norms="one"), "its own LayerNorm"),
    ("norm.block_module", lambda config: LearnerBlock(config, norms="renamed"), "its own LayerNorm"),
    ("norm.block_module", lambda config: LearnerBlock(config, ln_bias=False), "needs a bias"),
    ("norm.block_module", AttentionRenamed, "name the parts as GPT-2 does"),
    ("norm.block_module", lambda config: LearnerBlock(config, post_norm)(torch.zeros(1, 1, config.n_embd)),
     "subclass nn.Module"),
]
