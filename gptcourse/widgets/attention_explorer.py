"""Lesson 03's attention explorer: pick a query word, the scaling and the mask, see where its attention goes.

The vectors are untrained: each word gets a fixed random vector (the same word always the same vector),
and fixed random matrices make its query and key. What the explorer shows is the mechanics: how the
1/sqrt(d) scale, a temperature and the causal mask reshape one row of attention weights. The logic is
plain functions (tested); `attention_explorer` is a thin widget on top. To draw the whole matrix, pass
`attention_matrix(...)` to `gptcourse.viz.attention_heatmap`.
"""

from __future__ import annotations

import html
import math
import re
import zlib

import ipywidgets as widgets
import torch

from ..attention import attention_weights, causal_mask
from .snapshot import Snapshot

__all__ = [
    "split_words",
    "word_vectors",
    "queries_and_keys",
    "attention_matrix",
    "weights_html",
    "AttentionExplorer",
    "attention_explorer",
]

DEFAULT_SENTENCE = "The cat sat on the mat because the cat was tired"


def split_words(sentence: str) -> list[str]:
    """Words and punctuation marks, in order: a stand-in for tokens that a reader can follow."""
    return re.findall(r"\w+|[^\w\s]", sentence)


def word_vectors(words: list[str], dim: int) -> torch.Tensor:
    """(T, dim) unit-variance vectors; a word (ignoring case) always gets the same one. Stands in for embeddings."""
    rows = []
    for word in words:
        g = torch.Generator().manual_seed(zlib.crc32(word.lower().encode("utf-8")))
        rows.append(torch.randn(dim, generator=g))  # (dim,)
    return torch.stack(rows) if rows else torch.zeros(0, dim)  # (T, dim)


def queries_and_keys(words: list[str], dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k: (T, dim) each, from fixed random projections scaled so every entry has variance about 1."""
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    x = word_vectors(words, dim)  # (T, dim)
    g = torch.Generator().manual_seed(seed)
    w_q = torch.randn(dim, dim, generator=g) / math.sqrt(dim)  # (dim, dim)
    w_k = torch.randn(dim, dim, generator=g) / math.sqrt(dim)
    return x @ w_q, x @ w_k  # (T, dim) @ (dim, dim) -> (T, dim)


def attention_matrix(
    words: list[str], dim: int = 16, *, scaled: bool = True, temperature: float = 1.0, causal: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """(T, T) weights: softmax(q k^T * s / temperature), s = 1/sqrt(dim) when `scaled`, else 1; rows sum to one."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if not words:
        return torch.zeros(0, 0)
    q, k = queries_and_keys(words, dim, seed)  # (T, dim) each
    # attention_weights always divides by sqrt(dim); multiply it back in to show the unscaled scores.
    q = q * ((1.0 if scaled else math.sqrt(dim)) / temperature)  # (T, dim)
    mask = causal_mask(len(words)) if causal else None  # (T, T)
    return attention_weights(q, k, mask)  # (T, T)


def weights_html(words: list[str], weights: torch.Tensor, query: int) -> str:
    """One row of attention as HTML bars: how much the word at `query` takes from every word. weights (T,)."""
    if not words:
        return '<div class="gptcourse-attention"><i>(no words: type a sentence)</i></div>'
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum().item()
    rows = []
    for j, (word, w) in enumerate(zip(words, weights.tolist())):
        colour = "#2563eb" if j != query else "#f59e0b"
        rows.append(
            f'<tr class="gptcourse-attention-row" data-weight="{w:.6f}"><td style="text-align:right;padding-right:6px">'
            f"{j}: {html.escape(word)}</td><td style=\"width:300px\"><div style=\"background:{colour};height:12px;"
            f'width:{300 * w:.1f}px"></div></td><td style="padding-left:6px">{w:.3f}</td></tr>'
        )
    return (
        f'<div class="gptcourse-attention"><b>{html.escape(words[query])}</b> (word {query}) attends to:'
        f'<table style="font-family:monospace">{"".join(rows)}</table>'
        f"<div>largest weight {weights.max().item():.3f}; entropy {entropy:.3f} nats "
        f"(uniform over {int((weights > 0).sum())} visible words: {math.log(max(int((weights > 0).sum()), 1)):.3f})"
        "</div></div>"
    )


class AttentionExplorer(Snapshot, widgets.VBox):
    """Controls `.sentence`, `.query`, `.dim`, `.scaled`, `.temperature`, `.causal` above the `.html` bars."""

    snapshot_name = "attention explorer"
    snapshot_invite = "change the sentence and the settings"

    def __init__(self, sentence: str = DEFAULT_SENTENCE, dim: int = 16):
        self.sentence = widgets.Text(value=sentence, description="Sentence", continuous_update=True,
                                     layout=widgets.Layout(width="95%"))
        self.query = widgets.Dropdown(description="Query word")
        self.dim = widgets.IntSlider(value=dim, min=2, max=512, description="d (q, k size)")
        self.scaled = widgets.Checkbox(value=True, description="divide by sqrt(d)")
        self.temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05,
                                                  description="temperature")
        self.causal = widgets.Checkbox(value=True, description="causal mask")
        self.html = widgets.HTML()
        controls = widgets.HBox([self.scaled, self.causal])
        super().__init__(children=[self.sentence, self.query, self.dim, self.temperature, controls, self.html])
        self.add_class("gptcourse-attention-explorer")
        self._quiet = False
        self._set_query_options()
        self.sentence.observe(self._on_sentence, names="value")
        for control in (self.query, self.dim, self.scaled, self.temperature, self.causal):
            control.observe(self._update, names="value")
        self._update()

    def snapshot(self) -> tuple[str, str]:
        settings = (f"d = {self.dim.value}, {'divided' if self.scaled.value else 'not divided'} by sqrt(d), "
                    f"temperature {self.temperature.value:.2g}, causal mask {'on' if self.causal.value else 'off'}")
        return settings, f"<p>Sentence: {html.escape(self.sentence.value)}</p>{self.html.value}"

    def words(self) -> list[str]:
        return split_words(self.sentence.value)

    def _set_query_options(self) -> None:
        words = self.words()
        old = self.query.value
        self._quiet = True  # changing the options moves the value: redraw once, afterwards
        try:
            self.query.options = [(f"{i}: {w}", i) for i, w in enumerate(words)]
            if words:  # keep the same position if it still exists, else the last word
                self.query.value = old if old is not None and old < len(words) else len(words) - 1
        finally:
            self._quiet = False

    def _on_sentence(self, change: dict) -> None:
        self._set_query_options()
        self._update()

    def weights(self) -> torch.Tensor:
        """The whole (T, T) matrix for the current settings."""
        return attention_matrix(self.words(), self.dim.value, scaled=self.scaled.value,
                                temperature=self.temperature.value, causal=self.causal.value)

    def _update(self, change: dict | None = None) -> None:
        if self._quiet:
            return
        words = self.words()
        if not words or self.query.value is None:
            self.html.value = weights_html([], torch.zeros(0), 0)
            return
        self.html.value = weights_html(words, self.weights()[self.query.value], self.query.value)


def attention_explorer(sentence: str = DEFAULT_SENTENCE, dim: int = 16) -> AttentionExplorer:
    """The explorer widget; display it as a notebook cell's last expression."""
    return AttentionExplorer(sentence, dim)
