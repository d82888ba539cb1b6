"""Lesson 10: previous-token, first-token and induction head scores."""

from __future__ import annotations

import torch

from gptcourse import heads


def _induction(weights, idx, earlier=-2, shift=1, all_queries=False, per_sequence=False):
    """An induction score written the way a learner might, with one knob per mistake."""
    same = idx[:, :, None] == idx[:, None, :]  # (B, T, T)
    copies = same & torch.ones_like(same).tril(diagonal=earlier)
    targets = torch.zeros_like(copies)
    if shift == 1:
        targets[:, :, 1:] = copies[:, :, :-1]
    elif shift == 0:
        targets = copies
    else:
        targets[:, :, :-1] = copies[:, :, 1:]
    mass = (weights * targets[:, None]).sum(-1)  # (B, nh, T)
    if all_queries:
        return mass.mean(dim=(0, 2))
    counted = targets.any(-1)[:, None].expand_as(mass)
    if per_sequence:  # the mean of each sequence's mean
        return ((mass * counted).sum(-1) / counted.sum(-1).clamp(min=1)).mean(0)
    return (mass * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2))


def induction_loop(weights, idx):
    """The same score with plain loops: a right answer written another way."""
    B, nh, T, _ = weights.shape
    total, count = torch.zeros(nh), 0
    for b in range(B):
        for t in range(T):
            keys = [s + 1 for s in range(t - 1) if idx[b, s] == idx[b, t]]
            if keys:
                total += weights[b, :, t, keys].sum(-1)
                count += 1
    return total / count


GOOD = {
    "heads.previous_token": heads.previous_token_score,
    "heads.first_token": heads.first_token_score,
    "heads.induction": induction_loop,
}

WRONG = [
    ("heads.previous_token", lambda w: w.diagonal(0, -2, -1).mean(dim=(0, 2)), "offset=-1"),
    ("heads.previous_token", lambda w: w.diagonal(-1, -2, -1).sum(dim=(0, 2)) / (w.shape[0] * w.shape[-1]),
     "t >= 1"),
    ("heads.previous_token", lambda w: w.diagonal(-1, -2, -1).mean(), "one score per head"),
    ("heads.first_token", lambda w: w[..., :, 0].mean(dim=(0, 2)), "skip query 0"),
    ("heads.first_token", lambda w: w[..., 0, :].mean(dim=(0, 2)), "column 0"),
    ("heads.induction", lambda w, idx: _induction(w, idx, shift=0), "the earlier copy itself"),
    ("heads.induction", heads.same_token_score, "same-token score"),
    ("heads.induction", lambda w, idx: _induction(w, idx, shift=-1), "not the one before it"),
    ("heads.induction", lambda w, idx: _induction(w, idx, earlier=-1), "leave out s = t - 1"),
    ("heads.induction", lambda w, idx: _induction(w, idx, all_queries=True), "not over all T queries"),
    ("heads.induction", lambda w, idx: _induction(w, idx, per_sequence=True), "sequence by sequence"),
    ("heads.induction", lambda w, idx: _induction(w, idx).mean(), "one score per head"),
]
