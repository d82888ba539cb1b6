"""`python -m gptcourse train` and `python -m gptcourse sample`: the trainer and the sampler from the shell.

    python -m gptcourse train --preset shakespeare-cpu --max_iters 500 --n_layer 2
    python -m gptcourse train --out_dir runs/shakespeare-cpu --resume
    torchrun --nproc_per_node 2 -m gptcourse train
    python -m gptcourse sample --out_dir runs/shakespeare-cpu --prompt "ROMEO:" --temperature 0.8
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, NamedTuple

from .config import GPTConfig
from .recipes import TrainConfig

__all__ = ["TrainArgs", "parse_train_args", "train_main", "sample_main", "parse_value"]

DEFAULT_PRESET = "shakespeare-cpu"
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class UsageError(ValueError):
    """A bad command line; the message says what is valid."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_value(name: str, text: str, kind: Any) -> Any:
    """Turn the text after --name into the field's type (int, float, bool, str, or an optional of them)."""
    args = typing.get_args(kind)
    if type(None) in args:  # X | None
        if text.lower() in ("none", "null", ""):
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        wanted = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise UsageError(f"--{name} needs {wanted}, got {text!r}") from None
    return text


class TrainArgs(NamedTuple):
    """A parsed `train` command line."""

    preset: str
    model_config: GPTConfig
    train_config: TrainConfig
    resume: bool
    overwrite: bool
    note: str  # a line to print before training ("" for none)


def parse_train_args(argv: list[str], world_size: int = 1) -> TrainArgs:
    """argv -> the preset, its configs with the --FIELD VALUE overrides, and the flags. Raises UsageError.

    Under torchrun (world_size > 1) without --gradient_accumulation_steps, the preset's global batch is
    shared among the processes: each takes micro-batches of batch_size / world_size sequences.
    """
    from .distributed import LaunchError, share_global_batch
    from .env import runs_dir
    from .recipes import get_recipe

    model_types, train_types = _field_types(GPTConfig), _field_types(TrainConfig)
    valid = sorted(model_types) + sorted(train_types)
    preset, resume, overwrite = DEFAULT_PRESET, False, False
    model_over: dict[str, Any] = {}
    train_over: dict[str, Any] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--resume", "--overwrite"):
            resume, overwrite = resume or arg == "--resume", overwrite or arg == "--overwrite"
            continue
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}: options look like --FIELD VALUE")
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if not args:
                raise UsageError(f"--{name} needs a value")
            value = args.pop(0)
        if name == "preset":
            try:
                get_recipe(value)
            except ValueError as err:
                raise UsageError(str(err)) from None
            preset = value
        elif name in model_types:
            model_over[name] = parse_value(name, value, model_types[name])
        elif name in train_types:
            train_over[name] = parse_value(name, value, train_types[name])
        else:
            raise UsageError(
                f"unknown option --{name}. Valid: --preset, --resume, --overwrite, and the fields "
                + ", ".join(valid)
            )
    recipe = get_recipe(preset)
    note = ""
    try:
        model_config = dataclasses.replace(recipe.model, **model_over)
        train_config = dataclasses.replace(recipe.train, **train_over)
        if "gradient_accumulation_steps" not in train_over:
            batch, steps = share_global_batch(train_config.batch_size, train_config.gradient_accumulation_steps,
                                              world_size)
            if steps != train_config.gradient_accumulation_steps:
                note = (f"{world_size} processes share each step's {batch * steps} sequences: micro-batches of "
                        f"{batch} (batch_size), gradient_accumulation_steps {steps}")
                train_config = train_config.replace(batch_size=batch, gradient_accumulation_steps=steps)
    except LaunchError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None
    if train_config.out_dir is None:
        train_config = train_config.replace(out_dir=str(runs_dir() / preset))
    return TrainArgs(preset, model_config, train_config, resume, overwrite, note)


def train_main(argv: list[str]) -> int:
    """Train from the shell; prints where the checkpoint went. Exit 2 for a bad command line."""
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    from .distributed import LaunchError, check_world, detect, exit_worker

    try:
        info = detect()
        args = parse_train_args(argv, info.world_size)
        check_world(info.world_size, args.train_config.gradient_accumulation_steps)
    except (UsageError, LaunchError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.note and info.is_master:
        print(args.note, flush=True)
    code = _train(args)
    if info.enabled:
        exit_worker(code)  # a torchrun worker ends here, skipping the interpreter's shutdown (see exit_worker)
    return code


def _train(args: TrainArgs) -> int:
    """Run the parsed command: 0 when it trained, 1 for a checkpoint, config or lost-process problem."""
    import torch.distributed

    from .train import train

    try:
        result = train(args.model_config, args.train_config, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as err:  # checkpoint and config problems: the message says what to do
        print(f"error: {err}", file=sys.stderr)
        return 1
    except torch.distributed.DistError as err:  # another process of a torchrun launch died or hung
        print(
            f"error: lost contact with another training process ({str(err).splitlines()[0][:200]}); the last "
            f"checkpoint in {args.train_config.out_dir} is intact: relaunch with --resume to continue",
            file=sys.stderr,
        )
        return 1
    if result.history:
        last_val = next((r["val_loss"] for r in reversed(result.history) if "val_loss" in r), None)
        where = result.out_dir / "ckpt.pt"
        print(f"done: val loss {last_val:.4f}; checkpoint {where}" if last_val is not None else f"done: {where}")
    return 0


def sample_main(argv: list[str]) -> int:
    """Write text with a trained checkpoint."""
    from .env import runs_dir

    parser = argparse.ArgumentParser(prog="python -m gptcourse sample", description="write text with a checkpoint")
    parser.add_argument("--out_dir", default=str(runs_dir() / DEFAULT_PRESET), help="folder holding ckpt.pt")
    parser.add_argument("--prompt", default="\n", help="text to continue")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; <1 safer, >1 wilder")
    parser.add_argument("--top_k", type=int, default=None, help="draw only among the k likeliest tokens")
    parser.add_argument("--top_p", type=float, default=None, help="draw only among the likeliest tokens up to mass p")
    parser.add_argument("--max_new_tokens", type=int, default=500)
    parser.add_argument("--num_samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad input (and 0 for --help)
        return int(exit_.code or 0)

    import torch

    from .checkpoint import load_checkpoint
    from .sampling import check_sampling_args, generate

    try:
        check_sampling_args(args.temperature, args.top_k, args.top_p)
        if args.max_new_tokens < 0 or args.num_samples < 1:
            raise ValueError("--max_new_tokens must be >= 0 and --num_samples >= 1")
        ckpt = load_checkpoint(args.out_dir, map_location=args.device)
        ids = ckpt.tokenizer.encode(args.prompt)
        if not ids:
            raise ValueError("the prompt is empty after tokenising: give at least one character")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=args.device)  # (1, T)
    for i in range(args.num_samples):
        out = generate(ckpt.model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                       top_p=args.top_p, generator=generator)  # (1, T + max_new_tokens)
        print(ckpt.tokenizer.decode(out[0].tolist()))
        if i < args.num_samples - 1:
            print("-" * 40)
    return 0
