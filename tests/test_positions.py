import math

import pytest
import torch

from gptcourse.positions import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    rope_angles,
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


def test_rope_scores_depend_only_on_the_offset():
    rope = RotaryEmbedding(head_size=16, block_size=64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    for offset in (0, 3, 10):
        scores = []
        for m in (0, 5, 20, 40):
            qm = rope(q, torch.tensor([m + offset]))
            kn = rope(k, torch.tensor([m]))
            scores.append((qm * kn).sum().item())
        assert max(scores) - min(scores) < 1e-4, (offset, scores)
    # and the score does change with the offset
    s0 = (rope(q, torch.tensor([0])) * rope(k, torch.tensor([0]))).sum().item()
    s7 = (rope(q, torch.tensor([7])) * rope(k, torch.tensor([0]))).sum().item()
    assert abs(s0 - s7) > 1e-3
