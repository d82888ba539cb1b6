"""Data-parallel training with torchrun: which process this is, and the launch's sanity checks.

`torchrun --nproc_per_node N -m gptcourse train ...` starts N copies of the training command and tells
each one its RANK (0..N-1), the WORLD_SIZE N, its LOCAL_RANK on this machine, and where to meet
(MASTER_ADDR, MASTER_PORT). Every process holds a whole copy of the model and trains on its own batches;
PyTorch's DistributedDataParallel averages the gradients across processes (an all-reduce) during the
backward pass, so every copy takes the same optimiser step. This module writes no communication of its own.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "LaunchError", "detect", "check_world", "share_global_batch", "setup", "barrier", "cleanup",
           "exit_worker", "wrap", "backend_for"]

# How long a collective may wait for a silent peer before the run gives up (instead of hanging forever).
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("GPTCOURSE_DIST_TIMEOUT", "300")))


class LaunchError(ValueError):
    """A data-parallel launch that cannot work; the message says what to change."""


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_master(self) -> bool:
        """Rank 0 alone logs, evaluates, shows the progress bar and writes checkpoints."""
        return self.rank == 0


def _int_env(env: dict, name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise LaunchError(f"{name}={env[name]!r} is not an integer; launch with torchrun, which sets it") from None


def detect(env: dict | None = None) -> DistInfo:
    """Read torchrun's variables; a single process when WORLD_SIZE is absent or 1."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return DistInfo()
    world = _int_env(env, "WORLD_SIZE")
    if world < 1:
        raise LaunchError(f"WORLD_SIZE must be at least 1, got {world}")
    if world == 1:
        return DistInfo()
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise LaunchError(
            f"WORLD_SIZE={world} says this is a data-parallel run, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: start it with "
            "`torchrun --nproc_per_node N -m gptcourse train ...`, which sets them all"
        )
    rank, local_rank = _int_env(env, "RANK"), _int_env(env, "LOCAL_RANK")
    if not 0 <= rank < world:
        raise LaunchError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def check_world(world_size: int, gradient_accumulation_steps: int) -> int:
    """The micro-steps each process runs per optimiser step; refuses a world size that does not divide them.

    `gradient_accumulation_steps` counts micro-batches of `batch_size` sequences across ALL processes, so
    the global batch (batch_size x gradient_accumulation_steps sequences) is the same whatever N is.
    """
    if gradient_accumulation_steps % world_size:
        raise LaunchError(
            f"gradient_accumulation_steps={gradient_accumulation_steps} cannot be shared among {world_size} "
            f"processes: each process runs gradient_accumulation_steps / world size micro-batches, so set "
            f"--gradient_accumulation_steps to a multiple of {world_size}"
        )
    return gradient_accumulation_steps // world_size


def share_global_batch(batch_size: int, gradient_accumulation_steps: int, world_size: int) -> tuple[int, int]:
    """(batch_size, gradient_accumulation_steps) that spread a global batch of batch_size x steps sequences
    over world_size processes: unchanged when the steps already divide among them, else each micro-batch is
    cut to batch_size / world_size sequences and there are world_size times as many.
    """
    if gradient_accumulation_steps % world_size == 0:
        return batch_size, gradient_accumulation_steps
    if batch_size % world_size:
        raise LaunchError(
            f"a global batch of {batch_size} x {gradient_accumulation_steps} sequences cannot be shared evenly "
            f"among {world_size} processes: set --gradient_accumulation_steps to a multiple of {world_size}, or "
            f"--batch_size to a multiple of {world_size}"
        )
    return batch_size // world_size, gradient_accumulation_steps * world_size


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, Gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(info: DistInfo, device: torch.device) -> None:
    """Join the process group (once per process)."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend_for(device), timeout=TIMEOUT)


def barrier() -> None:
    """Wait until every process gets here. Used at the end of a run that ended normally, so that no process
    leaves while another is still writing the last checkpoint."""
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group, so the process exits without waiting on its peers."""
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker process now, skipping the interpreter's shutdown.

    Once DistributedDataParallel has used a Gloo process group, references to the group outlive
    destroy_process_group (measured with torch 2.13: Gloo's worker threads run until the process ends). A
    worker thread that is still releasing a finished collective's tensor must take the GIL to drop the
    tensor's Python object; if the interpreter is shutting down by then, Python ends that thread inside a
    C++ destructor, std::terminate runs, and the process aborts (SIGABRT, "terminate called without an
    active exception"): the rare abort of a 2-process run at its very end. Leaving with os._exit skips that
    shutdown. The run's files are closed and its checkpoint synced by now; only the output needs flushing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around the model: same start weights everywhere, gradients averaged."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)
