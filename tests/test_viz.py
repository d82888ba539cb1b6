"""Plotting helpers: each returns a Figure holding what it was given, and refuses wrong shapes clearly."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from gptcourse import viz


def _pattern(T: int) -> torch.Tensor:
    w = torch.rand(T, T).tril()
    return w / w.sum(-1, keepdim=True)  # (T, T) rows sum to one


def test_printable_makes_whitespace_visible():
    assert viz.printable("a b\n\t") == "a\u2423b\\n\\t"


def test_attention_heatmap_shows_the_weights_and_labels():
    w = _pattern(5)
    fig = viz.attention_heatmap(w, list("ab c\n"), title="t")
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and ax.get_title() == "t"
    assert (ax.images[0].get_array() == w.numpy()).all()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "\u2423", "c", "\\n"]
    with pytest.raises(ValueError, match="one label per position"):
        viz.attention_heatmap(w, list("ab"))
    with pytest.raises(ValueError, match=r"\(T, T\)"):
        viz.attention_heatmap(torch.rand(2, 5, 5))


def test_attention_grid_has_one_panel_per_layer_and_head():
    w = torch.stack([torch.stack([_pattern(6) for _ in range(3)]) for _ in range(2)])  # (2, 3, 6, 6)
    fig = viz.attention_grid(w, list("abcdef"), title="grid")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    assert (panels[5].images[0].get_array() == w[1, 2].numpy()).all()
    assert panels[5].get_title() == "layer 1, head 2"
    with pytest.raises(ValueError, match=r"maps\[:, 0\]"):
        viz.attention_grid(w[:, None])  # attention_maps' 5-d output passed as is


def test_score_heatmap_annotates_every_head():
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.25], [0.0, 1.0]])
    fig = viz.score_heatmap(scores, title="previous-token")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.10", "0.90", "0.50", "0.25", "0.00", "1.00"]
    with pytest.raises(ValueError, match="n_layer, nh"):
        viz.score_heatmap(scores[0])


def test_probability_bars_follow_the_first_distributions_order():
    p1 = torch.tensor([0.1, 0.6, 0.3])
    p2 = torch.tensor([0.3, 0.4, 0.3])
    fig = viz.probability_bars([p1, p2], ["a", "b", "c"], ["T=0.7", "T=2"], top=2)
    ax1, ax2 = fig.axes
    assert [t.get_text() for t in ax1.get_xticklabels()] == ["b", "c"]
    assert [b.get_height() for b in ax2.patches] == pytest.approx([0.4, 0.3])
    with pytest.raises(ValueError, match="one title per distribution"):
        viz.probability_bars([p1], ["a", "b", "c"], [])


def test_live_loss_plot_redraws_at_evaluations():
    shown = []
    live = viz.LiveLossPlot(shown.append, every=3)
    rows = [{"iter": i, "train_loss": 4.0 - 0.1 * i} for i in range(5)]
    rows[4]["val_loss"] = 3.7
    for row in rows:
        live(row)
    assert live.draws == 2 and len(shown) == 2  # row 3 (every 3rd) and row 5 (an evaluation)
    lines = shown[-1].axes[0].get_lines()
    assert list(lines[0].get_ydata()) == pytest.approx([r["train_loss"] for r in rows])
    assert list(lines[1].get_ydata()) == [3.7]
    with pytest.raises(ValueError, match="every"):
        viz.LiveLossPlot(shown.append, every=0)


def test_allreduce_figure_names_every_worker():
    fig = viz.allreduce_figure(3)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "process 2" in text and "(g0 + g1 + g2) / 3" in text


def test_transformer_stacks_figure_draws_both_stacks():
    fig = viz.transformer_stacks_figure()
    left, right = fig.axes
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert "cross-attention" in {t.get_text() for t in left.texts}
    assert "cross-attention" not in {t.get_text() for t in right.texts}
    assert {"final LayerNorm", "masked self-attention", "self-attention (no mask)"} <= labels
    assert "encoder" in left.get_title() and "decoder only" in right.get_title()
