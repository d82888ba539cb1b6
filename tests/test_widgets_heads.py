"""The head explorer: its logic against gptcourse.heads, and every control of the widget moving the output."""

from __future__ import annotations

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.heads import attention_maps, previous_token_score
from gptcourse.tokenizers import CharTokenizer
from gptcourse.widgets.head_explorer import HeadExplorer, head_view


@pytest.fixture
def tokenizer():
    return CharTokenizer("abcdefgh \n")


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=12, n_layer=2, n_head=3, n_embd=24)
    return GPT(config).eval()


def test_head_view_is_the_models_attention(model, tokenizer):
    text = "abcabc de"
    view = head_view(model, tokenizer, text, layer=1, head=2)
    maps = attention_maps(model, torch.tensor([tokenizer.encode(text)]))  # (n_layer, 1, nh, T, T)
    assert torch.allclose(view.weights, maps[1, 0, 2])
    assert view.tokens == list(text)
    assert view.previous_token == pytest.approx(float(previous_token_score(maps[1])[2]))
    assert view.same_token is not None and 0 <= view.same_token <= 1
    assert head_view(model, tokenizer, "abcdefg", 0, 0).same_token is None  # nothing repeats


def test_head_view_crops_and_refuses(model, tokenizer):
    view = head_view(model, tokenizer, "abcdefgh" * 3, 0, 1)
    assert view.weights.shape == (12, 12) and len(view.tokens) == 12  # the last block_size tokens
    with pytest.raises(ValueError, match="two tokens"):
        head_view(model, tokenizer, "a", 0, 0)
    with pytest.raises(ValueError, match="layer must be in 0..1"):
        head_view(model, tokenizer, "abc", 2, 0)
    with pytest.raises(ValueError, match="head must be in 0..2"):
        head_view(model, tokenizer, "abc", 0, 3)


def test_every_control_moves_the_output(model, tokenizer):
    w = HeadExplorer(model, tokenizer, text="abcabc")
    assert (w.layer.max, w.head.max) == (1, 2)
    assert (w.view.layer, w.view.head) == (0, 0) and "previous-token" in w.message.value
    seen = {}
    for layer in range(2):
        w.layer.value = layer
        for head in range(3):
            w.head.value = head
            assert (w.view.layer, w.view.head) == (layer, head)
            seen[layer, head] = w.view.weights
    assert not torch.allclose(seen[0, 0], seen[1, 2])  # another head, another pattern
    w.text.value = "hhgg fe"
    assert w.view.tokens == list("hhgg fe") and w.view.weights.shape == (7, 7)
    w.text.value = "h"  # too short: a message, not an exception
    assert w.view is None and "two tokens" in w.message.value
    w.text.value = "abz"  # outside the vocabulary
    assert w.view is None and "vocabulary" in w.error
    w.text.value = "abcd"
    assert w.view is not None and w.error == ""


def test_saved_notebook_gets_a_static_snapshot(model, tokenizer):
    w = HeadExplorer(model, tokenizer, text="abcab")
    w.layer.value, w.head.value = 1, 2
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Attention-head explorer: run the notebook")
    page = bundle["text/html"]
    assert "(layer 1, head 2)" in page and w.message.value in page  # the current view, not the first
    assert page.count('<img alt="attention of layer 1, head 2" src="data:image/png;base64,') == 1
    w.text.value = "a"  # too short: the message, no figure
    page = w._repr_mimebundle_()["text/html"]
    assert "two tokens" in page and "<img" not in page
