import math

import pytest
import torch

from gptcourse import GPT
from gptcourse.heads import attention_maps, first_token_score, previous_token_score, same_token_score
from gptcourse.scaling import fit_power_law


def test_attention_maps_match_each_layer(tiny_config):
    model = GPT(tiny_config).eval()
    idx = torch.randint(0, 61, (2, 10))
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 2, 2, 10, 10)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 2, 10), atol=1e-5)
    x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(10))
    first = model.transformer.h[0].attn.weights(model.transformer.h[0].ln_1(x))
    assert torch.allclose(maps[0], first, atol=1e-6)


def test_head_scores_on_made_up_patterns():
    T = 6
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    uniform = torch.ones(T, T).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    weights = torch.stack([prev, uniform])[None]  # (1, nh=2, T, T)
    score = previous_token_score(weights)
    assert score[0].item() == pytest.approx(1.0)
    assert score[1].item() == pytest.approx(sum(1 / (t + 1) for t in range(1, T)) / (T - 1))
    assert first_token_score(weights)[0].item() == pytest.approx(1 / (T - 1))
    idx = torch.tensor([[3, 4, 3, 5, 4, 3]])
    same = same_token_score(weights, idx)
    assert 0 <= same[1].item() <= 1 and same[0].item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no token repeats"):
        same_token_score(weights, torch.arange(T)[None])


def test_fit_power_law_recovers_a_known_law():
    xs = [1e3, 3e3, 1e4, 3e4, 1e5]
    law = fit_power_law(xs, [5.0 * x**-0.3 for x in xs])
    assert law.alpha == pytest.approx(0.3) and law.a == pytest.approx(5.0)
    assert law(1e6) == pytest.approx(5.0 * 1e6**-0.3)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2], [1, -1])
    with pytest.raises(ValueError, match="two or more"):
        fit_power_law([1], [1])
    assert math.isfinite(fit_power_law([1, 2, 4], [3, 2.9, 2.2]).alpha)
