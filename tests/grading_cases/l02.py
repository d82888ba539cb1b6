"""Lesson 02: the sinusoidal table and RoPE."""

from __future__ import annotations

import torch

from gptcourse import positions

ROPE = positions.rope_angles
sin_table = positions.sinusoidal_table

GOOD = {
    "position.sinusoidal": positions.sinusoidal_table,
    "position.rope": lambda x: positions.apply_rope(x, positions.rope_angles(x.shape[-2], x.shape[-1])),
}

WRONG = [
    ("position.sinusoidal", lambda P, d: torch.cat((sin_table(P, d)[:, 0::2], sin_table(P, d)[:, 1::2]), 1),
     "interleave"),
    ("position.sinusoidal", lambda P, d: sin_table(P, d).view(P, d // 2, 2).flip(-1).reshape(P, d),
     "sin and cos are swapped"),
    ("position.rope", lambda x: positions.apply_rope(x, -ROPE(x.shape[-2], x.shape[-1])), "wrong way"),
    ("position.rope", lambda x: x * 1.5, "lengths changed"),
    ("position.rope", lambda x: positions.apply_rope(x, ROPE(x.shape[-2] + 1, x.shape[-1])[1:]), "position 0"),
]
