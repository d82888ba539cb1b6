"""Building blocks the checks share: calling the learner's code safely, and comparing what it returns.

`call` is the boundary between the check and the learner's code: the learner gets copies of the inputs,
whatever its code raises is the learner's (the runner turns it into `error` or `todo`), and what it returns
comes back as plain values. Every other helper raises `Fail` with a sentence a learner can act on.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .core import Context, Fail, _last_line
from .isolation import LearnerCode, plain

__all__ = ["Fail", "call", "call_explained", "expect_callable", "expect_tensor", "expect_close", "expect_number",
           "expect_causal", "diagnose", "randomise", "fmt"]


def fmt(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def expect_callable(obj: Any, what: str) -> None:
    if not callable(obj):
        raise Fail(f"expected {what}, got a {type(obj).__name__}: pass the function itself, without calling it")


def _hand_over(value: Any) -> Any:
    """A copy for the learner: nothing it does to it reaches the check's own value (a generator is shared)."""
    return value if isinstance(value, torch.Generator) else copy.deepcopy(value)


def _contents(value: Any) -> Any:
    """What an in-place edit would change: a tensor's values, a module's weights and buffers."""
    if isinstance(value, nn.Module):
        return dict(nn.Module.state_dict(value))
    return value if isinstance(value, torch.Tensor) else None


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and before.shape == after.shape and before.dtype == after.dtype
                and torch.equal(before, after))
    if isinstance(before, dict):
        return isinstance(after, dict) and before.keys() == after.keys() and all(
            _same(before[k], after[k]) for k in before)
    return True


def call(fn: Callable, *args: Any, names: tuple[str, ...] = (), grad: bool = False, mutable: tuple[int, ...] = (),
         **kwargs: Any) -> Any:
    """Call the learner's fn on copies of the inputs and return its result made plain (see isolation.plain).

    Tensors, modules, lists and configs are handed over as copies, so the check's own values stay as they
    were whatever the learner's code does to its copies (hooks, in-place edits, a changed `__class__`); a
    copy changed in place fails with a hint. The positional arguments listed in `mutable` are handed over
    as they are (a model and optimiser that a training step must update). Runs without autograd unless
    `grad`. After the call, every patch, hook or mode the learner's code left behind is undone.
    """
    expect_callable(fn, "a function")
    watched = [(k, v) for k, v in [*enumerate(args), *kwargs.items()] if k not in mutable and _contents(v) is not None]
    with LearnerCode():
        given = [a if i in mutable else _hand_over(a) for i, a in enumerate(args)]
        given_kw = {k: _hand_over(v) for k, v in kwargs.items()}
        with torch.set_grad_enabled(grad):
            out = fn(*given, **given_kw)
    with LearnerCode():  # a tensor subclass may run its own code while it is made plain
        out = plain(out)
        after = {k: plain(_contents(given[k] if isinstance(k, int) else given_kw[k])) for k, _ in watched}
    for key, value in watched:
        if not _same(_contents(value), after[key]):
            label = names[key] if isinstance(key, int) and key < len(names) else (key if isinstance(key, str)
                                                                                    else f"argument {key + 1}")
            raise Fail(
                f"your function changed its input `{label}` in place (x += ..., x.mul_(...), x[...] = ...): "
                "compute a new tensor and leave the input as it was"
            )
    return out


def call_explained(fn: Callable, *args: Any, errors: Iterable[tuple[str, Callable[[], Any]]], **kwargs: Any) -> Any:
    """`call`; when the learner's code raises the very error that a known mistake raises (same type, same
    message), fail with that mistake's hint, the error quoted after it. `errors`: (hint, mistake) pairs."""
    try:
        return call(fn, *args, **kwargs)
    except Exception as err:
        for hint, mistake in errors:
            if _raises_same(mistake, err):
                raise Fail(f"{hint} (your code raised {_last_line(err)})") from None
        raise


def _raises_same(mistake: Callable[[], Any], err: Exception) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k.T on a 3-D tensor warns before it fails
        try:
            mistake()
        except Exception as mine:
            return type(mine) is type(err) and str(mine) == str(err)
    return False


