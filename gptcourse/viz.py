"""Plotting helpers for lessons 08-11. Each returns a matplotlib Figure; the caller shows or saves it.

Nothing here chooses a backend or shows a window, so the functions work the same in a notebook, a test
and a script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, ScalarFormatter

__all__ = [
    "printable",
    "attention_heatmap",
    "attention_grid",
    "score_heatmap",
    "probability_bars",
    "loss_figure",
    "LiveLossPlot",
    "allreduce_figure",
    "power_law_figure",
]


def printable(token: str) -> str:
    """A token as a readable axis label: newline, tab and space made visible."""
    return token.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "\u2423")


def _labels(tokens: Sequence[str] | None, n: int) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    if len(tokens) != n:
        raise ValueError(f"got {len(tokens)} token labels for {n} positions; pass one label per position")
    return [printable(t) for t in tokens]


def _check_square(weights: torch.Tensor, name: str = "weights") -> None:
    if weights.dim() < 2 or weights.size(-1) != weights.size(-2):
        raise ValueError(f"{name} must end in a square (T, T) attention pattern, got shape {tuple(weights.shape)}")


def attention_heatmap(
    weights: torch.Tensor, tokens: Sequence[str] | None = None, title: str = "", ax=None
) -> Figure:
    """One attention pattern (T, T) as a heatmap: row = query (who looks), column = key (looked at)."""
    if weights.dim() != 2:
        raise ValueError(f"weights must be one (T, T) pattern, got shape {tuple(weights.shape)}")
    _check_square(weights)
    T = weights.size(-1)
    labels = _labels(tokens, T)
    if ax is None:
        side = min(9.0, 2.5 + 0.28 * T)
        fig = Figure(figsize=(side + 1.0, side))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    image = ax.imshow(weights.detach().float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(T), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(T), labels, fontsize=8)
    ax.set_xlabel("key: the token looked at")
    ax.set_ylabel("query: the token looking")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return fig


def attention_grid(weights: torch.Tensor, tokens: Sequence[str] | None = None, title: str = "") -> Figure:
    """Every head of every layer: weights (n_layer, nh, T, T) -> a grid of heatmaps, layers down, heads across."""
    if weights.dim() != 4:
        raise ValueError(
            f"weights must be (n_layer, nh, T, T), got shape {tuple(weights.shape)}; "
            "for attention_maps' (n_layer, B, nh, T, T) output pick one sequence: maps[:, 0]"
        )
    _check_square(weights)
    n_layer, nh, T, _ = weights.shape
    labels = _labels(tokens, T)
    fig = Figure(figsize=(2.3 * nh + 0.8, 2.3 * n_layer + 0.6), layout="constrained")
    axes = fig.subplots(n_layer, nh, squeeze=False)
    data = weights.detach().float().cpu().numpy()
    image = None
    for layer in range(n_layer):
        for head in range(nh):
            ax = axes[layer][head]
            image = ax.imshow(data[layer, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            show = T <= 24  # beyond that the labels overlap; the picture still speaks
            ax.set_xticks(range(T) if show else [], labels if show else [], rotation=90, fontsize=6)
            ax.set_yticks(range(T) if show else [], labels if show else [], fontsize=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    if title:
        fig.suptitle(title)
    return fig


def score_heatmap(
    scores: torch.Tensor, title: str = "", label: str = "score", ax=None, fmt: str = "{:.2f}"
) -> Figure:
    """A score per head, (n_layer, nh), as an annotated heatmap: which head does the thing, and how much."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be (n_layer, nh), got shape {tuple(scores.shape)}")
    n_layer, nh = scores.shape
    if ax is None:
        fig = Figure(figsize=(1.1 * nh + 2.0, 0.8 * n_layer + 1.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    data = scores.detach().float().cpu().numpy()
    image = ax.imshow(data, cmap="magma", vmin=0.0, vmax=max(1.0, float(data.max())))
    for layer in range(n_layer):
        for head in range(nh):
            value = data[layer, head]
            ax.text(head, layer, fmt.format(value), ha="center", va="center", fontsize=9,
                    color="black" if value > 0.6 else "white")
    ax.set_xticks(range(nh), [f"head {h}" for h in range(nh)])
    ax.set_yticks(range(n_layer), [f"layer {ly}" for ly in range(n_layer)])
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)
    return fig


def probability_bars(
    probs: Sequence[torch.Tensor], labels: Sequence[str], titles: Sequence[str], top: int = 10
) -> Figure:
    """Side-by-side bar plots of next-token distributions (each (V,)), showing the `top` most likely tokens.

    The tokens shown are the most likely under the first distribution, in the same order in every panel,
    so the eye can follow one token as the distribution changes.
    """
    if len(probs) != len(titles) or not probs:
        raise ValueError(f"need one title per distribution, got {len(probs)} distributions and {len(titles)} titles")
    V = probs[0].numel()
    if any(p.numel() != V for p in probs) or len(labels) != V:
        raise ValueError(f"every distribution and the labels must have the vocabulary's size {V}")
    order = torch.argsort(probs[0].detach().float().cpu(), descending=True)[:top].tolist()
    names = [printable(labels[i]) for i in order]
    fig = Figure(figsize=(3.2 * len(probs) + 0.5, 3.4), layout="constrained")
    axes = fig.subplots(1, len(probs), sharey=True, squeeze=False)[0]
    for ax, p, title in zip(axes, probs, titles):
        values = p.detach().float().cpu()[order].numpy()
        ax.bar(range(len(order)), values, color="tab:blue")
        ax.set_xticks(range(len(order)), names, fontsize=9)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.set_xlabel("next token")
    axes[0].set_ylabel("probability")
    return fig


def loss_figure(history: Sequence[Mapping], title: str = "loss", ax=None) -> Figure:
    """Training rows (dicts with iter, train_loss and, at evaluations, val_loss) as loss curves."""
    if ax is None:
        fig = Figure(figsize=(7, 3.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    train = [(r["iter"], r["train_loss"]) for r in history if r.get("train_loss") is not None]
    val = [(r["iter"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.8, label="train (batch)")
    if val:
        ax.plot(*zip(*val), "o-", color="tab:orange", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    return fig


class LiveLossPlot:
    """A training callback that redraws the loss curves in place as rows arrive (every `every` rows).

    `display` is a function that takes a Figure and shows it, e.g. an IPython display handle's `update`.
    The rows it has seen stay in `.history`, so the final picture can be drawn again after training.
    """

    def __init__(self, display: Callable[[Figure], object], every: int = 1, title: str = "training loss"):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.display, self.every, self.title = display, every, title
        self.history: list[dict] = []
        self.draws = 0

    def __call__(self, row: Mapping) -> None:
        self.history.append(dict(row))
        if row.get("val_loss") is not None or len(self.history) % self.every == 0:
            self.draw()

    def draw(self) -> Figure:
        fig = loss_figure(self.history, title=self.title)
        self.display(fig)
        self.draws += 1
        return fig


def allreduce_figure(n_workers: int = 2) -> Figure:
    """Data parallelism in one picture: each worker has the whole model and its own batch; gradients are averaged."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    fig = Figure(figsize=(2.6 * n_workers + 2.0, 4.2))
    ax = fig.add_subplot()
    ax.set_xlim(0, n_workers)
    ax.set_ylim(0, 5)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.35", "linewidth": 1.2}
    for w in range(n_workers):
        cx = w + 0.5
        ax.text(cx, 4.55, f"batch {w}\n(its own random draw)", ha="center", va="center", fontsize=9,
                bbox={**box, "facecolor": "#e8f1fb"})
        ax.text(cx, 3.35, f"process {w}\nfull copy of the model\nforward + backward", ha="center", va="center",
                fontsize=9, bbox={**box, "facecolor": "#fdf0dc"})
        ax.text(cx, 2.15, f"gradient g{w}", ha="center", va="center", fontsize=9, bbox={**box, "facecolor": "#fde2e2"})
        ax.text(cx, 0.45, "optimizer step\n(same update everywhere)", ha="center", va="center", fontsize=9,
                bbox={**box, "facecolor": "#e3f5e1"})
        for y0, y1 in ((4.2, 3.8), (2.9, 2.4), (1.0, 0.85)):
            ax.annotate("", (cx, y1), (cx, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})
        ax.annotate("", (cx, 1.45), (cx, 1.9), arrowprops={"arrowstyle": "->", "color": "0.3"})
    terms = " + ".join(f"g{w}" for w in range(n_workers))
    ax.text(n_workers / 2, 1.25, f"all-reduce: every process receives  g = ({terms}) / {n_workers}",
            ha="center", va="center", fontsize=10, bbox={**box, "facecolor": "#f3e8fb"})
    ax.set_title("data parallelism: split the batch, average the gradients", fontsize=11)
    return fig


def power_law_figure(
    x: Sequence[float],
    y: Sequence[float],
    law: Callable[[float], float] | None = None,
    *,
    xlabel: str,
    ylabel: str = "validation loss",
    title: str = "",
    labels: Sequence[str] | None = None,
    extra: Sequence[tuple[float, float, str]] = (),
    ax=None,
) -> Figure:
    """Measured points on log-log axes, with an optional fitted law drawn as a line across (and beyond) them.

    `extra` adds marked points (x, y, label), e.g. a prediction and the run that checks it.
    """
    if len(x) != len(y) or not len(x):
        raise ValueError(f"need the same number (>= 1) of x and y values, got {len(x)} and {len(y)}")
    if ax is None:
        fig = Figure(figsize=(6, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.loglog(x, y, "o", color="tab:blue", label="trained models")
    if labels is not None:
        for xi, yi, text in zip(x, y, labels):
            ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    all_x = list(x) + [e[0] for e in extra]
    if law is not None:
        lo, hi = math.log(min(all_x)), math.log(max(all_x))
        pad = 0.1 * (hi - lo or 1.0)
        xs = [math.exp(lo - pad + (hi - lo + 2 * pad) * i / 99) for i in range(100)]
        ax.loglog(xs, [law(v) for v in xs], "--", color="tab:gray", label="fitted power law")
    styles = [  # a filled star, then hollow markers, so a measurement never hides the prediction it checks
        {"marker": "*", "markersize": 14, "color": "tab:red"},
        {"marker": "o", "markersize": 13, "color": "tab:green", "markerfacecolor": "none", "markeredgewidth": 2},
        {"marker": "s", "markersize": 12, "color": "tab:purple", "markerfacecolor": "none", "markeredgewidth": 2},
    ]
    for i, (xe, ye, text) in enumerate(extra):
        ax.loglog([xe], [ye], linestyle="none", label=text, **styles[i % len(styles)])
    plain = ScalarFormatter()
    plain.set_scientific(False)
    ax.yaxis.set_major_formatter(plain)  # losses span less than a decade: 2.8 reads better than 2.8 x 10^0
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))  # minor ticks sit 0.05 apart here
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
