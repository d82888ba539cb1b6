import dataclasses

import pytest

from gptcourse import PRESETS, GPTConfig


def test_defaults_are_gpt2_small():
    c = GPTConfig()
    assert (c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd) == (50257, 1024, 12, 12, 768)
    assert (c.pos_encoding, c.norm_placement, c.tie_weights, c.bias, c.activation) == (
        "learned", "pre", True, True, "gelu_tanh")
    assert PRESETS["gpt2"] == c


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPTConfig().n_layer = 3


def test_presets():
    assert set(PRESETS) >= {"gpt2", "gpt2-medium", "shakespeare-char", "shakespeare-cpu"}
    sc = PRESETS["shakespeare-char"]
    assert (sc.n_layer, sc.n_head, sc.n_embd, sc.block_size) == (6, 6, 384, 256)
    assert GPTConfig.from_preset("gpt2", n_layer=2).n_layer == 2
    with pytest.raises(ValueError, match="unknown preset 'gpt5'.*gpt2"):
        GPTConfig.from_preset("gpt5")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_embd": 100, "n_head": 3}, "divisible by n_head"),
        ({"n_layer": 0}, "n_layer must be a positive integer"),
        ({"pos_encoding": "absolute"}, "pos_encoding must be one of"),
        ({"norm_placement": "middle"}, "norm_placement"),
        ({"dropout": 1.0}, "dropout"),
        ({"pos_encoding": "rope", "n_embd": 36, "n_head": 4}, "head size 9 must be even"),
    ],
)
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**changes)