def expect_tensor(out: Any, shape: tuple[int, ...], what: str = "the output", hint: str = "",
                  dtype: torch.dtype | None = None, finite: bool = True, nan_hint: str = "") -> torch.Tensor:
    """Type, then shape, then dtype, then no NaN/inf."""
    if not isinstance(out, torch.Tensor):
        raise Fail(f"{what} should be a torch.Tensor of shape {fmt(shape)}, got a {type(out).__name__}"
                   + (f" ({hint})" if hint else ""))
    if out.layout != torch.strided or out.device.type != "cpu":
        raise Fail(f"{what} is a {out.layout} tensor on {out.device}: return an ordinary (dense) tensor on the "
                   "CPU, like the inputs")
    if tuple(out.shape) != tuple(shape):
        raise Fail(f"{what} has shape {fmt(out.shape)}, expected {fmt(shape)}" + (f": {hint}" if hint else ""))
    if dtype is not None and out.dtype != dtype:
        raise Fail(f"{what} has dtype {out.dtype}, expected {dtype}")
    if dtype is None and out.dtype == torch.float64:
        out = out.float()  # computed in double precision is still right: compared in float32, like the reference
    elif dtype is None and out.is_floating_point() and out.dtype != torch.float32:
        raise Fail(f"{what} has dtype {out.dtype}, which rounds away the digits the check compares: return "
                   "float32, like the inputs")
    if finite and out.is_floating_point() and not torch.isfinite(out).all():
        bad = "NaN" if torch.isnan(out).any() else "inf"
        raise Fail(f"{what} contains {bad}: " + (nan_hint or "look for a division by zero, a log of 0 or an "
                                                  "overflowing exp"))
    return out.detach()


def close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 0.0) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=False)


def diagnose(out: torch.Tensor, mistakes: Mapping[str, Callable[[], torch.Tensor]], atol: float,
             rtol: float = 0.0) -> None:
    """Fail with the hint of the first known mistake whose output `out` matches."""
    for hint, make in mistakes.items():
        try:
            wrong = make()
        except Exception:  # a variant that cannot be built for these inputs tells us nothing
            continue
        if isinstance(wrong, torch.Tensor) and close(out, wrong.detach(), atol, rtol):
            raise Fail(hint)


def expect_close(out: torch.Tensor, ref: torch.Tensor, atol: float, rtol: float = 0.0, what: str = "the values",
                 mistakes: Mapping[str, Callable[[], torch.Tensor]] | None = None, hint: str = "") -> None:
    """Values against the reference within the stated tolerance; on a miss, name the likely mistake."""
    if close(out, ref, atol, rtol):
        return
    if mistakes:
        diagnose(out, mistakes, atol=max(atol, 1e-5), rtol=max(rtol, 1e-4))
    err = (out.double() - ref.double()).abs().max().item()
    raise Fail(f"{what} differ from the reference by up to {err:.3g} (tolerance {atol:g})"
               + (f": {hint}" if hint else ""))


def expect_causal(out: torch.Tensor, changed: torch.Tensor, t: int, hint: str,
                  mistakes: Mapping[str, Callable[[], torch.Tensor]] | None = None, atol: float = 1e-5) -> None:
    """Causality: `changed` is the output for the same inputs with only the tokens after position t changed,
    so the outputs at positions <= t must not have moved. On a miss, the known mistakes are tried on `out`."""
    if torch.allclose(out[:, : t + 1], changed[:, : t + 1], atol=atol):
        return
    if mistakes:
        diagnose(out, mistakes, atol=1e-4, rtol=1e-4)
    raise Fail(f"changing the tokens after position {t} changed the outputs at positions <= {t}: {hint}")


def expect_number(out: Any, what: str) -> float:
    """A finite Python number (a one-element tensor is accepted)."""
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        out = out.item()
    if isinstance(out, bool) or not isinstance(out, (int, float)) or not math.isfinite(float(out)):
        shown = repr(out)[:60] if isinstance(out, (int, float, str, type(None))) else f"a {type(out).__name__}"
        raise Fail(f"{what} should be a finite number, got {shown}")
    return float(out)


def randomise(module: nn.Module, ctx: Context, scale: float, add: bool = False) -> nn.Module:
    """Every parameter drawn from N(0, scale^2) with the check's generator (add=True: the draw is added to it),
    so that no mistake hides behind an initialisation's zeros and ones. Returns the module."""
    with torch.no_grad():
        for p in module.parameters():
            noise = ctx.randn(*p.shape, scale=scale)
            if add:
                p.add_(noise)
            else:
                p.copy_(noise)
    return module
