import math

import pytest
import torch

from gptcourse import GPT
from gptcourse.heads import (
    attention_maps,
    even_attention,
    first_token_score,
    head_switched_off,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
    same_token_score,
)
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



def _repeats(half: int = 8) -> torch.Tensor:
    return repeated_random_tokens(4, half, 50, torch.Generator().manual_seed(0))  # (4, 2 * half)


def test_repeated_random_tokens_repeat_distinct_tokens():
    idx = _repeats()
    assert idx.shape == (4, 16) and torch.equal(idx[:, :8], idx[:, 8:])
    assert all(len(set(row[:8].tolist())) == 8 for row in idx)


def test_a_perfect_induction_head_scores_one_and_a_previous_token_head_zero():
    idx = _repeats()
    B, T = idx.shape
    w = torch.zeros(B, 3, T, T)  # heads: perfect induction, looks at itself, previous-token
    w[:, 0, :8] = torch.eye(T)[:8]
    w[:, 0, torch.arange(8, T), torch.arange(1, T - 7)] = 1.0  # second half: the token after the first copy
    w[:, 1] = torch.eye(T)
    w[:, 2, 0, 0] = 1.0
    w[:, 2, torch.arange(1, T), torch.arange(T - 1)] = 1.0
    score = induction_score(w, idx)
    assert score.shape == (3,)
    assert score.tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_an_even_head_scores_its_baseline():
    idx = _repeats()
    expected = sum(1 / (t + 1) for t in range(8, 16)) / 8  # one target key per second-half query
    even = even_attention(*idx.shape)
    assert torch.allclose(even.sum(-1), torch.ones(4, 1, 16))
    assert induction_score(even, idx).item() == pytest.approx(expected, rel=1e-6)


def test_induction_counts_only_queries_with_a_target():
    idx = torch.tensor([[5, 5, 6, 5, 7]])  # query 3: copies at 0 and 1 (targets 1 and 2); query 1: none (s = t - 1)
    w = even_attention(1, 5)
    assert induction_score(w, idx).item() == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="no token repeats"):
        induction_score(even_attention(1, 4), torch.tensor([[5, 5, 6, 7]]))  # only an immediate repeat


def test_a_switched_off_head_writes_nothing(tiny_config):
    model = GPT(tiny_config).eval()
    idx = torch.randint(0, 61, (2, 10))
    before = model(idx)
    attn, hs = model.transformer.h[1].attn, tiny_config.n_embd // tiny_config.n_head
    with head_switched_off(model, 1, 0):
        off = model(idx)
    with torch.no_grad():
        attn.c_proj.weight[:, :hs] = 0.0  # the same as zeroing the columns that read head 0
        zeroed = model(idx)
    assert not torch.allclose(off, before, atol=1e-4)
    assert torch.allclose(off, zeroed, atol=1e-5)
    assert not attn.c_proj._forward_pre_hooks  # the hook is gone after the with block


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
