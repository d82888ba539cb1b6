import dataclasses

import pytest

from gptcourse import MODEL_PRESETS, GPTConfig
from gptcourse.params import count_parameters


def test_defaults_are_gpt2_small():
    c = GPTConfig()
    assert (c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd) == (50257, 1024, 12, 12, 768)
    assert (c.pos_encoding, c.norm_placement, c.tie_weights, c.bias, c.activation) == (
        "learned", "pre", True, True, "gelu_tanh")
    assert MODEL_PRESETS["gpt2"] == c


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPTConfig().n_layer = 3


def test_presets_are_the_sizes_they_name():
    """The course's numbers: GPT-2 small 124,439,808 (tied), medium about 350M, nanoGPT's char model 10.7M."""
    millions = {name: count_parameters(config).total / 1e6 for name, config in MODEL_PRESETS.items()}
    assert count_parameters(MODEL_PRESETS["gpt2"]).total == 124_439_808
    assert round(millions["gpt2-medium"], -1) == 350 and round(millions["shakespeare-char"], 1) == 10.7
    assert millions["shakespeare-cpu"] < 1  # the laptop size
    assert MODEL_PRESETS["gpt2-medium"].n_embd % MODEL_PRESETS["gpt2-medium"].n_head == 0
    assert GPTConfig.from_preset("gpt2", n_layer=2).n_layer == 2
    with pytest.raises(ValueError, match="unknown preset 'gpt5'.*gpt2"):
        GPTConfig.from_preset("gpt5")


def test_from_dict_ignores_fields_this_version_lacks():
    config = MODEL_PRESETS["shakespeare-cpu"]
    assert GPTConfig.from_dict({**config.to_dict(), "gone_field": 1}) == config


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
