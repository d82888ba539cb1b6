"""The attention explorer: weights are a causal softmax, the controls reshape them, the widget follows."""

from __future__ import annotations

import math
import re

import pytest
import torch

from gptcourse.attention import attention_weights
from gptcourse.widgets.attention_explorer import (
    attention_explorer,
    attention_matrix,
    queries_and_keys,
    split_words,
    weights_html,
    word_vectors,
)

WORDS = split_words("The cat sat on the mat.")


def bar_weights(page: str) -> list[float]:
    return [float(w) for w in re.findall(r'class="gptcourse-attention-row" data-weight="([0-9.]+)"', page)]


def test_split_words():
    assert WORDS == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert split_words("") == []


def test_same_word_same_vector_whatever_the_case():
    v = word_vectors(["The", "cat", "the"], 8)
    assert v.shape == (3, 8)
    assert torch.equal(v[0], v[2])
    assert not torch.equal(v[0], v[1])


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
def test_matrix_is_a_softmax_of_scores(causal, scaled):
    dim, temperature = 32, 0.7
    w = attention_matrix(WORDS, dim, scaled=scaled, temperature=temperature, causal=causal)
    T = len(WORDS)
    assert w.shape == (T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(T))
    q, k = queries_and_keys(WORDS, dim)
    scores = q @ k.T * ((1 / math.sqrt(dim)) if scaled else 1.0) / temperature
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(w, scores.softmax(-1))
    if causal:
        assert torch.all(w.triu(1) == 0)
    else:
        assert torch.all(w > 0)


def test_uses_the_package_attention():
    q, k = queries_and_keys(WORDS, 16)
    torch.testing.assert_close(attention_matrix(WORDS, 16, causal=False), attention_weights(q, k))


def test_unscaled_scores_saturate_as_d_grows():
    """The lesson's point: without 1/sqrt(d) the largest weight heads to 1 as d grows; with it, it does not."""
    words = split_words("a b c d e f g h i j k l m n o p")

    def mean_max(dim, scaled):
        return attention_matrix(words, dim, scaled=scaled, causal=False).max(-1).values.mean().item()

    assert mean_max(512, scaled=False) > 0.9
    assert mean_max(512, scaled=False) > mean_max(8, scaled=False)
    assert mean_max(512, scaled=True) < 0.6


def test_temperature_sharpens_and_flattens():
    maxes = [attention_matrix(WORDS, 16, temperature=t, causal=False).max(-1).values.mean().item()
             for t in (0.1, 1.0, 10.0)]
    assert maxes[0] > maxes[1] > maxes[2]
    assert maxes[2] < 1.5 / len(WORDS)  # nearly uniform


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        attention_matrix(WORDS, temperature=0.0)
    with pytest.raises(ValueError, match="dim"):
        attention_matrix(WORDS, 0)
    assert attention_matrix([], 8).shape == (0, 0)


def test_weights_html():
    w = attention_matrix(WORDS, 16)
    page = weights_html(WORDS, w[3], 3)
    assert bar_weights(page) == pytest.approx(w[3].tolist(), abs=1e-6)
    assert "<b>on</b>" in page
    assert "&lt;" in weights_html(["<", "x"], torch.tensor([1.0, 0.0]), 0)
    assert "type a sentence" in weights_html([], torch.zeros(0), 0)


def test_widget_follows_every_control():
    w = attention_explorer("The cat sat on the mat.")
    assert "gptcourse-attention-explorer" in w._dom_classes
    T = len(WORDS)
    assert w.query.value == T - 1  # the last word by default
    for query in range(T):
        w.query.value = query
        bars = bar_weights(w.html.value)
        assert len(bars) == T
        assert all(b == 0 for b in bars[query + 1:])  # causal: nothing from the future
        assert bars == pytest.approx(attention_matrix(WORDS, w.dim.value)[query].tolist(), abs=1e-6)
    w.causal.value = False
    assert all(b > 0 for b in bar_weights(w.html.value))
    w.query.value = 2
    for dim in (w.dim.min, 64, w.dim.max):
        w.dim.value = dim
        for scaled in (True, False):
            w.scaled.value = scaled
            for exponent in (w.temperature.min, 0.0, w.temperature.max):  # a log slider: min/max are powers of 10
                w.temperature.value = 10**exponent
                expected = attention_matrix(WORDS, dim, scaled=scaled, temperature=10**exponent, causal=False)[2]
                assert bar_weights(w.html.value) == pytest.approx(expected.tolist(), abs=1e-6)


def test_temperature_slider_spans_sharp_to_flat():
    w = attention_explorer("The cat sat on the mat.")
    w.causal.value = False
    w.temperature.value = 10 ** w.temperature.max
    flat = max(bar_weights(w.html.value))
    w.temperature.value = 10 ** w.temperature.min
    sharp = max(bar_weights(w.html.value))
    assert sharp > flat


def test_widget_follows_the_sentence():
    w = attention_explorer("The cat sat on the mat.")
    w.query.value = 1
    w.sentence.value = "dog bites man"
    assert [label for label, _ in w.query.options] == ["0: dog", "1: bites", "2: man"]
    assert w.query.value == 1  # the same position is kept when it still exists
    assert len(bar_weights(w.html.value)) == 3
    w.query.value = 2
    w.sentence.value = "hi"
    assert w.query.value == 0 and len(bar_weights(w.html.value)) == 1
    w.sentence.value = ""
    assert "type a sentence" in w.html.value
    w.sentence.value = "a <b> & c"
    assert "&lt;" in w.html.value and "&amp;" in w.html.value
    assert "1: &lt;</td>" in w.html.value and "4: &amp;</td>" in w.html.value
    assert len(bar_weights(w.html.value)) == len(split_words("a <b> & c"))


def test_saved_notebook_gets_a_static_snapshot():
    w = attention_explorer("The <cat> sat")
    w.causal.value = False
    w.dim.value = 64
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Attention explorer" in bundle["text/plain"]
    assert w.html.value in bundle["text/html"]
    assert "d = 64" in bundle["text/html"] and "causal mask off" in bundle["text/html"]
    assert "Sentence: The &lt;cat&gt; sat" in bundle["text/html"]
