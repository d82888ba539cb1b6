"""Plotting helpers for lessons 07-11. Each returns a matplotlib Figure; the caller shows or saves it.

Nothing here chooses a backend or shows a window, so the functions work the same in a notebook, a test
and a script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

__all__ = [
    "printable",
    "attention_heatmap",
    "attention_grid",
    "score_heatmap",
    "probability_bars",
    "loss_figure",
    "LiveLossPlot",
    "allreduce_figure",
    "transformer_stacks_figure",
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
    """Every head of every layer: weights (n_layer, nh, T, T) -> a grid of heatmaps, layers down, heads across.

    The panels share their axes: the token labels stand on the left column and the bottom row only, each
    panel gets room for them, and beyond 32 tokens only every few tokens are labelled.
    """
    if weights.dim() != 4:
        raise ValueError(
            f"weights must be (n_layer, nh, T, T), got shape {tuple(weights.shape)}; "
            "for attention_maps' (n_layer, B, nh, T, T) output pick one sequence: maps[:, 0]"
        )
    _check_square(weights)
    n_layer, nh, T, _ = weights.shape
    labels = _labels(tokens, T)
    every = math.ceil(T / 32)  # at most 32 labels per axis, about 8 points apart at the panel size below
    ticks = list(range(0, T, every))
    side = min(3.9, 0.4 + 0.11 * len(ticks))  # inches per panel
    fig = Figure(figsize=(side * nh + 1.8, side * n_layer + 1.4), layout="constrained")
    axes = fig.subplots(n_layer, nh, squeeze=False, sharex=True, sharey=True)
    data = weights.detach().float().cpu().numpy()
    image = None
    for layer in range(n_layer):
        for head in range(nh):
            ax = axes[layer][head]
            image = ax.imshow(data[layer, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=8)
            ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=8)
            ax.tick_params(labelbottom=layer == n_layer - 1, labelleft=head == 0)
    fig.supxlabel("key: the token looked at", fontsize=10)
    fig.supylabel("query: the token looking", fontsize=10)
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


STACK_COLORS = {"embed": "#e9ddf5", "attn": "#dbe9f8", "cross": "#fde3c8", "mlp": "#dcf2d8", "norm": "#ececec",
                "head": "#fbdada"}


def _stack(ax, x: float, parts: Sequence[tuple[str, str]], repeat: tuple[int, int],
           skips: Sequence[tuple[int, int]]) -> list[float]:
    """Boxes (label, colour key) from the bottom up, centred at x; a dashed frame marks parts[repeat[0]:repeat[1]]
    as repeated N times; a skip (i, j) is a residual line from just below box i into box j. Returns the centres."""
    width, height, gap, line = 1.9, 0.36, 0.62, {"color": "0.3", "lw": 1.0}
    ys = [0.75 + gap * i + 0.3 * (i >= repeat[0]) + 0.3 * (i >= repeat[1]) for i in range(len(parts))]
    for i, (y, (label, kind)) in enumerate(zip(ys, parts)):
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.02",
                                    facecolor=STACK_COLORS[kind], edgecolor="0.35"))
        ax.text(x, y, label, ha="center", va="center", fontsize=9)
        below = ys[i - 1] + height / 2 if i else 0.2
        ax.annotate("", (x, y - height / 2), (x, below), arrowprops={"arrowstyle": "->", **line})
    for i, j in skips:  # the residual path: around the sub-layer, into the addition
        start, side = (ys[i] + ys[i - 1]) / 2, x + width / 2 + 0.15
        ax.plot([x, side, side], [start, start, ys[j]], **line)
        ax.annotate("", (x + width / 2, ys[j]), (side, ys[j]), arrowprops={"arrowstyle": "->", **line})
    low, high = ys[repeat[0]] - 0.42, ys[repeat[1] - 1] + 0.42
    ax.add_patch(FancyBboxPatch((x - width / 2 - 0.4, low), width + 0.8, high - low, boxstyle="round,pad=0.02",
                                fill=False, linestyle="--", edgecolor="0.5"))
    ax.text(x + width / 2 + 0.45, high - 0.15, "x N", ha="left", va="center", fontsize=10, color="0.3")
    return ys


def transformer_stacks_figure() -> Figure:
    """The 2017 encoder-decoder Transformer beside GPT's decoder-only stack, drawn from input (bottom) to output."""
    fig = Figure(figsize=(13, 7.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2.0, 1.0])
    encoder = [("token embedding + positions", "embed"), ("self-attention (no mask)", "attn"),
               ("add, then LayerNorm", "norm"), ("MLP", "mlp"), ("add, then LayerNorm", "norm")]
    decoder = [("token embedding + positions", "embed"), ("masked self-attention", "attn"),
               ("add, then LayerNorm", "norm"), ("cross-attention", "cross"), ("add, then LayerNorm", "norm"),
               ("MLP", "mlp"), ("add, then LayerNorm", "norm"), ("linear", "head"),
               ("softmax: next word", "head")]
    gpt = [("token embedding + positions", "embed"), ("LayerNorm", "norm"), ("masked self-attention", "attn"),
           ("add", "norm"), ("LayerNorm", "norm"), ("MLP", "mlp"), ("add", "norm"), ("final LayerNorm", "norm"),
           ("linear (tied to the embedding)", "head"), ("softmax: next token", "head")]
    enc_y = _stack(left, 1.5, encoder, (1, 5), [(1, 2), (3, 4)])
    dec_y = _stack(left, 5.3, decoder, (1, 7), [(1, 2), (3, 4), (5, 6)])
    left.annotate("", (5.3 - 0.95, dec_y[3]), (1.5, enc_y[-1] + 0.45),
                  arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 1.5, "connectionstyle": "arc3,rad=-0.3"})
    left.text(3.0, enc_y[-1] + 1.3, "the encoder's output: keys and values\nfor every decoder layer's cross-attention",
              ha="center", va="center", fontsize=9, color="tab:orange")
    left.text(1.5, 0.05, "source: the sentence to translate,\nread all at once", ha="center", va="center", fontsize=9)
    left.text(5.3, 0.05, "target: the translation so far", ha="center", va="center", fontsize=9)
    left.set_title("2017 Transformer: encoder (left) and decoder (right), post-norm", fontsize=11)
    _stack(right, 1.5, gpt, (1, 7), [(1, 3), (4, 6)])
    right.text(1.5, 0.05, "the text so far", ha="center", va="center", fontsize=9)
    right.set_title("GPT-2: decoder only, pre-norm", fontsize=11)
    for ax, width in ((left, 7.0), (right, 3.4)):
        ax.set_xlim(0, width)
        ax.set_ylim(-0.3, 7.9)
        ax.axis("off")
    return fig
