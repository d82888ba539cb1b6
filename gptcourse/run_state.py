"""The state of a training run, shared by the loop, saving and resuming; and the run's metrics log.

A checkpoint is this state written down: the weights, the optimiser's moments (and float16's loss scale),
the step reached, the best validation loss, the seconds spent, and every random state, so that a resumed
run draws the same batches and dropout masks as a run that was never stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .checkpoint import FORMAT_VERSION, check_compatible, class_name, save_checkpoint
from .config import GPTConfig
from .recipes import TrainConfig
from .step import configure_optimizer
from .tokenizers import CharTokenizer, GPT2Tokenizer

__all__ = ["RunState", "MetricsLog"]


@dataclass
class RunState:
    """One process's view of a run: what it trains, how far it got, and its random streams."""

    cfg: TrainConfig
    model_config: GPTConfig
    tokenizer: CharTokenizer | GPT2Tokenizer
    model: nn.Module  # the plain model, never a DistributedDataParallel or compiled wrapper
    optimizer: torch.optim.Optimizer
    generators: list[torch.Generator]  # one batch stream per micro-batch this process runs in a step
    device: torch.device
    info: distributed.DistInfo
    scaler: torch.amp.GradScaler | None = None  # float16 only
    iter_num: int = 0  # optimiser steps taken
    best_val_loss: float = float("inf")
    elapsed_s: float = 0.0  # wall-clock seconds of the run so far, earlier attempts included

    @classmethod
    def create(
        cls,
        cfg: TrainConfig,
        model_config: GPTConfig,
        tokenizer: CharTokenizer | GPT2Tokenizer,
        model: nn.Module,
        device: torch.device,
        info: distributed.DistInfo,
        scaler: torch.amp.GradScaler | None = None,
    ) -> RunState:
        """A fresh run at step 0: the optimiser over the model's trainable parameters, and seeded batch streams."""
        local_steps = cfg.gradient_accumulation_steps // info.world_size
        optimizer = configure_optimizer(model, cfg, device.type)
        # one batch stream per micro-batch slot of the global step: slot s of N = world x local_steps draws
        # from seed + s, so the global batch is the same however the slots are spread over processes
        generators = [torch.Generator().manual_seed(cfg.seed + info.rank * local_steps + m) for m in range(local_steps)]
        torch.manual_seed(cfg.seed + info.rank)  # dropout masks differ between processes
        return cls(cfg=cfg, model_config=model_config, tokenizer=tokenizer, model=model, optimizer=optimizer,
                   generators=generators, device=device, info=info, scaler=scaler)

    def restore(self, state: dict[str, Any]) -> str:
        """Continue from a checkpoint's state dict; returns a note when the batches cannot continue exactly."""
        check_compatible(state, self.model_config, self.tokenizer)
        mine = class_name(type(self.model))
        if state.get("model_class", mine) != mine:
            raise ValueError(f"the checkpoint holds a {state['model_class']}, this run trains a {mine}: resume "
                             "with the same model class, or start a new run in another --out_dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.iter_num, self.best_val_loss = int(state["iter_num"]), float(state["best_val_loss"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        rngs = state.get("rng", [])
        if len(rngs) == self.info.world_size and len(rngs[self.info.rank]["batch"]) == len(self.generators):
            self._restore_rng(rngs[self.info.rank])
            return ""
        # another process count than the run that saved: continue, but not on the same batches
        local_steps = len(self.generators)
        for m, g in enumerate(self.generators):
            g.manual_seed(self.cfg.seed + 7919 * self.iter_num + self.info.rank * local_steps + m)
        return ("note: the checkpoint was written by a run with another number of processes or accumulation "
                "steps; training continues on fresh batches (not bit-identical to an uninterrupted run)")

    def save(self, path: Path) -> None:
        """Write the checkpoint (rank 0); with several processes, first collect every process's random state."""
        rng = self._rng_state()
        if self.info.enabled:
            rngs: list[Any] = [None] * self.info.world_size
            torch.distributed.all_gather_object(rngs, {k: _to_cpu(v) for k, v in rng.items()})
        else:
            rngs = [rng]
        if not self.info.is_master:
            return
        state = {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "model_class": class_name(type(self.model)),
            "optimizer": self.optimizer.state_dict(),
            "iter_num": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "rng": rngs,
            "world_size": self.info.world_size,
            "elapsed_s": self.elapsed_s,
            "model_config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        save_checkpoint(path, state)

    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "batch": [g.get_state() for g in self.generators]}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        for g, s in zip(self.generators, state["batch"]):
            g.set_state(s)
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


class MetricsLog:
    """metrics.jsonl: one JSON row per logged step, appended as the run goes; `rows` holds them in memory.

    Resuming from a checkpoint at step n keeps the earlier attempt's rows before n and drops the rest (and a
    line a kill cut short), so the file reads as one uninterrupted run.
    """

    def __init__(self, path: Path, keep_before: int = 0):
        self.path = path
        self.rows = _read_rows(path, keep_before)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metrics-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.rows)
        os.replace(tmp, path)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        self.rows.append(row)

    def close(self) -> None:
        self._file.close()


def _read_rows(path: Path, before_iter: int) -> list[dict[str, Any]]:
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
