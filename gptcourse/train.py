"""Training a GPT: the learning-rate schedule, the optimiser, one readable step, and the full trainer.

`train_step` is the whole idea in five lines (forward, loss, backward, clip, step). `train` is the same
step in a loop, plus what a real run needs: warmup and cosine decay, periodic evaluation, a progress bar,
a metrics log, checkpoints that let a killed run continue exactly, mixed precision on GPUs, and
data-parallel training under torchrun (see `gptcourse.distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .checkpoint import (
    CKPT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    check_compatible,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .config import PRESETS as MODEL_PRESETS
from .config import GPTConfig
from .data import Dataset, get_batch, load_dataset
from .env import cpu_has_fast_bf16, fast_mode, pick_device, runs_dir
from .model import GPT

__all__ = [
    "TrainConfig",
    "Preset",
    "PRESETS",
    "TrainResult",
    "get_lr",
    "loss_fn",
    "configure_optimizer",
    "train_step",
    "estimate_loss",
    "train",
    "load_checkpoint",
    "trained_model",
    "Checkpoint",
    "METRICS_NAME",
]

METRICS_NAME = "metrics.jsonl"
EVAL_SEED_OFFSET = 1_000_003  # evaluation draws its batches from a stream apart from training's
DTYPES = ("auto", "float32", "bfloat16")
TOKENIZERS = ("char", "gpt2")
# Fused AdamW (one kernel for all parameters) on the CPU: torch 2.4+ has it; on this course's CPU
# models it measured faster than the default multi-tensor ("foreach") path.
CPU_FUSED_ADAMW = True


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape is a GPTConfig). Names as in nanoGPT's train.py; defaults = shakespeare-cpu."""

    batch_size: int = 16  # sequences per micro-batch; more = smoother gradients, more work per step
    max_iters: int = 900  # optimiser steps in the whole run
    lr_decay_iters: int = 900  # the cosine ends here (usually = max_iters); min_lr afterwards
    learning_rate: float = 3e-3  # peak rate; small models tolerate large ones
    min_lr: float = 3e-4  # where the cosine ends: about learning_rate / 10 (Chinchilla)
    warmup_iters: int = 50  # ramp the rate up first: Adam's moment estimates are noisy at the start
    beta1: float = 0.9  # Adam's momentum
    beta2: float = 0.99  # 0.99 rather than 0.999: few tokens per step, so average over fewer steps
    weight_decay: float = 0.1  # pulls matrices towards zero (biases, LayerNorm and the like are exempt)
    grad_clip: float = 1.0  # rescale the gradient when its norm exceeds this (0 = off): tames spikes
    eval_interval: int = 300  # evaluate (and write a checkpoint) every this many steps, and at the end
    eval_iters: int = 20  # batches per split per evaluation: more = a less noisy estimate, slower
    log_interval: int = 10  # log a metrics row every this many steps (each log reads the loss: a sync on GPUs)
    # micro-batches per step, all processes together: the global batch is this x batch_size sequences
    gradient_accumulation_steps: int = 1
    device: str = "auto"  # "auto" = gptcourse.env.pick_device(); or "cpu", "cuda", "cuda:1", "mps"
    # "auto": bf16 autocast on GPUs that have it and on CPUs with native bf16 matmuls, else float32
    dtype: str = "auto"
    compile: bool = False  # torch.compile: faster steps on GPUs after a minute of compiling
    out_dir: str | None = None  # where ckpt.pt and metrics.jsonl go; None = gptcourse.env.runs_dir() / "run"
    seed: int = 1337  # fixes the initial weights and every batch drawn
    tokenizer: str = "char"  # "char" (65 symbols for Shakespeare) or "gpt2" (50,257 BPE tokens)

    def __post_init__(self) -> None:
        positive = ("batch_size", "eval_interval", "eval_iters", "log_interval", "gradient_accumulation_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("max_iters", "lr_decay_iters", "warmup_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.learning_rate or not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(
                f"need 0 < learning_rate and 0 <= min_lr <= learning_rate, got {self.learning_rate} and {self.min_lr}"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1} and {self.beta2}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0 (grad_clip 0 turns clipping off)")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {self.tokenizer!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and strings, as stored in a checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from `to_dict()` (a checkpoint's), ignoring fields this version no longer has."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Preset:
    """A named recipe: the model's shape and how to train it."""

    model: GPTConfig
    train: TrainConfig
    note: str = ""


PRESETS: dict[str, Preset] = {
    # Lesson 08 on a laptop: 0.8M parameters, val loss 1.83 in about 40 s on two CPU cores (BENCHMARKS.md).
    "shakespeare-cpu": Preset(MODEL_PRESETS["shakespeare-cpu"], TrainConfig(), "the CPU default (lesson 08)"),
    # nanoGPT's Shakespeare-char model and recipe, for a GPU: 10.7M parameters, context 256.
    "shakespeare-char": Preset(
        MODEL_PRESETS["shakespeare-char"],
        TrainConfig(
            batch_size=64,
            max_iters=5000,
            lr_decay_iters=5000,
            learning_rate=1e-3,
            min_lr=1e-4,
            warmup_iters=100,
            beta2=0.99,
            eval_interval=250,
            eval_iters=200,
            log_interval=10,
        ),
        "the GPU recipe (nanoGPT's shakespeare_char)",
    ),
    # nanoGPT's model on one big GPU in about a minute: twice nanoGPT's batch at a higher rate and half the
    # steps (the same tokens), compiled, bf16, fewer evaluation batches. Prepared for an H200; see BENCHMARKS.md.
    "shakespeare-gpu": Preset(
        MODEL_PRESETS["shakespeare-char"],
        TrainConfig(
            batch_size=128,
            max_iters=2500,
            lr_decay_iters=2500,
            learning_rate=1.5e-3,
            min_lr=1.5e-4,
            warmup_iters=100,
            beta2=0.99,
            eval_interval=500,
            eval_iters=50,
            log_interval=50,
            compile=True,
        ),
        "the GPU recipe sized for about a minute on an H200",
    ),
    # Exactly nanoGPT README's CPU run, to compare speed and loss against nanoGPT itself.
    "nanogpt-cpu": Preset(
        GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                  activation="gelu"),  # nanoGPT uses the exact GELU
        TrainConfig(
            batch_size=12,
            max_iters=2000,
            lr_decay_iters=2000,
            learning_rate=1e-3,
            min_lr=1e-4,
            warmup_iters=100,
            beta2=0.99,
            weight_decay=0.1,
            grad_clip=1.0,
            eval_interval=250,
            eval_iters=20,
            log_interval=1,
        ),
        "nanoGPT README's CPU run, for comparison",
    ),
    # For tests: a few seconds on one CPU core.
    "tiny": Preset(
        GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=False),
        TrainConfig(
            batch_size=8,
            max_iters=40,
            lr_decay_iters=40,
            learning_rate=3e-3,
            min_lr=3e-4,
            warmup_iters=5,
            eval_interval=10,
            eval_iters=4,
            log_interval=1,
            device="cpu",
            dtype="float32",  # the tests compare runs number for number
        ),
        "seconds on a CPU, for tests",
    ),
}


