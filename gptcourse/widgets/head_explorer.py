"""The attention-head explorer of lesson 10: pick a layer, a head and a text; see where each token looks.

`head_view` holds the logic (a plain function, unit-tested); `HeadExplorer` is the thin ipywidgets layer.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import nn

from ..heads import attention_maps, first_token_score, previous_token_score, same_token_score
from ..viz import attention_heatmap
from .snapshot import Snapshot, figure_html

__all__ = ["HeadView", "head_view", "HeadExplorer"]


@dataclass(frozen=True)
class HeadView:
    """One head's attention pattern on one text, with its scores."""

    layer: int
    head: int
    tokens: list[str]  # the text cut into tokens (the last block_size of them)
    weights: torch.Tensor  # (T, T): row = query, column = key
    previous_token: float  # mean weight on the token just before
    first_token: float  # mean weight parked on position 0
    same_token: float | None  # mean weight on earlier copies of the same token; None if nothing repeats


def head_view(model: nn.Module, tokenizer, text: str, layer: int, head: int) -> HeadView:
    """Layer `layer`, head `head` of `model` reading `text` (cropped to its last block_size tokens)."""
    ids = tokenizer.encode(text)[-model.config.block_size:]
    if len(ids) < 2:
        raise ValueError("type at least two tokens: attention patterns need a past to look at")
    n_layer, n_head = model.config.n_layer, model.config.n_head
    if not 0 <= layer < n_layer:
        raise ValueError(f"layer must be in 0..{n_layer - 1}, got {layer}")
    if not 0 <= head < n_head:
        raise ValueError(f"head must be in 0..{n_head - 1}, got {head}")
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    maps = attention_maps(model, idx)[layer].float().cpu()  # (n_layer, 1, nh, T, T) -> (1, nh, T, T)
    try:
        same = float(same_token_score(maps, idx.cpu())[head])
    except ValueError:  # no token repeats in this text
        same = None
    return HeadView(
        layer=layer,
        head=head,
        tokens=[tokenizer.decode([i]) for i in ids],
        weights=maps[0, head],  # (T, T)
        previous_token=float(previous_token_score(maps)[head]),
        first_token=float(first_token_score(maps)[head]),
        same_token=same,
    )


class HeadExplorer(Snapshot, widgets.VBox):
    """Layer and head sliders and a text box over one attention heatmap and the head's scores.

    The controls are attributes (`.layer`, `.head`, `.text`); after any change `.view` and `.figure` hold
    what is shown.
    """

    snapshot_name = "attention-head explorer"
    snapshot_invite = "pick another layer, head or text"

    def __init__(self, model: nn.Module, tokenizer, text: str = "First Citizen:\nBefore we proceed any further"):
        self.model, self.tokenizer = model, tokenizer
        style = {"description_width": "60px"}
        self.layer = widgets.IntSlider(value=0, min=0, max=model.config.n_layer - 1, description="layer",
                                       style=style, continuous_update=False)
        self.head = widgets.IntSlider(value=0, min=0, max=model.config.n_head - 1, description="head",
                                      style=style, continuous_update=False)
        self.text = widgets.Text(value=text, description="text", style=style, continuous_update=False,
                                 layout=widgets.Layout(width="95%"))
        self.message = widgets.HTML()
        self.plot = widgets.Output()
        self.view: HeadView | None = None
        self.figure: Figure | None = None
        self.error = ""
        for control in (self.layer, self.head, self.text):
            control.observe(self._changed, names="value")
        super().__init__([self.text, widgets.HBox([self.layer, self.head]), self.message, self.plot])
        self.refresh()

    def _changed(self, _change) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the view from the controls and redraw the heatmap."""
        try:
            self.view = head_view(self.model, self.tokenizer, self.text.value, self.layer.value, self.head.value)
            self.error = ""
        except ValueError as err:  # too short a text, or a character outside the vocabulary
            self.view, self.error = None, str(err)
        if self.view is None:
            self.message.value = f"<b style='color:#b00'>{html.escape(self.error)}</b>"
        else:
            v = self.view
            same = "n/a (no repeated token)" if v.same_token is None else f"{v.same_token:.2f}"
            self.message.value = (f"scores of this head: previous-token {v.previous_token:.2f}, "
                                  f"same-token {same}, first-token {v.first_token:.2f}")
        self.figure = None if self.view is None else attention_heatmap(
            self.view.weights, self.view.tokens, title=f"layer {self.view.layer}, head {self.view.head}")
        self.plot.clear_output(wait=True)
        if self.figure is None:
            return
        with self.plot:
            from IPython.display import display

            display(self.figure)

    def snapshot(self) -> tuple[str, str]:
        view = f"<p>Text: {html.escape(self.text.value)}</p><p>{self.message.value}</p>"
        if self.figure is not None:
            view += figure_html(self.figure, f"attention of layer {self.layer.value}, head {self.head.value}")
        return f"layer {self.layer.value}, head {self.head.value}", view
