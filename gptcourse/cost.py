"""Measuring what a layer costs: median wall-clock time and peak memory of one call.

Lessons use these to show costs (attention's n^2, the KV cache's saving) instead of asserting them.
Timings are medians of several runs, because a single run on a busy machine says little.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

__all__ = ["median_seconds", "peak_memory_bytes", "tensor_bytes"]


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """The median seconds of `fn()` over `repeats` runs, after `warmup` untimed runs.

    Pass `device` when `fn` runs on a GPU, so each run is waited for before the clock stops. `clock` is
    wall-clock time by default; `time.thread_time` counts only the CPU time of this thread, which other
    programs on a busy machine disturb far less (use it with `torch.set_num_threads(1)`, CPU only).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        _sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """The most memory `fn()` held at once, above what was allocated before it started, in bytes.

    CUDA: the caching allocator's peak counter. CPU: PyTorch's profiler records every allocation and
    free with a timestamp; replaying them in order gives the running total and its maximum.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on 'cpu' or 'cuda', not {device.type!r}")
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes = []
    for event in prof.events():
        # an op's own allocations are booked on the op; frees (and stray allocations) as "[memory]" events
        delta = event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        if delta:
            changes.append((event.time_range.start, delta))
    changes.sort(key=lambda change: change[0])
    running = peak = 0
    for _, delta in changes:
        running += delta
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's start/stop lines, which its C++ side writes straight to file descriptor 2."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real descriptor 2 (some embedded consoles): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tensor_bytes(*shape: int, dtype: torch.dtype = torch.float32) -> int:
    """The bytes a tensor of this shape and dtype takes: e.g. the (B, nh, T, T) attention matrix."""
    n = 1
    for size in shape:
        n *= size
    return n * torch.empty((), dtype=dtype).element_size()
