"""The check runner: one registry of named checks, and `check(name, obj)` that never lets the learner's code out.

Each check gets fresh random inputs (its own seeded `torch.Generator`), runs under a time limit, with the
learner's printing captured, and with torch's and Python's global state (random seeds, default dtype,
grad mode, default device, working directory, stdout/stderr) put back afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import random
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = [
    "STATUSES",
    "LOG_ENV",
    "Result",
    "CheckSpec",
    "Fail",
    "Context",
    "register",
    "registry",
    "check",
    "run_check",
]

STATUSES = ("pass", "fail", "todo", "error", "timeout")
LOG_ENV = "GPTCOURSE_GRADE_LOG"  # the grader names a JSON-lines file here; every check appends its result
DEFAULT_TIMEOUT = 10.0  # seconds per check; every check here takes well under one
MAX_CAPTURED = 4000  # characters of the learner's printing kept in a result (the rest is dropped)
CHECK_MODULES = [
    "l01_tokens",
    "l02_position",
    "l03_attention",
    "l04_multihead",
    "l05_feed_forward",
    "l06_norm",
    "l07_gpt",
    "l08_training",
    "l09_sampling",
    "l10_heads",
    "l11_scaling",
]


class Fail(Exception):
    """Raised by a check to fail with a hint that names the likely mistake."""


class CheckTimeout(BaseException):
    """Raised by the alarm inside the learner's code; a BaseException so `except Exception` cannot eat it."""


@dataclass(frozen=True)
class Result:
    """One check's outcome. `status` is one of STATUSES; `points` is max_points on a pass, else 0."""

    name: str
    status: str
    message: str
    points: float
    max_points: float
    seconds: float
    seed: int
    output: str = ""  # what the learner's code printed during the check (capped)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def line(self) -> str:
        """The verdict: status word in capitals, the check's name, the message."""
        return f"{self.status.upper()} {self.name}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def __repr__(self) -> str:
        return self.line

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: `check` has already printed the verdict line."""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    lesson: int
    title: str  # what the learner writes, in a few words
    func: Callable[[Any, Context], str]  # returns the pass message or raises Fail
    points: float = 1.0
    timeout: float = DEFAULT_TIMEOUT


_REGISTRY: dict[str, CheckSpec] = {}


def register(
    name: str, lesson: int, title: str, points: float = 1.0, timeout: float = DEFAULT_TIMEOUT
) -> Callable[[Callable[[Any, Context], str]], Callable[[Any, Context], str]]:
    """Add a check to the registry under `name` (lesson.concept); a name is registered once."""

    def decorate(func: Callable[[Any, Context], str]) -> Callable[[Any, Context], str]:
        if name in _REGISTRY and _REGISTRY[name].func.__qualname__ != func.__qualname__:
            raise ValueError(f"check {name!r} is registered twice")
        _REGISTRY[name] = CheckSpec(name, lesson, title, func, points, timeout)
        return func

    return decorate


def registry() -> dict[str, CheckSpec]:
    """Every check, by name, in lesson order (loads the check modules on first use)."""
    for module in CHECK_MODULES:
        importlib.import_module(f"gptcourse.grading.lessons.{module}")
    return dict(sorted(_REGISTRY.items(), key=lambda item: item[1].lesson))  # stable: registration order


class Context:
    """What a check body gets besides the learner's object: a private generator and its seed."""

    def __init__(self, seed: int):
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen, dtype=torch.float32) * scale

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.gen)

    def choice(self, options: list) -> Any:
        return options[int(torch.randint(len(options), (1,), generator=self.gen))]

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=self.gen))

    def fresh_generator(self) -> torch.Generator:
        """A new generator seeded from this check's stream (for handing to the learner's code)."""
        return torch.Generator().manual_seed(int(torch.randint(2**31 - 1, (1,), generator=self.gen)))


