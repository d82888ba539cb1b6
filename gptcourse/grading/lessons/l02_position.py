"""Lesson 02: sinusoidal positions and the RoPE rotation (pairs (2i, 2i+1), as in gptcourse.positions)."""

from __future__ import annotations

import torch

from ...positions import apply_rope, rope_angles, sinusoidal_table
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_tensor


@register("position.sinusoidal", lesson=2, title="sinusoidal position table")
def sinusoidal(fn, ctx: Context) -> str:
    for _ in range(3):
        _sinusoidal_once(fn, ctx, ctx.choice([8, 16, 50]), ctx.choice([4, 10, 32]))
    return "matches the 2017 table (sin on even, cos on odd columns) for 3 sizes"


def _sinusoidal_once(fn, ctx: Context, P: int, dim: int) -> None:
    out = expect_tensor(call(fn, P, dim), (P, dim), f"table({P}, {dim})",
                        hint="one row per position, one column per dimension")
    ref = sinusoidal_table(P, dim)
    pos = torch.arange(P, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, dtype=torch.float32)
    both = torch.empty(P, dim)

    def interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both[:, 0::2], both[:, 1::2] = a, b
        return both.clone()

    angles_i = pos * 10000.0 ** (-(i / 2) / dim)
    expect_close(out, ref, atol=1e-4, what="the table", mistakes={
        "sin and cos are swapped: even columns 2i hold sin, odd columns 2i+1 hold cos":
            lambda: interleave(torch.cos(pos * 10000.0 ** (-i / dim)), torch.sin(pos * 10000.0 ** (-i / dim))),
        "the halves are stacked side by side; interleave them: column 2i is sin, column 2i+1 is cos":
            lambda: torch.cat((ref[:, 0::2], ref[:, 1::2]), dim=1),
        "the frequency exponent should be 2i/dim for pair i (you used i/dim)":
            lambda: interleave(torch.sin(angles_i), torch.cos(angles_i)),
        "the frequencies should fall with i: 10000 ** (-2i/dim), a negative exponent":
            lambda: interleave(torch.sin(pos * 10000.0 ** (i / dim)), torch.cos(pos * 10000.0 ** (i / dim))),
    }, hint="row p, column 2i is sin(p / 10000**(2i/dim)); column 2i+1 is the cos of the same angle")


@register("position.rope", lesson=2, title="RoPE rotation")
def rope(fn, ctx: Context) -> str:
    for _ in range(3):
        _rope_once(fn, ctx, 2, ctx.choice([5, 9]), ctx.choice([4, 8, 16]))
    q, k = ctx.randn(1, 1, 8).expand(1, 6, 8).clone(), ctx.randn(1, 1, 8).expand(1, 6, 8).clone()
    rq, rk = call(fn, q), call(fn, k)
    dots = [(rq[0, m] @ rk[0, m - 2]).item() for m in range(2, 6)]
    if max(dots) - min(dots) > 1e-3:
        raise Fail("q.k should depend only on the distance between positions (here 2), and it does not")
    return "keeps lengths, q.k depends only on the distance, values match gptcourse.positions.apply_rope"


def _rope_once(fn, ctx: Context, B: int, T: int, hs: int) -> None:
    x = ctx.randn(B, T, hs)
    out = expect_tensor(call(fn, x, names=("x",)), (B, T, hs), "rope(x)", hint="RoPE keeps the shape")
    norms_in, norms_out = x.norm(dim=-1), out.norm(dim=-1)
    if not torch.allclose(norms_in, norms_out, atol=1e-4, rtol=1e-4):
        raise Fail("the vectors' lengths changed: a rotation keeps each pair's length "
                   "(x_even * cos - x_odd * sin, x_even * sin + x_odd * cos)")
    angles = rope_angles(T, hs)
    ref = apply_rope(x, angles)
    half = hs // 2

    def neox() -> torch.Tensor:  # rotating the first half against the second half
        a, b = x[..., :half], x[..., half:]
        c, s = angles.cos(), angles.sin()
        return torch.cat((a * c - b * s, a * s + b * c), dim=-1)

    expect_close(out, ref, atol=1e-4, what="the rotated vectors", mistakes={
        "you rotated the first half against the second half; rotate interleaved pairs (2i, 2i+1)": neox,
        "the rotation goes the wrong way: (x_even * cos - x_odd * sin, x_even * sin + x_odd * cos)":
            lambda: apply_rope(x, -angles),
        "position 0 must not turn: the angle is position * theta_i with positions 0, 1, ..., T-1":
            lambda: apply_rope(x, rope_angles(T + 1, hs)[1:]),
        "the frequencies should be 10000 ** (-2i/hs) for pair i":
            lambda: apply_rope(x, torch.arange(T, dtype=torch.float32)[:, None]
                               * 10000.0 ** (-torch.arange(half, dtype=torch.float32) / hs)),
    }, hint="pair i at position t turns by t * 10000**(-2i/hs)")