@dataclass
class TrainResult:
    """What `train` hands back: the trained model (eval mode), its tokenizer, the logged rows, where it saved."""

    model: GPT
    tokenizer: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    best_val_loss: float = float("inf")


def get_lr(it: int, *, learning_rate: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """The rate at step `it`: linear warmup, then a cosine from learning_rate down to min_lr, then min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    span = lr_decay_iters - warmup_iters
    ratio = (it - warmup_iters) / span if span > 0 else 0.0  # 0 -> 1 across the decay
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token predictions: logits (B, T, V), targets (B, T) -> a scalar."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T))  # (B*T, V) vs (B*T,)


def configure_optimizer(model: nn.Module, cfg: TrainConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW that decays only matrices (weights, embeddings), not biases or LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]  # a tied matrix appears once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device_type == "cuda" or (device_type == "cpu" and CPU_FUSED_ADAMW)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=fused)


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float = 1.0
) -> float:
    """One optimiser step on one batch: x, y (B, T) -> the batch's loss before the step."""
    logits = model(x)  # (B, T) -> (B, T, V)
    loss = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # d loss / d every parameter
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain GPT inside DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _resolve_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.dtype == "bfloat16":
        return torch.bfloat16
    if cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if cfg.dtype == "auto" and device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16  # trains to the same loss, faster (BENCHMARKS.md)
    return torch.float32


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def estimate_loss(
    model: nn.Module, dataset: Dataset, cfg: TrainConfig, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Mean loss over cfg.eval_iters random batches of each split, in eval mode (no dropout)."""
    raw = _unwrap(model)
    device = next(raw.parameters()).device
    dtype = _resolve_dtype(cfg, device)
    was_training = raw.training
    raw.eval()
    out = {}
    try:
        for split, data in (("train", dataset.train), ("val", dataset.val)):
            losses = torch.zeros(cfg.eval_iters, device=device)
            for i in range(cfg.eval_iters):
                x, y = get_batch(data, raw.config.block_size, cfg.batch_size, generator, device)
                with _autocast(device, dtype):
                    losses[i] = loss_fn(raw(x), y)
            out[split] = losses.mean().item()  # one sync per split
    finally:
        raw.train(was_training)
    return out


def _resolve_device(cfg: TrainConfig, info: distributed.DistInfo) -> torch.device:
    device = pick_device(None if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)  # one GPU per process
    return device


def _read_metrics(path: Path, before_iter: int) -> list[dict[str, Any]]:
    """Rows of an earlier attempt for the iterations the checkpoint already covers; a torn last line dropped."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a kill cut short
            if isinstance(row, dict) and row.get("iter", before_iter) < before_iter:
                rows.append(row)
    return rows


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metrics-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)


def _rng_state(generators: list[torch.Generator], device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "batch": [g.get_state() for g in generators]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], generators: list[torch.Generator], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    for g, s in zip(generators, state["batch"]):
        g.set_state(s)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _say(text: str, enabled: bool) -> None:
    if enabled:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)