class _CappedText(io.TextIOBase):
    """A text stream that keeps the first MAX_CAPTURED characters and counts the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        self.total += len(s)
        room = MAX_CAPTURED - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        return len(s)

    def text(self) -> str:
        dropped = self.total - self.kept
        return "".join(self.parts) + (f"\n... ({dropped} more characters not kept)" if dropped else "")


@contextlib.contextmanager
def _global_state_restored() -> Iterator[None]:
    """Whatever the learner's code changes in torch's and Python's global state is put back on exit."""
    saved_torch_rng = torch.get_rng_state()
    saved_py_rng = random.getstate()
    np = sys.modules.get("numpy")
    saved_np_rng = np.random.get_state() if np is not None else None
    saved_dtype = torch.get_default_dtype()
    saved_grad = torch.is_grad_enabled()
    saved_device = torch.get_default_device() if hasattr(torch, "get_default_device") else None
    saved_threads = torch.get_num_threads()
    saved_streams = (sys.stdout, sys.stderr)
    saved_cwd = os.getcwd()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved_streams
        torch.set_rng_state(saved_torch_rng)
        random.setstate(saved_py_rng)
        if saved_np_rng is not None:
            np.random.set_state(saved_np_rng)
        torch.set_default_dtype(saved_dtype)
        torch.set_grad_enabled(saved_grad)
        if saved_device is not None:
            torch.set_default_device(None if saved_device.type == "cpu" else saved_device)
        if torch.get_num_threads() != saved_threads:
            torch.set_num_threads(saved_threads)
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _ours(frame: Any) -> bool:
    """Frames of the grader itself (and of contextlib, which runs our clean-up): never interrupted twice."""
    return frame.f_globals.get("__name__", "").startswith(("gptcourse.grading", "contextlib"))


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in the main thread after `seconds` (SIGALRM).

    If the learner's code catches it (a bare `except:` in a loop), the alarm repeats every 0.1 s and from
    then on a trace function raises CheckTimeout at every line of the learner's code, including the line
    inside the `except` itself, so nothing can swallow the limit. Where there is no SIGALRM (Windows, or a
    check called from another thread) the check runs without a limit.
    """
    if not _alarm_available():
        yield
        return
    armed = [True]
    fired = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if armed[0] and event == "line" and not _ours(frame):
            raise CheckTimeout
        return tracer

    def on_alarm(signum: int, frame: Any) -> None:
        if not armed[0]:
            return
        fired[0] += 1
        if fired[0] > 1:  # still here after the first: trace every line of every frame on the stack
            f = frame
            while f is not None:
                f.f_trace, f.f_trace_lines = tracer, True
                f = f.f_back
            sys.settrace(tracer)
        if not _ours(frame):
            raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    previous_trace = sys.gettrace()
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.1)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if fired[0] > 1:
            sys.settrace(previous_trace)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _where(err: BaseException) -> str:
    """' (in f, line 3)': the deepest frame of the learner's own code in the traceback, if there is one."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if not f.filename.startswith(_PACKAGE_DIR) and "site-packages" not in f.filename
            and not f.filename.startswith(os.path.dirname(os.__file__))]
    return f" (in {mine[-1].name}, line {mine[-1].lineno})" if mine else ""


def _last_line(err: BaseException) -> str:
    """The exception's last line as Python prints it, `ValueError: message`, and where in the learner's code."""
    text = str(err).strip().splitlines()
    return (f"{type(err).__name__}: {text[-1]}" if text else type(err).__name__) + _where(err)


def _todo_message(err: NotImplementedError) -> str:
    text = str(err).strip()
    return f"not done yet: {text}" if text else "not done yet: replace the `raise NotImplementedError` with your code"


def run_check(spec: CheckSpec, obj: Any, *, seed: int | None = None, timeout: float | None = None) -> Result:
    """Run one check on the learner's object in isolation and return its Result (never raises)."""
    seed = secrets.randbits(31) if seed is None else int(seed)
    limit = spec.timeout if timeout is None else float(timeout)
    captured = _CappedText()
    start = time.perf_counter()
    status, message = "error", "the check did not finish"
    try:
        with _global_state_restored():
            try:
                with _time_limit(limit):
                    sys.stdout = sys.stderr = captured  # the learner's prints, however many, stay here
                    if obj is None or obj is Ellipsis:
                        raise NotImplementedError(f"pass your {spec.title} to check()")
                    message = spec.func(obj, Context(seed))
                    status = "pass"
            except CheckTimeout:
                status = "timeout"
                message = f"took longer than {limit:g} s: is there a loop that never ends?"
            except Fail as err:
                status, message = "fail", str(err)
            except NotImplementedError as err:
                status, message = "todo", _todo_message(err)
            except SystemExit as err:
                status, message = "error", f"your code called sys.exit({err.code!r}); return a value instead"
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # anything else the learner's code raised
                status, message = "error", _last_line(err)
    except CheckTimeout:  # the alarm fired in the instant between the learner's code and our clean-up
        status, message = "timeout", f"took longer than {limit:g} s: is there a loop that never ends?"
    seconds = time.perf_counter() - start
    message = " ".join(str(message).split()) or status
    points = spec.points if status == "pass" else 0.0
    return Result(spec.name, status, message, points, spec.points, round(seconds, 4), seed, captured.text())


def _log(result: Result) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(result.as_dict()) + "\n")


def check(
    name: str, obj: Any = None, *, seed: int | None = None, timeout: float | None = None, quiet: bool = False
) -> Result:
    """Grade your `obj` (function, class or value) with the check `name`; print one verdict line; return it.

    Fresh random inputs every run; pass `seed=` (shown in the result) to repeat a run exactly.
    """
    checks = registry()
    if name not in checks:
        close = [n for n in checks if n.split(".")[0] == str(name).split(".")[0]] or list(checks)
        result = Result(str(name), "error", f"no check named {name!r}; try one of: {', '.join(close)}",
                        0.0, 0.0, 0.0, 0)
    else:
        result = run_check(checks[name], obj, seed=seed, timeout=timeout)
    if not quiet:
        print(result.line, flush=True)
    _log(result)
    return result


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
