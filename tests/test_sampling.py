import math

import pytest
import torch

from gptcourse import GPT
from gptcourse.sampling import (
    entropy,
    generate,
    next_token_probs,
    sample_next,
    top_k_filter,
    top_p_filter,
)


@pytest.fixture
def model(tiny_config):
    return GPT(tiny_config).eval()


def test_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [[True, False, False, True]]
    # softmax(logits) = [0.087, 0.644, 0.237, 0.032]
    kept = ~torch.isinf(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[False, True, True, False]]  # 0.644 < 0.7, so the second is needed
    assert (~torch.isinf(top_p_filter(logits, 0.5))).sum() == 1
    assert (~torch.isinf(top_p_filter(logits, 1.0))).all()


def test_temperature_limits():
    logits = torch.randn(5, 30)
    assert torch.equal(next_token_probs(logits, 0).argmax(-1), logits.argmax(-1))
    assert torch.allclose(next_token_probs(logits, 1.0), logits.softmax(-1))
    ents = [entropy(next_token_probs(logits, t)).mean().item() for t in (0.3, 0.7, 1.0, 2.0, 10.0)]
    assert ents == sorted(ents) and ents[-1] < math.log(30)


def test_seeded_frequencies_match_the_distribution():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_next(logits.expand(1000, 4), generator=g) for _ in range(10)]).flatten()
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, logits.softmax(-1)[0], atol=0.015)  # 10,000 draws: std <= 0.005


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.5}, "temperature must be a number >= 0"),
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
])
def test_bad_settings(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(model, torch.zeros(1, 1, dtype=torch.long), 3, **kwargs)


def test_generate_shape_and_greedy_is_deterministic(model):
    idx = torch.randint(0, 61, (2, 3))
    out = generate(model, idx, 20, temperature=0)
    assert out.shape == (2, 23) and torch.equal(out[:, :3], idx)
    assert torch.equal(out, generate(model, idx, 20, temperature=0))


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_cache_gives_exactly_the_uncached_tokens(tiny_config, pos):
    model = GPT(tiny_config.replace(pos_encoding=pos)).eval()
    idx = torch.randint(0, 61, (3, 4))
    kwargs = dict(temperature=1.3, top_k=40, top_p=0.95)
    a = generate(model, idx, 40, generator=torch.Generator().manual_seed(7), use_cache=True, **kwargs)
    b = generate(model, idx, 40, generator=torch.Generator().manual_seed(7), use_cache=False, **kwargs)
    assert torch.equal(a, b)  # 40 new tokens run well past the 16-token window


def test_long_prompt_keeps_its_last_block_size_tokens(model):
    prompt = torch.randint(0, 61, (1, 50))
    out = generate(model, prompt, 5, temperature=0)
    assert out.shape == (1, 55)
    cropped = generate(model, prompt[:, -16:], 5, temperature=0)
    assert torch.equal(out[:, -5:], cropped[:, -5:])
