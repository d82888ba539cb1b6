"""The trainer: `train` runs the pieces of `gptcourse.step` in a loop, plus what a real run needs.

Warmup and cosine decay, periodic evaluation, a progress bar, a metrics log, checkpoints that let a killed
run continue exactly (`gptcourse.run_state`), mixed precision (`gptcourse.precision`), and data-parallel
training under torchrun (`gptcourse.distributed`). It trains a new GPT, or any model you hand it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .checkpoint import CKPT_NAME, read_checkpoint
from .config import GPTConfig
from .data import Dataset, get_batch, load_dataset
from .env import pick_device, runs_dir
from .model import GPT
from .precision import autocast, grad_scaler, resolve_dtype
from .progress_bar import Progress
from .recipes import TrainConfig
from .run_state import MetricsLog, RunState
from .step import estimate_loss, get_lr, loss_fn
from .tokenizers import CharTokenizer, GPT2Tokenizer

__all__ = ["TrainResult", "train", "METRICS_NAME"]

METRICS_NAME = "metrics.jsonl"
EVAL_SEED_OFFSET = 1_000_003  # evaluation draws its batches from a stream apart from training's


@dataclass
class TrainResult:
    """What `train` hands back: the trained model (eval mode), its tokenizer, the logged rows, where it saved."""

    model: nn.Module
    tokenizer: CharTokenizer | GPT2Tokenizer
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    best_val_loss: float = float("inf")


def train(
    model_config: GPTConfig | None,
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    dataset: Dataset | None = None,
    callbacks: Iterable[Callable[[dict[str, Any]], None]] = (),
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train a new GPT(model_config), or `model`, and continue the checkpoint in cfg.out_dir with resume=True.

    `model` is any module mapping (B, T) token ids to (B, T, V) logits (your own GPT, a bigram baseline, a
    pretrained GPT with some parameters frozen): only parameters that require a gradient are trained, and
    its batches are `model_config.block_size` tokens long (model_config defaults to `model.config`).

    Each step: gradient_accumulation_steps micro-batches (shared among torchrun's processes), one clipped
    AdamW step at the scheduled rate. Every log_interval steps a row goes to metrics.jsonl and to each
    callback (iter, train_loss, lr, ms_per_iter, tokens_per_s, elapsed_s; eval_train_loss and val_loss at
    evaluations); every eval_interval steps (and at the end) the train and val losses are estimated and a
    checkpoint is written. An existing checkpoint is never replaced unless resume or overwrite says so.
    """
    info = distributed.detect()
    distributed.check_world(info.world_size, cfg.gradient_accumulation_steps)
    device = _resolve_device(cfg, info)
    distributed.setup(info, device)
    try:
        out_dir = Path(cfg.out_dir) if cfg.out_dir else runs_dir() / "run"
        dataset = dataset if dataset is not None else load_dataset(cfg.tokenizer)
        saved = _saved_state(out_dir, resume, overwrite)
        run = _new_run(model_config, cfg, model, dataset.tokenizer, device, info)
        note = run.restore(saved) if saved is not None else ""
        if resume and saved is None:
            note = f"no checkpoint in {out_dir} yet: starting from the beginning"
        result = _loop(run, dataset, out_dir, list(callbacks), progress and info.is_master, note)
        distributed.barrier()  # leave together (only after success: a dead peer would make this wait)
        return result
    finally:
        distributed.cleanup()


def _resolve_device(cfg: TrainConfig, info: distributed.DistInfo) -> torch.device:
    device = pick_device(None if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)  # one GPU per process
    return device


def _saved_state(out_dir: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """The checkpoint to continue from: only with resume; refuses to replace one unless overwrite."""
    if not (out_dir / CKPT_NAME).exists():
        return None
    if resume:
        return read_checkpoint(out_dir / CKPT_NAME)
    if not overwrite:
        raise ValueError(
            f"{out_dir} already holds a checkpoint: resume it (--resume / resume=True), choose another "
            "out_dir, or pass overwrite=True (--overwrite) to start again and replace it"
        )
    return None


def _new_run(
    model_config: GPTConfig | None,
    cfg: TrainConfig,
    model: nn.Module | None,
    tokenizer: CharTokenizer | GPT2Tokenizer,
    device: torch.device,
    info: distributed.DistInfo,
) -> RunState:
    """Step 0 of a run: the model (a new GPT unless one is given) on its device, its optimiser, its streams."""
    model_config = model_config if model_config is not None else getattr(model, "config", None)
    if model_config is None:
        raise ValueError("give a model_config (its block_size sets the batches' length), or a model with a .config")
    if model_config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocab_size ({model_config.vocab_size}) is smaller than the tokenizer's vocabulary "
            f"({tokenizer.vocab_size}): set vocab_size to at least {tokenizer.vocab_size}"
        )
    if model is None:
        torch.manual_seed(cfg.seed)  # the same initial weights in every process
        model = GPT(model_config)
    model.to(device)
    scaler = grad_scaler(device, resolve_dtype(cfg.dtype, device))
    return RunState.create(cfg, model_config, tokenizer, model, device, info, scaler)