def train(
    model_config: GPTConfig,
    cfg: TrainConfig,
    *,
    dataset: Dataset | None = None,
    callbacks: Iterable[Callable[[dict[str, Any]], None]] = (),
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train a GPT from scratch (or continue the checkpoint in cfg.out_dir with resume=True).

    Each step: gradient_accumulation_steps micro-batches (shared among torchrun's processes), one clipped
    AdamW step at the scheduled rate. Every log_interval steps a row goes to metrics.jsonl and to each
    callback (iter, train_loss, lr, ms_per_iter, tokens_per_s, elapsed_s; eval_train_loss and val_loss at
    evaluations); every eval_interval steps (and at the end) the train and val losses are estimated and a
    checkpoint is written. An existing checkpoint is never replaced unless resume or overwrite says so.
    """
    info = distributed.detect()
    local_steps = distributed.check_world(info.world_size, cfg.gradient_accumulation_steps)
    device = _resolve_device(cfg, info)
    distributed.setup(info, device)
    try:
        result = _train(
            model_config, cfg, dataset, list(callbacks), resume, progress, overwrite, info, local_steps, device
        )
        distributed.barrier()  # leave together (only after success: a dead peer would make this wait)
        return result
    finally:
        distributed.cleanup()


def _train(
    model_config: GPTConfig,
    cfg: TrainConfig,
    dataset: Dataset | None,
    callbacks: list[Callable[[dict[str, Any]], None]],
    resume: bool,
    progress: bool,
    overwrite: bool,
    info: distributed.DistInfo,
    local_steps: int,
    device: torch.device,
) -> TrainResult:
    from tqdm.auto import tqdm

    master = info.is_master
    out_dir = Path(cfg.out_dir) if cfg.out_dir else runs_dir() / "run"
    ckpt_path, metrics_path = out_dir / CKPT_NAME, out_dir / METRICS_NAME
    dataset = dataset if dataset is not None else load_dataset(cfg.tokenizer)
    tokenizer = dataset.tokenizer
    if model_config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocab_size ({model_config.vocab_size}) is smaller than the tokenizer's vocabulary "
            f"({tokenizer.vocab_size}): set vocab_size to at least {tokenizer.vocab_size}"
        )
    state = None
    if ckpt_path.exists():
        if resume:
            state = read_checkpoint(ckpt_path)
            check_compatible(state, model_config, tokenizer)
        elif not overwrite:
            raise ValueError(
                f"{out_dir} already holds a checkpoint: resume it (--resume / resume=True), choose another "
                "out_dir, or pass overwrite=True (--overwrite) to start again and replace it"
            )
    elif resume:
        _say(f"no checkpoint in {out_dir} yet: starting from the beginning", master)

    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    model = GPT(model_config).to(device)
    optimizer = configure_optimizer(model, cfg, device.type)
    # one batch stream per micro-batch slot of the global step: slot s of N = world x local_steps draws from
    # seed + s, so the global batch is the same however the slots are spread over processes
    generators = [torch.Generator().manual_seed(cfg.seed + info.rank * local_steps + m) for m in range(local_steps)]
    torch.manual_seed(cfg.seed + info.rank)  # dropout masks differ between processes
    start_iter, best_val, elapsed_before = 0, float("inf"), 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_iter, best_val = int(state["iter_num"]), float(state["best_val_loss"])
        elapsed_before = float(state.get("elapsed_s", 0.0))  # wall-clock seconds of the attempts before this one
        rngs = state.get("rng", [])
        if len(rngs) == info.world_size and len(rngs[info.rank]["batch"]) == local_steps:
            _restore_rng(rngs[info.rank], generators, device)
        else:  # another process count than the run that saved: continue, but not on the same batches
            _say("note: the checkpoint was written by a run with another number of processes or accumulation "
                 "steps; training continues on fresh batches (not bit-identical to an uninterrupted run)", master)
            for m, g in enumerate(generators):
                g.manual_seed(cfg.seed + 7919 * start_iter + info.rank * local_steps + m)

    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if info.enabled:
        model = distributed.wrap(model, device)
    dtype = _resolve_dtype(cfg, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores (a GPU-wide setting)
        torch.backends.cudnn.allow_tf32 = True

    history: list[dict[str, Any]] = []
    metrics_file = None
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        history = _read_metrics(metrics_path, start_iter) if state is not None else []
        _write_metrics(metrics_path, history)  # drops rows past the checkpoint and any torn line
        metrics_file = open(metrics_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in finally)
    block_size = model_config.block_size
    tokens_per_iter = cfg.batch_size * block_size * cfg.gradient_accumulation_steps
    show = progress and master
    _say(
        f"training {raw_model.num_parameters():,} parameters on {device} ({str(dtype).replace('torch.', '')}), "
        f"{info.world_size} process(es), {tokens_per_iter:,} tokens per step, steps {start_iter}..{cfg.max_iters}",
        show,
    )
    bar = tqdm(total=cfg.max_iters, initial=start_iter, disable=not show, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    t_start = t_last = time.perf_counter()
    steps_since = 0
    try:
        for it in range(start_iter, cfg.max_iters):
            lr = get_lr(
                it,
                learning_rate=cfg.learning_rate,
                warmup_iters=cfg.warmup_iters,
                lr_decay_iters=cfg.lr_decay_iters,
                min_lr=cfg.min_lr,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for m in range(local_steps):
                x, y = get_batch(dataset.train, block_size, cfg.batch_size, generators[m], device)  # (B, T) each
                # DDP averages gradients on the last micro-step's backward only; before it, gradients add up locally
                sync = model.no_sync() if info.enabled and m < local_steps - 1 else contextlib.nullcontext()
                with sync:
                    with _autocast(device, dtype):
                        loss = loss_fn(model(x), y) / local_steps  # the mean over micro-batches
                    loss.backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps_since += 1
            done = it + 1
            evaluate = done % cfg.eval_interval == 0 or done == cfg.max_iters
            if not (it % cfg.log_interval == 0 or evaluate):
                bar.update(1)
                continue
            if info.enabled:  # the logged loss is the whole global batch's, not rank 0's share
                torch.distributed.all_reduce(loss_sum, op=torch.distributed.ReduceOp.AVG)
            train_loss = loss_sum.item()  # waits for the GPU: only at log steps
            ms = (time.perf_counter() - t_last) * 1000 / steps_since
            row: dict[str, Any] = {
                "iter": it,
                "train_loss": train_loss,
                "lr": lr,
                "ms_per_iter": round(ms, 3),
                "tokens_per_s": round(tokens_per_iter * 1000 / ms, 1),
            }
            if evaluate and master:
                eval_gen = torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET)  # the same batches every time
                losses = estimate_loss(raw_model, dataset, cfg, eval_gen)
                row["eval_train_loss"], row["val_loss"] = losses["train"], losses["val"]
                best_val = min(best_val, losses["val"])
                _say(f"step {done}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", show)
            elapsed = elapsed_before + time.perf_counter() - t_start
            row["elapsed_s"] = round(elapsed, 3)  # wall-clock time into the run, evaluation included
            if master:
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                history.append(row)
                for callback in callbacks:
                    callback(row)
                bar.set_postfix(loss=f"{train_loss:.4f}", refresh=False)
            if evaluate:
                _save(ckpt_path, raw_model, optimizer, done, best_val, generators, device, model_config, cfg,
                      tokenizer, info, elapsed)
            bar.update(1)
            t_last, steps_since = time.perf_counter(), 0
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    raw_model.eval()
    return TrainResult(model=raw_model, tokenizer=tokenizer, history=history, out_dir=out_dir, best_val_loss=best_val)


def _save(
    path: Path,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    iter_num: int,
    best_val: float,
    generators: list[torch.Generator],
    device: torch.device,
    model_config: GPTConfig,
    cfg: TrainConfig,
    tokenizer: Any,
    info: distributed.DistInfo,
    elapsed: float,
) -> None:
    """Rank 0 writes the checkpoint; with several processes it first collects every process's random state."""
    rng = _rng_state(generators, device)
    if info.enabled:
        rngs: list[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(rngs, {k: _to_cpu(v) for k, v in rng.items()})
    else:
        rngs = [rng]
    if not info.is_master:
        return
    save_checkpoint(
        path,
        {
            "format_version": FORMAT_VERSION,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "iter_num": iter_num,
            "best_val_loss": best_val,
            "rng": rngs,
            "world_size": info.world_size,
            "elapsed_s": elapsed,
            "model_config": model_config.to_dict(),
            "train_config": cfg.to_dict(),
            "tokenizer": tokenizer.to_dict(),
        },
    )


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def trained_model(preset: str = "shakespeare-cpu", device: torch.device | str | None = None) -> tuple[GPT, Any]:
    """The preset's trained model and tokenizer: loaded from runs_dir()/preset/ckpt.pt, trained there first if absent.

    An unfinished run there (a killed lesson) is resumed to the end. With GPTCOURSE_FAST=1 (the test
    suite) a short run goes to runs_dir()/<preset>-fast instead, so it never stands in for the real one.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    recipe, name = PRESETS[preset], preset
    cfg = recipe.train
    if fast_mode():
        name = f"{preset}-fast"
        short = min(cfg.max_iters, 100)
        cfg = cfg.replace(max_iters=short, lr_decay_iters=short, warmup_iters=min(cfg.warmup_iters, 10),
                          eval_interval=short, eval_iters=min(cfg.eval_iters, 5))
    out_dir = runs_dir() / name
    cfg = cfg.replace(out_dir=str(out_dir))
    if (out_dir / CKPT_NAME).exists():
        ckpt = load_checkpoint(out_dir)
        if ckpt.iter_num >= ckpt.train_config.max_iters:
            return (ckpt.model.to(device) if device is not None else ckpt.model), ckpt.tokenizer
    result = train(recipe.model, cfg, resume=True)
    model = result.model.to(device) if device is not None else result.model
    return model, result.tokenizer
