"""What keeps a learner's code away from the verdict: the state a check relies on, put back after every call.

A check and the learner's code share one Python process, so whatever the learner's code changes could
change how the check compares. Three layers keep the verdict honest:

- `isolated_check()` wraps a whole check: the global state of torch and Python (random generators, default
  dtype, grad mode, default device, threads, working directory, stdout/stderr) is saved before and put
  back after, and the modules the checks rely on (torch, torch.nn.functional, math, builtins, torch.Tensor,
  nn.Module, the package's reference code and the grader itself) are put back to the state captured at
  import, so that a patch made in an earlier cell cannot change this verdict; the learner's own session
  state is put back after the check.
- `LearnerCode()` wraps each call of the learner's code: after it, every patch of those modules, every
  global module hook, every torch function or dispatch mode left on, is undone before the check goes on;
  what the learner's code raised is remembered as the learner's (any other exception is the grader's own).
- `plain()` turns what the learner returns into plain Python and torch values (a `torch.Tensor`, never a
  subclass; `int`, `float`, `str`, `list`, `tuple`, `dict`) before anything compares it.

What this cannot stop is code written to defeat it (walking the interpreter's stack or `gc` to reach the
grader's private objects, ctypes, a thread that keeps patching): see the README's threat model.
"""

from __future__ import annotations

import builtins
import copy
import copyreg
import gc
import io
import itertools
import operator
import os
import random
import sys
import time
from types import ModuleType
from typing import Any, NamedTuple

import torch
from torch.nn.modules import module as _nn_module

__all__ = ["CheckTimeout", "CappedText", "LearnerCode", "capture_pristine", "isolated_check", "in_learner_code",
           "is_learners", "learner_seconds", "plain", "MAX_CAPTURED"]

MAX_CAPTURED = 4000  # characters of the learner's printing kept in a result (the rest is dropped)
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: a built-in type that nobody can patch
# The modules whose attributes the checks and the reference code look up while they run (besides builtins
# and every gptcourse module), and through them the classes whose methods they call.
_WATCHED = ("copy", "math", "numbers", "operator", "torch", "torch._C._nn", "torch._tensor", "torch.functional",
            "torch.random", "torch.autograd.grad_mode", "torch.nn", "torch.nn.functional", "torch.nn.init",
            "torch.nn.parameter", "torch.nn.modules.module", "torch.nn.modules.linear",
            "torch.nn.modules.normalization", "torch.nn.modules.sparse", "torch.nn.modules.dropout",
            "torch.nn.modules.activation", "torch.nn.modules.container", "torch.nn.utils", "torch.nn.utils.clip_grad",
            "torch.optim", "torch.optim.optimizer", "torch.optim.adamw")
_MISSING = object()
_Base = torch._C.TensorBase  # the C methods of every tensor: an immutable type, so they cannot be patched
_VF = torch._C._VariableFunctions  # torch's C functions, read-only
_DisableSubclass = torch._C.DisableTorchFunctionSubclass
_no_grad = torch.no_grad


class CheckTimeout(BaseException):
    """Raised by the time limit; a BaseException so that `except Exception` cannot eat it.

    `learner` says whether the learner's code was running when the limit struck (else the check's own code).
    """

    def __init__(self, learner: bool = True):
        super().__init__()
        self.learner = learner


class CappedText(io.TextIOBase):
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


# -- the namespaces a check relies on ------------------------------------------------------------------------

# A snapshot holds, for each watched namespace, the dict behind it and a copy; for each container, the dict
# and a copy; and every value in order, so that "nothing changed" (the usual case) is one pass in C.
# Putting one back uses only what its default arguments bound at import, so that a patched builtin or a
# patched helper of this module cannot stop it.
_MODULE, _CLASS = 0, 1
_BUILTIN_NAMES = builtins.__dict__


class _State(NamedTuple):
    namespaces: list[tuple[Any, dict, dict, int]]  # (owner, the dict behind it, a copy, kind)
    containers: list[tuple[dict, dict]]  # (a dict, a copy)
    builtins: tuple[list, list]  # builtins' keys and values (names added there later are allowed)
    dicts: list[dict]  # every dict but builtins', in order
    lengths: list[int]
    values: list


def _behind(owner: Any) -> dict:
    """The dict behind a module's or a class's namespace (a class's is only read here: writes go through type)."""
    return owner.__dict__ if isinstance(owner, ModuleType) else gc.get_referents(owner.__dict__)[0]


