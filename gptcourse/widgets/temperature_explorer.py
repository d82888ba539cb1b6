"""The temperature explorer of lesson 09: sliders for temperature, top-k and top-p move the next-token
distribution and draw a sample from the model.

`temperature_view` and `sample_text` hold the logic (plain functions, unit-tested); `TemperatureExplorer`
is the thin ipywidgets layer that calls them whenever a control changes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import nn

from ..sampling import entropy, generate, next_token_probs
from ..viz import printable
from .snapshot import Snapshot, figure_html

__all__ = ["TemperatureView", "temperature_view", "view_figure", "sample_text", "TemperatureExplorer"]


@dataclass(frozen=True)
class TemperatureView:
    """What the explorer shows for one setting of its controls."""

    probs: torch.Tensor  # (V,) the distribution sampling draws from
    top_ids: list[int]  # the most likely tokens, most likely first
    top_labels: list[str]  # their text, made printable
    entropy: float  # in nats: 0 for a sure thing, ln(V) for uniform
    kept: int  # tokens with non-zero probability after top-k / top-p


def _settings(top_k: int, top_p: float) -> tuple[int | None, float | None]:
    """The controls' "off" positions (top_k 0, top_p 1.0) mean no filter."""
    return (top_k or None), (None if top_p >= 1.0 else top_p)


def temperature_view(
    logits: torch.Tensor,
    labels: Sequence[str],
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    n_show: int = 12,
) -> TemperatureView:
    """The next-token distribution for one (V,) logits vector under temperature, top-k (0 = off), top-p (1 = off)."""
    if logits.dim() != 1:
        raise ValueError(f"logits must be one (V,) vector, got shape {tuple(logits.shape)}")
    if len(labels) != logits.numel():
        raise ValueError(f"need one label per token: {len(labels)} labels for {logits.numel()} logits")
    k, p = _settings(top_k, top_p)
    probs = next_token_probs(logits, temperature, k, p)  # (V,)
    top = torch.argsort(probs, descending=True)[: min(n_show, probs.numel())].tolist()
    return TemperatureView(
        probs=probs,
        top_ids=top,
        top_labels=[printable(labels[i]) for i in top],
        entropy=float(entropy(probs)),
        kept=int((probs > 0).sum()),
    )


def view_figure(view: TemperatureView, title: str = "") -> Figure:
    """The view as a bar plot of the most likely next tokens (probability axis fixed at 0..1)."""
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    values = view.probs[view.top_ids].float().cpu().numpy()
    ax.bar(range(len(view.top_ids)), values, color="tab:blue")
    ax.set_xticks(range(len(view.top_ids)), view.top_labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_xlabel("next token (most likely first)")
    ax.set_title(title or f"entropy {view.entropy:.2f} nats, {view.kept} tokens can be drawn")
    return fig


def sample_text(
    model: nn.Module,
    tokenizer,
    prompt: str,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    max_new_tokens: int = 80,
    seed: int = 0,
) -> str:
    """The prompt continued by max_new_tokens sampled tokens; the same seed and settings give the same text."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty: type at least one character")
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    k, p = _settings(top_k, top_p)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, idx, max_new_tokens, temperature=temperature, top_k=k, top_p=p, generator=generator)
    return tokenizer.decode(out[0, len(ids):].tolist())


class TemperatureExplorer(Snapshot, widgets.VBox):
    """Sliders for temperature, top-k, top-p and the seed, a prompt box, the distribution and a sample.

    Every control is an attribute (`.temperature`, `.top_k`, `.top_p`, `.seed`, `.prompt`); after any change
    `.view`, `.figure` and `.sample` hold what is shown, so tests can drive the controls and read the result.
    """

    snapshot_name = "temperature explorer"
    snapshot_invite = "move the sliders"

    def __init__(self, model: nn.Module, tokenizer, prompt: str = "ROMEO:\n", max_new_tokens: int = 80):
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        vocab = tokenizer.vocab_size
        self.labels = [tokenizer.decode([i]) for i in range(vocab)]
        style = {"description_width": "90px"}
        self.temperature = widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05, description="temperature",
                                               style=style, continuous_update=False)
        self.top_k = widgets.IntSlider(value=0, min=0, max=vocab, description="top-k (0=off)", style=style,
                                       continuous_update=False)
        self.top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p (1=off)",
                                         style=style, continuous_update=False)
        self.seed = widgets.IntSlider(value=0, min=0, max=99, description="seed", style=style,
                                      continuous_update=False)
        self.prompt = widgets.Text(value=prompt, description="prompt", style=style, continuous_update=False)
        self.message = widgets.HTML()
        self.plot = widgets.Output()
        self.text = widgets.Output()
        self.view: TemperatureView | None = None
        self.figure: Figure | None = None
        self.sample = ""
        self.error = ""
        self._logits_cache: dict[str, torch.Tensor] = {}
        for control in (self.temperature, self.top_k, self.top_p, self.seed, self.prompt):
            control.observe(self._changed, names="value")
        super().__init__([self.prompt, self.temperature, self.top_k, self.top_p, self.seed, self.message,
                          self.plot, self.text])
        self.refresh()

    def _next_logits(self, prompt: str) -> torch.Tensor:
        """The model's logits for the token after the prompt (the last block_size tokens of it): (V,)."""
        if prompt not in self._logits_cache:
            ids = self.tokenizer.encode(prompt)[-self.model.config.block_size:]
            if not ids:
                raise ValueError("the prompt is empty: type at least one character")
            device = next(self.model.parameters()).device
            with torch.no_grad():
                self.model.eval()
                logits = self.model(torch.tensor([ids], device=device))  # (1, T, V)
            self._logits_cache[prompt] = logits[0, -1].float().cpu()  # (V,)
        return self._logits_cache[prompt]

    def _changed(self, _change) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the view and the sample from the controls, and redraw."""
        try:
            logits = self._next_logits(self.prompt.value)
            self.view = temperature_view(logits, self.labels, self.temperature.value, self.top_k.value,
                                         self.top_p.value)
            self.sample = sample_text(self.model, self.tokenizer, self.prompt.value, self.temperature.value,
                                      self.top_k.value, self.top_p.value, self.max_new_tokens, self.seed.value)
            self.error = ""
        except ValueError as err:  # e.g. an empty prompt or a character outside the vocabulary
            self.view, self.sample, self.error = None, "", str(err)
        self.message.value = f"<b style='color:#b00'>{html.escape(self.error)}</b>" if self.error else ""
        self.figure = None if self.view is None else view_figure(self.view)
        self.plot.clear_output(wait=True)
        self.text.clear_output(wait=True)
        if self.figure is None:
            return
        with self.plot:
            from IPython.display import display

            display(self.figure)
        with self.text:
            print(self.prompt.value + self.sample)

    def snapshot(self) -> tuple[str, str]:
        settings = (f"temperature {self.temperature.value:.2f}, top-k {self.top_k.value or 'off'}, "
                    f"top-p {'off' if self.top_p.value >= 1.0 else f'{self.top_p.value:.2f}'}, seed {self.seed.value}")
        view = f"<p>Prompt: {html.escape(self.prompt.value)}</p>{self.message.value}"
        if self.figure is not None:
            view += (figure_html(self.figure, "the next-token distribution")
                     + f"<pre>{html.escape(self.prompt.value + self.sample)}</pre>")
        return settings, view
