"""Lesson 03: the causal mask, attention weights, one causal head."""

from __future__ import annotations

import math

import torch


def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def weights_with(q, k, scale=None, dim=-1, diagonal=0, fill=float("-inf")):
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(hs) if scale is None else scale)
    mask = torch.ones(T, T, dtype=torch.bool).tril(diagonal)
    return scores.masked_fill(~mask, fill).softmax(dim=dim)


def head(x, Wq, Wk, Wv, **kw):
    return weights_with(x @ Wq, x @ Wk, **kw) @ (x @ Wv)


def no_mask_head(x, Wq, Wk, Wv):
    q, k = x @ Wq, x @ Wk
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ (x @ Wv)


GOOD = {
    "attention.causal_mask": causal_mask,
    "attention.weights": weights_with,
    "attention.causal": head,
}

WRONG = [
    ("attention.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "off by one"),
    ("attention.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upside down"),
    ("attention.causal_mask", lambda T: torch.ones(T, T).tril(), "booleans"),
    ("attention.weights", lambda q, k: weights_with(q, k, scale=1.0), "sqrt(head size)"),
    ("attention.weights", lambda q, k: weights_with(q, k, dim=-2), "wrong axis"),
    ("attention.weights", lambda q, k: weights_with(q, k, diagonal=-1), "off by one"),
    ("attention.weights", lambda q, k: weights_with(q, k, scale=q.shape[-1]), "not 1/head size"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, scale=1.0), "not scaled"),
    ("attention.causal", no_mask_head, "mask"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, diagonal=-1), "off by one"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, diagonal=-1, fill=-1e9), "off by one"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, dim=-2), "wrong axis"),
]
