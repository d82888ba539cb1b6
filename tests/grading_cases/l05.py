"""Lesson 05: GELU and the feed-forward network."""

from __future__ import annotations

import math

import torch


def gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


GOOD = {
    "ffn.gelu": gelu,
    "ffn.mlp": lambda x, c_fc, c_proj: c_proj(gelu(c_fc(x))),
}

WRONG = [
    ("ffn.gelu", torch.relu, "ReLU"),
    ("ffn.gelu", lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)), "cubic term"),
    ("ffn.gelu", lambda x: x * torch.sigmoid(1.702 * x), "tanh form"),
    ("ffn.gelu", lambda x: gelu(x.clamp_(min=-5.0)), "in place"),
    ("ffn.mlp", lambda x, c_fc, c_proj: c_proj(c_fc(x)), "no nonlinearity"),
    ("ffn.mlp", lambda x, c_fc, c_proj: gelu(c_proj(c_fc(x))), "not after c_proj"),
    ("ffn.mlp", lambda x, c_fc, c_proj: c_proj(gelu(c_fc(x))).cumsum(1), "each token alone"),
]
