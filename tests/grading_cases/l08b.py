"""Capstone: a GPT written the way a learner writes it (their own functions in GPT-2's module tree), right and wrong.

`LearnerGPT(config, mistake=...)` makes one known mistake; the check must fail it with the hint that names it.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x, exact=False):
    if exact:
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class LayerNorm(nn.Module):
    def __init__(self, n_embd, unbiased=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd))
        self.unbiased = unbiased

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=self.unbiased)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, config, mistake):
        super().__init__()
        self.n_head, self.mistake = config.n_head, mistake
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        nh = self.n_head
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if self.mistake == "detached_attention":
            q, k = q.detach(), k.detach()
        scores = q @ k.transpose(-2, -1)
        if self.mistake != "no_scale":
            scores = scores / math.sqrt(C // nh)
        if self.mistake != "no_mask":
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        weights = scores.softmax(dim=-2 if self.mistake == "softmax_dim" else -1)
        return self.c_proj((weights @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config, mistake):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.mistake = mistake

    def forward(self, x):
        h = self.c_fc(x)
        return self.c_proj(F.relu(h) if self.mistake == "relu" else gelu(h, exact=self.mistake == "exact_gelu"))


class Block(nn.Module):
    def __init__(self, config, mistake):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, unbiased=mistake == "ln_unbiased")
        self.attn = Attention(config, mistake)
        self.ln_2 = LayerNorm(config.n_embd, unbiased=mistake == "ln_unbiased")
        self.mlp = MLP(config, mistake)
        self.mistake = mistake

    def forward(self, x):
        if self.mistake == "post_norm":
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))
        if self.mistake == "no_residual":
            return self.mlp(self.ln_2(self.attn(self.ln_1(x))))
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class LearnerGPT(nn.Module):
    def __init__(self, config, mistake=None):
        super().__init__()
        self.mistake = mistake
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList(Block(config, mistake) for _ in range(config.n_layer)),
            ln_f=LayerNorm(config.n_embd, unbiased=mistake == "ln_unbiased"),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=mistake == "head_bias")
        if mistake != "untied":
            self.lm_head.weight = self.transformer.wte.weight
        if mistake == "frozen_embedding":
            self.transformer.wte.weight.requires_grad_(False)

    def forward(self, idx):
        tr = self.transformer
        one_hot = F.one_hot(idx, tr.wte.weight.shape[0]).to(tr.wte.weight.dtype)  # the lesson-01 lookup
        x = one_hot @ tr.wte.weight  # (B, T, V) @ (V, C) -> (B, T, C)
        if self.mistake != "no_positions":
            x = x + tr.wpe(torch.arange(idx.shape[1]))
        for block in tr.h:
            x = block(x)
        if self.mistake != "no_ln_f":
            x = tr.ln_f(x)
        if self.mistake == "detached_head":  # the tied matrix learns through the lookup only, not through the head
            logits = F.linear(x, self.lm_head.weight.detach())
        else:
            logits = self.lm_head(x)
        return (logits, None) if self.mistake == "tuple" else logits


def wrong(mistake: str) -> functools.partial:
    return functools.partial(LearnerGPT, mistake=mistake)


class NoLnF(LearnerGPT):
    """Built without the final LayerNorm at all."""

    def __init__(self, config):
        super().__init__(config)
        del self.transformer["ln_f"]

    def forward(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
        for block in tr.h:
            x = block(x)
        return self.lm_head(x)


GOOD = {"capstone.your_gpt": LearnerGPT}

WRONG = [
    ("capstone.your_gpt", wrong("no_residual"), "no residual connections"),
    ("capstone.your_gpt", wrong("post_norm"), "post-norm"),
    ("capstone.your_gpt", wrong("no_mask"), "no causal mask"),
    ("capstone.your_gpt", wrong("untied"), "tie it to the token embedding"),
    ("capstone.your_gpt", wrong("no_positions"), "position embeddings are not added"),
    ("capstone.your_gpt", wrong("no_ln_f"), "final LayerNorm is missing"),
    ("capstone.your_gpt", NoLnF, "transformer.ln_f is missing"),
    ("capstone.your_gpt", wrong("softmax_dim"), "wrong axis"),
    ("capstone.your_gpt", wrong("no_scale"), "not scaled"),
    ("capstone.your_gpt", wrong("relu"), "ReLU"),
    ("capstone.your_gpt", wrong("ln_unbiased"), "population variance"),
    ("capstone.your_gpt", wrong("head_bias"), "lm_head has a bias"),
    ("capstone.your_gpt", wrong("tuple"), "logits alone"),
    ("capstone.your_gpt", wrong("detached_attention"), "the gradients of"),
    ("capstone.your_gpt", wrong("frozen_embedding"), "get no gradient"),
]
