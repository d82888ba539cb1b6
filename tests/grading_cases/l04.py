"""Lesson 04: split, merge, multi-head attention."""

from __future__ import annotations

import math

from .l03 import weights_with


def split(x, nh):
    B, T, C = x.shape
    return x.view(B, T, nh, C // nh).transpose(1, 2)


def merge(y):
    B, nh, T, hs = y.shape
    return y.transpose(1, 2).reshape(B, T, nh * hs)


def mha(x, c_attn, c_proj, nh, scale_by_c=False, project=True):
    B, T, C = x.shape
    q, k, v = (split(t, nh) for t in c_attn(x).split(C, 2))
    y = weights_with(q, k, scale=math.sqrt(C) if scale_by_c else None) @ v
    return c_proj(merge(y)) if project else merge(y)


GOOD = {
    "multihead.split": split,
    "multihead.merge": merge,
    "multihead.attention": mha,
}

WRONG = [
    ("multihead.split", lambda x, nh: x.view(x.shape[0], nh, x.shape[1], -1), "then transpose(1, 2)"),
    ("multihead.split", lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1), "(B, nh, T, hs)"),
    ("multihead.merge", lambda y: y.reshape(y.shape[0], y.shape[2], -1), "transpose(1, 2) back"),
    ("multihead.attention", lambda x, a, p, nh: mha(x, a, p, nh, scale_by_c=True), "not 1/sqrt(n_embd)"),
    ("multihead.attention", lambda x, a, p, nh: mha(x, a, p, nh, project=False), "c_proj is missing"),
]
