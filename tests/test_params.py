import random

import pytest

from gptcourse import GPT, GPTConfig
from gptcourse.params import count_parameters, model_breakdown


def test_gpt2_small_to_the_parameter():
    assert count_parameters(GPTConfig()).total == 124_439_808
    assert count_parameters(GPTConfig(tie_weights=False)).total == 163_037_184
    bd = count_parameters(GPTConfig())
    assert bd.attention + bd.feed_forward - 12 * 12 * 768 * 768 == 12 * (4 * 768 + 5 * 768)  # biases


def test_gpt2_small_built():
    model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808
    assert model_breakdown(model) == count_parameters(GPTConfig())


def random_configs(n, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        n_head = rng.choice([1, 2, 3, 4])
        yield GPTConfig(
            vocab_size=rng.randint(2, 300),
            block_size=rng.randint(1, 64),
            n_layer=rng.randint(1, 4),
            n_head=n_head,
            n_embd=n_head * 2 * rng.randint(1, 8),
            bias=rng.random() < 0.5,
            tie_weights=rng.random() < 0.5,
            pos_encoding=rng.choice(["learned", "sinusoidal", "rope"]),
            norm_placement=rng.choice(["pre", "post"]),
        )


@pytest.mark.parametrize("config", list(random_configs(60)), ids=lambda c: f"L{c.n_layer}d{c.n_embd}")
def test_formula_equals_numel(config):
    model = GPT(config)
    assert count_parameters(config).total == sum(p.numel() for p in model.parameters())
    assert model_breakdown(model) == count_parameters(config)
