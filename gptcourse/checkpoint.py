"""Checkpoints: one file holding everything a run needs to continue exactly where it stopped.

`ckpt.pt` holds the model's weights, the optimiser's moments, the iteration reached, the best validation
loss, every random state (so the next batches and dropout masks are the ones the run would have drawn),
and the model config, train config and tokenizer. It contains only tensors, numbers, strings, lists and
dicts, so it loads with `torch.load(..., weights_only=True)`: opening a checkpoint runs no code.

It is written atomically: into a temporary file in the same folder, flushed to disk, then renamed over
the old one. A run killed at any moment, mid-save included, leaves either the old checkpoint or the new
one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import GPTConfig
from .model import GPT
from .recipes import TrainConfig
from .tokenizers import CharTokenizer, GPT2Tokenizer, tokenizer_from_dict

__all__ = [
    "CKPT_NAME",
    "FORMAT_VERSION",
    "Checkpoint",
    "class_name",
    "checkpoint_path",
    "save_checkpoint",
    "read_checkpoint",
    "check_compatible",
    "load_checkpoint",
]

CKPT_NAME = "ckpt.pt"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "optimizer", "iter_num", "model_config", "train_config", "tokenizer")
TEMP_PREFIX = ".ckpt-tmp-"


def class_name(cls: type) -> str:
    """`module.QualName`: a checkpoint records its model's class, and loads only into that class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def checkpoint_path(path_or_out_dir: str | os.PathLike) -> Path:
    """The checkpoint file: the path itself if it is a file (or ends in .pt), else `<dir>/ckpt.pt`."""
    path = Path(path_or_out_dir)
    return path if path.suffix == ".pt" or path.is_file() else path / CKPT_NAME


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: temp file in the same folder, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(TEMP_PREFIX + "*"):  # left by a run killed mid-save; never the real file
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the old checkpoint stays whole until this instant
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_checkpoint(path_or_out_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw state dict of a checkpoint, checked to be whole; a clear ValueError when it is not."""
    path = checkpoint_path(path_or_out_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first (python -m gptcourse train --out_dir ...)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "It may be truncated or damaged: delete it and train again (or restore a copy)"
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
        raise ValueError(f"{path} is not a gptcourse checkpoint (missing {', '.join(missing)}); train again")
    if state["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {state['format_version']}, this gptcourse reads format "
            f"{FORMAT_VERSION}: train again, or use the gptcourse version that wrote it"
        )
    return state


def check_compatible(state: dict[str, Any], model_config: GPTConfig, tokenizer: CharTokenizer | GPT2Tokenizer) -> None:
    """Refuse to resume a checkpoint made for another model shape or tokenizer, naming what differs."""
    saved, wanted = state["model_config"], model_config.to_dict()
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, this run {v!r}" for k, v in wanted.items() if saved.get(k) != v]
    if diffs:
        raise ValueError(
            "the checkpoint was made for another model (" + "; ".join(diffs) + "). Resume with the same "
            "settings, or start a new run in another --out_dir"
        )
    if state["tokenizer"] != tokenizer.to_dict():
        raise ValueError(
            f"the checkpoint was made with another tokenizer ({state['tokenizer'].get('kind')!r}, "
            f"{_vocab_note(state['tokenizer'])}) than this run's ({tokenizer.kind!r}, vocabulary "
            f"{tokenizer.vocab_size}). Resume with the same tokenizer and text, or start a new run in another --out_dir"
        )


def _vocab_note(tok: dict) -> str:
    return f"vocabulary {len(tok['chars'])}" if "chars" in tok else "vocabulary 50257"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what it was trained with."""

    model: nn.Module  # a GPT, unless the run trained another model (train(..., model=...))
    tokenizer: CharTokenizer | GPT2Tokenizer
    model_config: GPTConfig
    train_config: TrainConfig
    iter_num: int
    best_val_loss: float
    path: Path


def load_checkpoint(
    path_or_out_dir: str | os.PathLike, map_location: str | torch.device = "cpu", model: nn.Module | None = None
) -> Checkpoint:
    """A trained model back from `ckpt.pt` (or the folder holding it), ready to sample from.

    The weights go into a new GPT built from the stored config, or into `model` when given: a run that
    trained another class (a bigram baseline, your own GPT) loads into an instance of that class.
    """
    path = checkpoint_path(path_or_out_dir)
    state = read_checkpoint(path, map_location)
    model_config = GPTConfig.from_dict(state["model_config"])
    saved_class = state.get("model_class", class_name(GPT))
    if model is None and saved_class != class_name(GPT):
        raise ValueError(f"{path} holds a {saved_class}, not a GPT: pass an instance of that class, "
                         "load_checkpoint(path, model=...), to load its weights")
    model = GPT(model_config) if model is None else model
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the model ({err}); train again") from None
    model.to(map_location).eval()
    return Checkpoint(
        model=model,
        tokenizer=tokenizer_from_dict(state["tokenizer"]),
        model_config=model_config,
        train_config=TrainConfig.from_dict(state["train_config"]),
        iter_num=int(state["iter_num"]),
        best_val_loss=float(state.get("best_val_loss", float("inf"))),
        path=path,
    )