def _snapshot(extra: list[dict]) -> _State:
    modules = [sys.modules[n] for n in _WATCHED if n in sys.modules]
    modules += [m for n, m in sorted(sys.modules.items()) if n.startswith("gptcourse") and isinstance(m, ModuleType)]
    classes = {id(v): v for m in modules if m is not torch for v in vars(m).values()  # the modules' own classes
               if isinstance(v, type) and not v.__flags__ & _IMMUTABLE_TYPE
               and getattr(v, "__module__", "") == m.__name__}
    classes[id(torch.Tensor)] = torch.Tensor
    for c in classes.values():  # copy's cache of a class's slot names, filled now: a deepcopy is not a patch
        copyreg._slotnames(c)
    owners = [(m, _MODULE) for m in modules] + [(c, _CLASS) for c in classes.values()]
    namespaces = [(o, _behind(o), dict(_behind(o)), kind) for o, kind in owners]
    hooks = [v for k, v in vars(_nn_module).items() if k.startswith("_global_") and isinstance(v, dict)]
    containers = [(d, dict(d)) for d in [*hooks, copy._deepcopy_dispatch, *extra]]
    dicts = [raw for _, raw, _, _ in namespaces] + [d for d, _ in containers]
    # builtins: a name added there shadows nothing, and IPython adds its own while a cell runs: only rebinding
    return _State(namespaces, containers, (list(vars(builtins)), list(vars(builtins).values())), dicts,
                  [len(d) for d in dicts], [v for d in dicts for v in d.values()])


def _untouched(state: _State, _list=list, _map=map, _len=len, _all=all, _is=operator.is_, _chain=itertools.chain,
               _values=dict.values, _get=_BUILTIN_NAMES.get) -> bool:
    """True when no watched name was bound, added or removed since (same sizes, same objects in order)."""
    names, objects = state.builtins
    return (_list(_map(_len, state.dicts)) == state.lengths
            and _all(_map(_is, _chain.from_iterable(_map(_values, state.dicts)), state.values))
            and _all(_map(_is, _map(_get, names), objects)))


def _put_back(state: _State, _untouched=_untouched, _module=ModuleType, _set=type.__setattr__,
              _del=type.__delattr__, _missing=_MISSING, _class=_CLASS, _isinstance=isinstance, _len=len, _any=any,
              _zip=zip, _list=list, _builtins=_BUILTIN_NAMES) -> None:
    """Make every namespace and container of `state` as it was when the snapshot was taken.

    A submodule imported since (a module added as an attribute) is legitimate: it joins the state.
    """
    if _untouched(state):
        return
    for owner, current, saved, kind in state.namespaces:
        for key, value in _list(current.items()):
            if key in saved:
                continue
            if _isinstance(value, _module):
                saved[key] = value
            elif kind == _class:
                _del(owner, key)
            else:
                del current[key]
        for key, value in saved.items():
            if current.get(key, _missing) is not value:
                if kind == _class:
                    _set(owner, key, value)
                else:
                    current[key] = value
    for target, saved in state.containers:
        if _len(target) != _len(saved) or _any(target.get(k, _missing) is not v for k, v in saved.items()):
            target.clear()
            target.update(saved)
    for key, value in _zip(*state.builtins):
        if _builtins.get(key, _missing) is not value:
            _builtins[key] = value
    state.lengths[:] = [_len(d) for d in state.dicts]  # the order may have moved: the next look is fast again
    state.values[:] = [v for d in state.dicts for v in d.values()]


_PRISTINE: list[_State] = []  # the state captured when the grader was imported (one element, once captured)
_EXTRA: list[dict] = []


def capture_pristine(extra: list[dict]) -> None:
    """Remember the state of every watched module now (at import, before any learner's code ran in a check)."""
    if not _PRISTINE:
        _EXTRA.extend(extra)
        _PRISTINE.append(_snapshot(_EXTRA))


def _pristine(_state=_PRISTINE, _put_back=_put_back) -> None:
    """Put back the state captured at import (names bound at import: a patch of this module cannot stop it)."""
    if _state:
        _put_back(_state[0])


# -- torch's mode stacks and default device -------------------------------------------------------------------

def _modes_off() -> tuple[list, list, Any]:
    """Take every torch function and dispatch mode off the stacks (the default device is one); return them."""
    functions = [torch._C._pop_torch_function_stack() for _ in range(torch._C._len_torch_function_stack())]
    from torch.utils._python_dispatch import _pop_mode

    dispatches = [_pop_mode() for _ in range(torch._C._len_torch_dispatch_stack())]
    device = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    torch._GLOBAL_DEVICE_CONTEXT.device_context = None
    return functions, dispatches, device


def _modes_on(saved: tuple[list, list, Any]) -> None:
    _modes_off()  # whatever was left on since
    functions, dispatches, device = saved
    from torch.utils._python_dispatch import _push_mode

    for mode in reversed(functions):
        torch._C._push_on_torch_function_stack(mode)
    for mode in reversed(dispatches):
        _push_mode(mode)
    torch._GLOBAL_DEVICE_CONTEXT.device_context = device


