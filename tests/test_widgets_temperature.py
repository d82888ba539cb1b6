"""The temperature explorer: its logic on known logits, and every control of the widget moving the output."""

from __future__ import annotations

import math

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.tokenizers import CharTokenizer
from gptcourse.widgets.temperature_explorer import TemperatureExplorer, sample_text, temperature_view, view_figure

CHARS = "abcdefgh \n"


@pytest.fixture
def tokenizer():
    return CharTokenizer(CHARS)


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with torch.no_grad():  # sharper logits than an untrained model's, so the settings visibly matter
        model.lm_head.weight.mul_(4)
    return model.eval()


def test_view_follows_temperature():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    labels = ["a", "b", " ", "\n"]
    cold = temperature_view(logits, labels, 0.0)
    assert cold.probs.tolist() == [1.0, 0.0, 0.0, 0.0] and cold.entropy == pytest.approx(0.0) and cold.kept == 1
    one = temperature_view(logits, labels, 1.0)
    assert torch.allclose(one.probs, logits.softmax(-1))
    assert one.top_ids == [0, 1, 2, 3] and one.top_labels == ["a", "b", "\u2423", "\\n"]
    entropies = [temperature_view(logits, labels, t).entropy for t in (0.3, 0.7, 1.0, 2.0, 10.0)]
    assert entropies == sorted(entropies) and entropies[-1] < math.log(4)


def test_view_filters_and_refuses_bad_input():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    labels = list("abcd")
    assert temperature_view(logits, labels, 1.0, top_k=2).kept == 2
    assert temperature_view(logits, labels, 1.0, top_p=0.5).kept == 1  # the top token alone has 0.64
    assert temperature_view(logits, labels, 1.0, top_k=0, top_p=1.0).kept == 4  # the "off" positions
    with pytest.raises(ValueError, match="one label per token"):
        temperature_view(logits, labels[:3], 1.0)
    with pytest.raises(ValueError, match="temperature"):
        temperature_view(logits, labels, -1.0)
    fig = view_figure(temperature_view(logits, labels, 1.0))
    assert len(fig.axes[0].patches) == 4


def test_sample_text_is_seeded(model, tokenizer):
    a = sample_text(model, tokenizer, "abc", 1.0, seed=1, max_new_tokens=30)
    assert len(a) == 30 and set(a) <= set(CHARS)
    assert a == sample_text(model, tokenizer, "abc", 1.0, seed=1, max_new_tokens=30)
    greedy = sample_text(model, tokenizer, "abc", 0.0, seed=1, max_new_tokens=30)
    assert greedy == sample_text(model, tokenizer, "abc", 0.0, seed=2, max_new_tokens=30)
    with pytest.raises(ValueError, match="empty"):
        sample_text(model, tokenizer, "", 1.0)


def test_every_control_moves_the_output(model, tokenizer):
    w = TemperatureExplorer(model, tokenizer, prompt="abc", max_new_tokens=40)
    assert w.view is not None and w.sample and w.error == ""
    first_entropy, first_sample = w.view.entropy, w.sample

    w.temperature.value = 0.0  # greedy: one sure token
    assert w.view.kept == 1 and w.view.entropy == pytest.approx(0.0)
    w.temperature.value = 2.5  # flatter than T = 1
    assert w.view.entropy > first_entropy

    w.top_k.value = 3
    assert w.view.kept == 3
    w.top_k.value = 0
    w.top_p.value = 0.3
    assert w.view.kept < tokenizer.vocab_size
    w.top_p.value = 1.0
    assert w.view.kept == tokenizer.vocab_size

    w.temperature.value = 1.0
    assert w.view.entropy == pytest.approx(first_entropy) and w.sample == first_sample
    w.seed.value = 7
    assert w.sample != first_sample  # another seed draws another text from the same distribution

    w.prompt.value = "hh\n"
    assert w.view.probs.sum().item() == pytest.approx(1.0) and w.sample
    w.prompt.value = ""  # an empty prompt is a message, not an exception
    assert w.view is None and "empty" in w.error and "empty" in w.message.value
    w.prompt.value = "xyz"  # outside the vocabulary
    assert w.view is None and "vocabulary" in w.error
    w.prompt.value = "abc"
    assert w.view is not None and w.error == "" and w.message.value == ""


def test_saved_notebook_gets_a_static_snapshot(model, tokenizer):
    w = TemperatureExplorer(model, tokenizer, prompt="ab", max_new_tokens=20)
    w.temperature.value, w.top_k.value, w.seed.value = 0.7, 3, 5
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Temperature explorer: run the notebook")
    page = bundle["text/html"]
    assert "(temperature 0.70, top-k 3, top-p off, seed 5)" in page
    assert "<p>Prompt: ab</p>" in page and f"<pre>ab{w.sample}</pre>" in page  # the sample now shown
    assert page.count('<img alt="the next-token distribution" src="data:image/png;base64,') == 1
    w.prompt.value = ""  # no distribution: the message, no figure
    page = w._repr_mimebundle_()["text/html"]
    assert "empty" in page and "<img" not in page
