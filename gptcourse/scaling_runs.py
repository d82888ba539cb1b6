"""Lesson 11's experiment: a grid of model sizes and token budgets trained with one recipe, and its figures.

A finished run is kept in its own folder and reused when the lesson runs again with the same configs, so
a second pass over the lesson costs seconds; a run whose configs changed is trained afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from .checkpoint import CKPT_NAME, read_checkpoint
from .config import GPTConfig
from .data import Dataset
from .params import count_parameters
from .recipes import TrainConfig
from .step import split_loss
from .train import TrainResult, train
from .trained import stale_reason

__all__ = ["GridRun", "non_embedding_params", "split_loss", "train_or_reuse", "grid_run", "loss_against_size",
           "loss_against_compute"]

LOSS_LABEL = "validation loss (nats per character)"


@dataclass(frozen=True)
class GridRun:
    """One trained model of the grid: its size, its tokens, its loss and what it cost."""

    width: int  # n_embd
    n_params: int  # N: non-embedding parameters
    tokens: int  # D: training tokens seen
    val_loss: float
    seconds: float  # wall-clock of the training run (evaluation included), as the trainer measured it
    reused: bool = False  # loaded from an earlier run of the lesson rather than trained now

    @property
    def compute(self) -> float:
        """C = 6 N D floating-point operations: 2 N per token forward, 4 N backward."""
        return 6.0 * self.n_params * self.tokens


def non_embedding_params(config: GPTConfig) -> int:
    """N as scaling laws count it: every parameter but the token and position embeddings (Kaplan et al. 2020)."""
    parts = count_parameters(config)
    return parts.total - parts.token_embedding - parts.position_embedding


def train_or_reuse(model_config: GPTConfig, cfg: TrainConfig, dataset: Dataset) -> tuple[TrainResult, bool]:
    """Train GPT(model_config) with cfg into cfg.out_dir, or load the finished run there; returns (result, reused).

    A run in cfg.out_dir made with the same model config, training config (reporting fields aside) and
    tokenizer is reused when finished and continued when a kill cut it short; any other run there is replaced.
    """
    if cfg.out_dir is None:
        raise ValueError("give cfg.out_dir: each run of the grid needs its own folder to be found again")
    out_dir = Path(cfg.out_dir)
    same = (out_dir / CKPT_NAME).exists() and not stale_reason(out_dir, model_config, cfg, dataset.tokenizer)
    finished = same and read_checkpoint(out_dir)["iter_num"] >= cfg.max_iters
    result = train(model_config, cfg, dataset=dataset, resume=same, overwrite=not same, progress=False)
    return result, finished


def grid_run(model_config: GPTConfig, cfg: TrainConfig, dataset: Dataset) -> GridRun:
    """One point of the grid: train (or reuse) GPT(model_config) with cfg, then measure it on all of dataset.val."""
    result, reused = train_or_reuse(model_config, cfg, dataset)
    tokens = cfg.max_iters * cfg.batch_size * cfg.gradient_accumulation_steps * model_config.block_size  # D
    return GridRun(width=model_config.n_embd, n_params=non_embedding_params(model_config), tokens=tokens,
                   val_loss=split_loss(result.model, dataset.val, model_config.block_size),
                   seconds=result.history[-1]["elapsed_s"], reused=reused)


def _log_axes(ax, losses: Sequence[float]) -> None:
    """Log-log axes whose loss ticks are plain numbers (1.8, 2.0, ...) rather than powers of ten."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = min(losses), max(losses)
    step = next(s for s in (0.1, 0.2, 0.5, 1.0) if (hi - lo) / s <= 10)  # at most ~10 labelled ticks
    ticks = np.arange(np.floor(lo / step) * step, hi + step, step)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1f}")
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)


def loss_against_size(
    runs: Sequence[GridRun],
    laws: dict[int, Callable[[float], float]],
    *,
    extra: Sequence[tuple[float, float, str, str]] = (),
    title: str = "validation loss against model size, one line per token budget",
) -> Figure:
    """Loss against N on log-log axes, a colour per token budget, each with its fitted law (laws[tokens](N)).

    `extra` adds marked points (N, loss, label, matplotlib format such as "r*"): a prediction and its check.
    """
    budgets = sorted({r.tokens for r in runs})
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    sizes = [r.n_params for r in runs] + [e[0] for e in extra]
    grid_n = np.geomspace(min(sizes) / 1.3, max(sizes) * 1.3, 100)
    colours = [f"C{i}" for i in range(len(budgets))]
    for tokens, colour in zip(budgets, colours):
        points = sorted((r.n_params, r.val_loss) for r in runs if r.tokens == tokens)
        ax.plot(*zip(*points), "o", color=colour, label=f"D = {tokens / 1e6:.2f}M tokens")
        if tokens in laws:
            ax.plot(grid_n, [laws[tokens](n) for n in grid_n], "-", color=colour, alpha=0.6, lw=1.2)
    for n, loss, label, fmt in extra:
        ax.plot([n], [loss], fmt, markersize=12, markerfacecolor="none" if "o" in fmt else None,
                markeredgewidth=2, label=label)
    _log_axes(ax, [r.val_loss for r in runs] + [e[1] for e in extra])
    ax.set_xlabel("non-embedding parameters N (log scale)")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title(title)
    ax.legend(fontsize=8, title="points: measured; lines: fitted law", title_fontsize=8)
    return fig


def loss_against_compute(
    runs: Sequence[GridRun],
    frontier: Sequence[int],
    *,
    optimal: Callable[[float], float] | None = None,
    title: str = "validation loss against training compute",
) -> Figure:
    """Loss against C = 6 N D, one line per model size through its token budgets; the runs on the compute
    frontier (indices into runs) ringed and joined; `optimal(C)`, the law's lowest loss at C, dashed."""
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    for i, n in enumerate(sorted({r.n_params for r in runs})):
        points = sorted((r.compute, r.val_loss) for r in runs if r.n_params == n)
        width = next(r.width for r in runs if r.n_params == n)
        ax.plot(*zip(*points), "o-", color=f"C{i}", alpha=0.8, label=f"N = {n:,} (n_embd {width})")
    best = [(runs[i].compute, runs[i].val_loss) for i in frontier]
    ax.plot(*zip(*best), "o", markersize=13, markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5,
            label="frontier: lowest loss so far")
    if optimal is not None:
        grid_c = np.geomspace(min(r.compute for r in runs), max(r.compute for r in runs), 100)
        ax.plot(grid_c, [optimal(c) for c in grid_c], "k--", lw=1, label="fitted law: best size at each C")
    _log_axes(ax, [r.val_loss for r in runs])
    ax.set_xlabel("training compute C = 6 N D (floating-point operations, log scale)")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
