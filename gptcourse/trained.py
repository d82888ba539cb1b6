"""The trained model that lessons 09-12 start from: lesson 08's run, loaded, or trained first if missing.

A run is reused only while it matches its recipe. When the course changes a recipe (a new model shape,
another schedule, another tokenizer), the old run is moved aside and the model trained afresh, so a
lesson never silently loads a model that no longer matches the text around it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CKPT_NAME, load_checkpoint, read_checkpoint
from .config import GPTConfig
from .data import load_dataset
from .env import fast_mode, runs_dir
from .model import GPT
from .recipes import TrainConfig, get_recipe
from .tokenizers import CharTokenizer, GPT2Tokenizer
from .train import train

__all__ = ["trained_model", "stale_reason", "REPORTING_FIELDS"]

# Fields that say where a run runs and how often it reports, not what it learns: runs that differ only
# in these train the same model (lesson 08's short run evaluates more often than this module's).
REPORTING_FIELDS = ("out_dir", "device", "compile", "eval_interval", "eval_iters", "log_interval")


def trained_model(
    preset: str = "shakespeare-cpu", device: torch.device | str | None = None
) -> tuple[GPT, CharTokenizer | GPT2Tokenizer]:
    """The preset's trained model and tokenizer, from runs_dir()/<preset>/ckpt.pt, trained there first if absent.

    An unfinished run there (a killed lesson) is resumed to the end. A run made with another model config,
    training config or tokenizer than the preset's is moved to runs_dir()/<preset>.stale-<time> and the
    model trained afresh. With GPTCOURSE_FAST=1 (the test suite) a short run goes to runs_dir()/<preset>-fast
    instead, so it never stands in for the real one.
    """
    recipe = get_recipe(preset)
    name, cfg = preset, recipe.train
    if fast_mode():
        name = f"{preset}-fast"
        short = min(cfg.max_iters, 100)
        cfg = cfg.replace(max_iters=short, lr_decay_iters=short, warmup_iters=min(cfg.warmup_iters, 10),
                          eval_interval=short, eval_iters=min(cfg.eval_iters, 5))
    out_dir = runs_dir() / name
    cfg = cfg.replace(out_dir=str(out_dir))
    dataset = load_dataset(cfg.tokenizer)
    if (out_dir / CKPT_NAME).exists():
        reason = stale_reason(out_dir, recipe.model, cfg, dataset.tokenizer)
        if reason:
            aside = _move_aside(out_dir)
            print(f"{out_dir} was made with {reason}: moved it to {aside.name} and training afresh")
        else:
            ckpt = load_checkpoint(out_dir)
            if ckpt.iter_num >= cfg.max_iters:
                return (ckpt.model.to(device) if device is not None else ckpt.model), ckpt.tokenizer
    resume = (out_dir / CKPT_NAME).exists()  # an unfinished run with the preset's configs continues
    result = train(recipe.model, cfg, dataset=dataset, resume=resume)
    model = result.model.to(device) if device is not None else result.model
    return model, result.tokenizer


def stale_reason(
    out_dir: Path, model_config: GPTConfig, cfg: TrainConfig, tokenizer: CharTokenizer | GPT2Tokenizer
) -> str:
    """What differs between the run in out_dir and the given configs and tokenizer ("" when nothing does)."""
    try:
        state = read_checkpoint(out_dir)
    except ValueError as err:  # unreadable, or another checkpoint format
        return f"a checkpoint this version cannot use ({str(err).split(':')[0]})"
    diffs = _differences(GPTConfig.from_dict(state["model_config"]), model_config, ())
    diffs += _differences(TrainConfig.from_dict(state["train_config"]), cfg, REPORTING_FIELDS)
    if state["tokenizer"] != tokenizer.to_dict():
        diffs.append(f"tokenizer: another {state['tokenizer'].get('kind')!r} vocabulary")
    return f"other settings than the preset's ({'; '.join(diffs)})" if diffs else ""


def _differences(saved: Any, wanted: Any, ignore: tuple[str, ...]) -> list[str]:
    return [f"{f.name}: run {getattr(saved, f.name)!r}, preset {getattr(wanted, f.name)!r}"
            for f in dataclasses.fields(wanted)
            if f.name not in ignore and getattr(saved, f.name) != getattr(wanted, f.name)]


def _move_aside(out_dir: Path) -> Path:
    """Rename out_dir to <name>.stale-<time> beside it (never over an earlier one); returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = out_dir.with_name(f"{out_dir.name}.stale-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = out_dir.with_name(f"{out_dir.name}.stale-{stamp}-{n}")
    out_dir.rename(aside)
    return aside