# -- the learner's calls -----------------------------------------------------------------------------------

_DEPTH = [0]  # > 0 while the learner's code runs
_LEARNERS: list[BaseException] = []  # what the learner's code raised during this check
_SECONDS = [0.0]  # how long the learner's code has run during this check


def in_learner_code() -> bool:
    return _DEPTH[0] > 0


def learner_seconds() -> float:
    return _SECONDS[0]


def is_learners(err: BaseException) -> bool:
    """Whether `err` came out of the learner's code (else the check's own code raised it)."""
    if isinstance(err, CheckTimeout):
        return err.learner
    return any(e is err for e in _LEARNERS)


class LearnerCode:
    """`with LearnerCode(): ...` runs the learner's code; afterwards, whatever it did to the state is undone."""

    def __enter__(self) -> LearnerCode:
        self.dtype = torch.get_default_dtype()
        self.grad = torch.is_grad_enabled()
        self.start = time.perf_counter()
        _DEPTH[0] += 1
        return self

    def __exit__(self, kind: Any, err: BaseException | None, tb: Any, _pristine=_pristine, _depth=_DEPTH) -> None:
        _depth[0] -= 1
        _pristine()  # first: everything below may rely on the modules the learner's code could have patched
        _SECONDS[0] += time.perf_counter() - self.start
        if err is not None and not isinstance(err, (CheckTimeout, KeyboardInterrupt)):
            _LEARNERS.append(err)
        _modes_off()
        torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)


class isolated_check:  # noqa: N801  (used as a context manager, like contextlib's)
    """Around a whole check: global state saved and put back; the watched modules pristine while it runs."""

    def __enter__(self) -> isolated_check:
        np = sys.modules.get("numpy")
        self.saved = (torch.get_rng_state(), random.getstate(), np.random.get_state() if np is not None else None,
                      torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
                      (sys.stdout, sys.stderr), os.getcwd())
        # the learner's own patches made outside any check, if there are any: kept, and put back afterwards
        self.session = _snapshot(_EXTRA) if _PRISTINE and not _untouched(_PRISTINE[0]) else None
        _pristine()
        self.modes = _modes_off()
        _LEARNERS.clear()
        _DEPTH[0] = 0
        _SECONDS[0] = 0.0
        return self

    def __exit__(self, *exc: Any, _put_back=_put_back, _pristine=_pristine) -> None:
        _pristine()
        torch_rng, py_rng, np_rng, dtype, grad, threads, streams, cwd = self.saved
        sys.stdout, sys.stderr = streams
        _DEPTH[0] = 0
        _LEARNERS.clear()
        _modes_on(self.modes)
        torch.set_rng_state(torch_rng)
        random.setstate(py_rng)
        if np_rng is not None:
            sys.modules["numpy"].random.set_state(np_rng)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        try:
            os.chdir(cwd)
        except OSError:
            pass
        if self.session is not None:
            _put_back(self.session)  # last: the learner's session as it was before the check


# -- plain values -----------------------------------------------------------------------------------------

MAX_DEPTH = 20
_ATOMS = (bool, int, float, str, type(None))


def _plain_tensor(t: torch.Tensor, _type=type, _tensor=torch.Tensor) -> torch.Tensor:
    """A fresh plain torch.Tensor with t's values; a subclass's own Python code may run once, to give them."""
    with _DisableSubclass(), _no_grad():
        if _type(t) is not _tensor:
            fresh = _VF.empty(_Base.size(t), dtype=_Base.dtype.__get__(t), device=_Base.device.__get__(t))
            _Base.copy_(fresh, t)  # a __torch_dispatch__ subclass answers here: its values, into our tensor
            t = fresh
        return _Base.clone(_Base.detach(t))


def plain(value: Any, depth: int = 0, _type=type, _sub=issubclass, _tensor=torch.Tensor,
          _atoms=_ATOMS, _plain_tensor=_plain_tensor) -> Any:
    """`value` with every tensor, int, float, str, list, tuple and dict (subclasses too) made plain and fresh."""
    kind = _type(value)
    if kind in _atoms:
        return value
    if depth > MAX_DEPTH:
        raise ValueError(f"the result is nested more than {MAX_DEPTH} levels deep")
    if _sub(kind, _tensor):
        return _plain_tensor(value)
    if _sub(kind, int):
        return int.__int__(value)
    if _sub(kind, float):
        return float.__float__(value)
    if _sub(kind, str):
        return str.__str__(value)
    if _sub(kind, list):
        return [plain(v, depth + 1) for v in list.__iter__(value)]
    if _sub(kind, tuple):
        return tuple(plain(v, depth + 1) for v in tuple.__iter__(value))
    if _sub(kind, dict):
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in dict.items(value)}
    return value  # an object of the learner's own (a tokenizer, a result with fields): the check asks it
