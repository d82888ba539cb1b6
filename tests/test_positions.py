import math

import pytest
import torch

from gptcourse.positions import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    rope_angles,
    rotate_pairs,
    sinusoidal_table,
)


def test_sinusoidal_values():
    table = sinusoidal_table(50, 16)
    assert table.shape == (50, 16)
    pos, i = 7, 3  # column pair 3: sin in column 6, cos in column 7
    angle = pos / 10000 ** (2 * i / 16)
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    enc = SinusoidalPositionalEncoding(50, 16)
    assert list(enc.parameters()) == [] and "table" not in enc.state_dict()


def test_positions_past_the_window_are_refused():
    for module in (LearnedPositionalEmbedding(8, 4), SinusoidalPositionalEncoding(8, 4)):
        with pytest.raises(ValueError, match="context window of 8"):
            module(torch.arange(9))
        with pytest.raises(ValueError, match="position 8 is outside the context window of 8"):
            module.window(5, 4)
    with pytest.raises(ValueError, match="context window of 8"):
        RotaryEmbedding(head_size=4, block_size=8)(torch.randn(1, 1, 3, 4), start=6)


def test_window_is_the_lookup_of_a_range():
    for module in (LearnedPositionalEmbedding(8, 4), SinusoidalPositionalEncoding(8, 4)):
        assert torch.equal(module.window(3, 5), module(torch.arange(3, 8)))


def test_rope_keeps_norms_and_rotates_pairs():
    x = torch.randn(2, 3, 10, 8)
    angles = rope_angles(10, 8)
    y = apply_rope(x, angles)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation keeps lengths
    assert torch.allclose(y[..., 0, :], x[..., 0, :])  # position 0: angle 0
    # pair 0 at position 1 turns by exactly 1 radian
    c, s = math.cos(1.0), math.sin(1.0)
    x0, x1 = x[..., 1, 0], x[..., 1, 1]
    assert torch.allclose(y[..., 1, 0], x0 * c - x1 * s, atol=1e-6)
    assert torch.allclose(y[..., 1, 1], x0 * s + x1 * c, atol=1e-6)


def test_rotate_pairs_is_the_written_out_rotation():
    x, angles = torch.randn(2, 3, 10, 8), rope_angles(10, 8)
    cos, sin = angles.cos(), angles.sin()
    a, b = x[..., 0::2], x[..., 1::2]
    by_hand = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    assert torch.allclose(apply_rope(x, angles), by_hand, atol=1e-6)
    turn = torch.complex(cos, sin)
    # any strides (a head split off a (B, T, 3C) projection) and bf16, computed in float32
    qkv = torch.randn(2, 10, 3, 3, 8)
    k = qkv[:, :, 1].transpose(1, 2)  # (B, nh, T, hs), not contiguous
    assert torch.allclose(rotate_pairs(k, turn), apply_rope(k.contiguous(), angles), atol=1e-6)
    assert rotate_pairs(x.bfloat16(), turn).dtype == torch.bfloat16


def test_rotary_layer_equals_apply_rope_at_any_start():
    rope = RotaryEmbedding(head_size=8, block_size=32)
    x = torch.randn(2, 3, 5, 8)
    assert torch.allclose(rope(x, 11), apply_rope(x, rope_angles(32, 8)[11:16]), atol=1e-6)


def test_rope_scores_depend_only_on_the_offset():
    rope = RotaryEmbedding(head_size=16, block_size=64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    for offset in (0, 3, 10):
        scores = []
        for m in (0, 5, 20, 40):
            qm = rope(q, m + offset)
            kn = rope(k, m)
            scores.append((qm * kn).sum().item())
        assert max(scores) - min(scores) < 1e-4, (offset, scores)
    # and the score does change with the offset
    s0 = (rope(q, 0) * rope(k, 0)).sum().item()
    s7 = (rope(q, 7) * rope(k, 0)).sum().item()
    assert abs(s0 - s7) > 1e-3