def _loop(
    run: RunState, dataset: Dataset, out_dir: Path, callbacks: list[Callable], show: bool, note: str
) -> TrainResult:
    """Steps from run.iter_num to cfg.max_iters, logging, evaluating and saving on the way."""
    cfg, info, device = run.cfg, run.info, run.device
    model = torch.compile(run.model) if cfg.compile else run.model
    model = distributed.wrap(model, device) if info.enabled else model
    dtype = resolve_dtype(cfg.dtype, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores (a GPU-wide setting)
        torch.backends.cudnn.allow_tf32 = True
    log = MetricsLog(out_dir / METRICS_NAME, keep_before=run.iter_num) if info.is_master else None
    tokens_per_iter = cfg.batch_size * run.model_config.block_size * cfg.gradient_accumulation_steps
    n_params = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    bar = Progress(cfg.max_iters, run.iter_num, enabled=show)
    if note:
        bar.say(note)
    bar.say(f"training {n_params:,} parameters on {device} ({str(dtype).replace('torch.', '')}), {info.world_size} "
            f"process(es), {tokens_per_iter:,} tokens per step, steps {run.iter_num}..{cfg.max_iters}")
    first, last_row = run.iter_num, None
    started = run.elapsed_s - time.perf_counter()  # + perf_counter() = seconds into the run
    t_last, steps_since = time.perf_counter(), 0
    model.train()
    try:
        for it in range(run.iter_num, cfg.max_iters):
            lr = get_lr(it, learning_rate=cfg.learning_rate, warmup_iters=cfg.warmup_iters,
                        lr_decay_iters=cfg.lr_decay_iters, min_lr=cfg.min_lr)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            loss_sum = _accumulate_gradients(run, model, dataset.train, dtype)
            _optimizer_step(run)
            run.iter_num, steps_since = it + 1, steps_since + 1
            evaluate = run.iter_num % cfg.eval_interval == 0 or run.iter_num == cfg.max_iters
            if not (it % cfg.log_interval == 0 or evaluate):
                bar.update()
                continue
            if info.enabled:  # the logged loss is the whole global batch's, not rank 0's share
                torch.distributed.all_reduce(loss_sum, op=torch.distributed.ReduceOp.AVG)
            ms = (time.perf_counter() - t_last) * 1000 / steps_since
            row: dict[str, Any] = {"iter": it, "train_loss": loss_sum.item(), "lr": lr, "ms_per_iter": round(ms, 3),
                                   "tokens_per_s": round(tokens_per_iter * 1000 / ms, 1)}
            if evaluate and info.is_master:
                eval_gen = torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET)  # the same batches every time
                losses = estimate_loss(run.model, dataset, cfg, eval_gen, block_size=run.model_config.block_size)
                row["eval_train_loss"], row["val_loss"] = losses["train"], losses["val"]
                run.best_val_loss = min(run.best_val_loss, losses["val"])
                bar.say(f"step {run.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            run.elapsed_s = started + time.perf_counter()
            row["elapsed_s"] = round(run.elapsed_s, 3)  # wall-clock time into the run, evaluation included
            if log is not None:
                log.append(row)
                for callback in callbacks:
                    callback(row)
            if evaluate:
                run.save(out_dir / CKPT_NAME)
            bar.update(loss=row["train_loss"])
            last_row, t_last, steps_since = row, time.perf_counter(), 0
    finally:
        bar.close(_summary(run, first, last_row))
        if log is not None:
            log.close()
    run.model.eval()
    return TrainResult(model=run.model, tokenizer=run.tokenizer, history=log.rows if log else [], out_dir=out_dir,
                       best_val_loss=run.best_val_loss)


def _accumulate_gradients(run: RunState, model: nn.Module, data: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """This process's micro-batches of one step, their gradients summed; returns their mean loss (a tensor)."""
    local_steps, block_size = len(run.generators), run.model_config.block_size
    loss_sum = torch.zeros((), device=run.device)
    for m, generator in enumerate(run.generators):
        x, y = get_batch(data, block_size, run.cfg.batch_size, generator, run.device)  # (B, T) each
        # DDP averages gradients on the last micro-step's backward only; before it, gradients add up locally
        last = m == local_steps - 1
        with contextlib.nullcontext() if last or not run.info.enabled else model.no_sync():
            with autocast(run.device, dtype):
                loss = loss_fn(model(x), y) / local_steps  # the mean over micro-batches
            (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        loss_sum += loss.detach()
    return loss_sum


def _optimizer_step(run: RunState) -> None:
    """Clip the gradient's norm, step, clear; float16 unscales first and skips a step whose gradient overflowed."""
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)


def _summary(run: RunState, first: int, last_row: dict[str, Any] | None) -> str:
    """One line for the end of a run (it replaces the progress bar in a notebook)."""
    total = run.cfg.max_iters
    if run.iter_num < total:
        return f"training stopped at step {run.iter_num} of {total}; the last checkpoint is kept"
    if last_row is None:
        return f"nothing to train: the run was already at step {total}"
    val = f", val loss {last_row['val_loss']:.4f}" if "val_loss" in last_row else ""
    return (f"trained steps {first}..{total} in {last_row['elapsed_s']:.0f} s (the whole run); "
            f"last train loss {last_row['train_loss']:.4f}{val}")
