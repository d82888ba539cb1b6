"""The check runner: one registry of named checks, and `check(name, obj)` that keeps the learner's code out.

Each check gets fresh random inputs (its own seeded `torch.Generator`) and runs under a time limit, with
the learner's printing captured, inside `isolation.isolated_check()`: torch's and Python's global state is
put back afterwards, and every call of the learner's code (through `tools.call`) is a boundary after which
its patches, hooks and modes are undone and its result is made plain. An exception or a hang in the
learner's code is the learner's ERROR or TIMEOUT; one in the check's own code is reported as the grader's
internal error, never blamed on the learner.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
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

from .isolation import (
    CappedText,
    CheckTimeout,
    capture_pristine,
    in_learner_code,
    is_learners,
    isolated_check,
    learner_seconds,
)

__all__ = ["STATUSES", "LOG_ENV", "Result", "CheckSpec", "Fail", "Context", "register", "registry", "check",
           "run_check", "claim_log"]

STATUSES = ("pass", "fail", "todo", "error", "timeout")
LOG_ENV = "GPTCOURSE_GRADE_LOG"  # the shell grader names a JSON-lines file here; every check appends its result
# Seconds per check. Most take well under a second; the ones that build GPT-2-sized models or train a few
# steps (params.count, params.ffn_share, train.step) register 30 s.
DEFAULT_TIMEOUT = 10.0


class Fail(Exception):
    """Raised by a check to fail with a hint that names the likely mistake."""


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


_LOADED: list[bool] = []


def _load_lessons() -> None:
    """Import every check module in grading/lessons (once), then capture the state the checks rely on."""
    if _LOADED:
        return
    from . import lessons

    for info in sorted(pkgutil.iter_modules(lessons.__path__), key=lambda m: m.name):
        importlib.import_module(f"{lessons.__name__}.{info.name}")
    capture_pristine([_REGISTRY])
    _LOADED.append(True)


def registry() -> dict[str, CheckSpec]:
    """Every check, by name, in lesson order (loads the check modules on first use)."""
    _load_lessons()
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


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _ours(frame: Any) -> bool:
    """Frames that put state back (the runner, the isolation, contextlib): never interrupted."""
    return frame.f_globals.get("__name__", "") in ("gptcourse.grading.core", "gptcourse.grading.isolation",
                                                    "contextlib")


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
            raise CheckTimeout(in_learner_code())
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
            raise CheckTimeout(in_learner_code())

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


def _internal(name: str, what: str) -> str:
    return f"internal error in the check {name} ({what}): please report it; this says nothing about your code"


def _verdict(spec: CheckSpec, err: BaseException, limit: float) -> tuple[str, str]:
    """(status, message) for what a check raised: the learner's doing, or the check's own."""
    if isinstance(err, Fail):
        return "fail", str(err)
    if isinstance(err, CheckTimeout):
        if err.learner or learner_seconds() > limit / 2:  # the limit struck in the check, but the learner's code
            return "timeout", f"took longer than {limit:g} s: is there a loop that never ends?"  # used most of it
        return "error", _internal(spec.name, f"its own reference code took longer than {limit:g} s")
    if not is_learners(err):
        return "error", _internal(spec.name, f"{type(err).__name__}: {str(err).strip()[:300]}")
    if isinstance(err, NotImplementedError):
        return "todo", _todo_message(err)
    if isinstance(err, SystemExit):
        return "error", f"your code called sys.exit({err.code!r}); return a value instead"
    return "error", _last_line(err)


def run_check(spec: CheckSpec, obj: Any, *, seed: int | None = None, timeout: float | None = None) -> Result:
    """Run one check on the learner's object in isolation and return its Result (never raises)."""
    seed = secrets.randbits(31) if seed is None else int(seed)
    limit = spec.timeout if timeout is None else float(timeout)
    captured = CappedText()
    start = time.perf_counter()
    status, message = "error", "the check did not finish"
    if obj is None or obj is Ellipsis:
        status, message = "todo", f"not done yet: pass your {spec.title} to check()"
    else:
        try:
            with isolated_check():
                try:
                    with _time_limit(limit):
                        sys.stdout = sys.stderr = captured  # the learner's prints, however many, stay here
                        message = spec.func(obj, Context(seed))
                        status = "pass"
                except KeyboardInterrupt:
                    raise
                except BaseException as err:  # noqa: B036  the learner's code may raise anything
                    status, message = _verdict(spec, err, limit)
        except CheckTimeout:  # the alarm fired in the instant between the learner's code and our clean-up
            status, message = "timeout", f"took longer than {limit:g} s: is there a loop that never ends?"
    seconds = time.perf_counter() - start
    message = " ".join(str(message).split()) or status
    points = spec.points if status == "pass" else 0.0
    return Result(spec.name, status, message, points, spec.points, round(seconds, 4), seed, captured.text())


_LOG: list[Any] = []  # the results file the shell grader handed over, once claimed


def claim_log() -> None:
    """Take over the shell grader's results file before any of the learner's code runs.

    The grader runs this first in the kernel: it opens the file named in $GPTCOURSE_GRADE_LOG, removes the
    variable and the file's name (the grader reads it through its own open handle), so that the learner's
    cells cannot find the file to append rows to it.
    """
    path = os.environ.pop(LOG_ENV, None)
    if path and not _LOG:
        _LOG.append(open(path, "a", encoding="utf-8", buffering=1))  # kept open for the kernel's life
        with contextlib.suppress(OSError):
            os.unlink(path)


def _log(result: Result) -> None:
    row = json.dumps(result.as_dict()) + "\n"
    if _LOG:
        with contextlib.suppress(OSError, ValueError):
            _LOG[0].write(row)
        return
    path = os.environ.get(LOG_ENV)
    if path:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
            f.write(row)


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
