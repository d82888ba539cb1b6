"""Building blocks the checks share: calling the learner's code safely, and comparing what it returns.

Every helper raises `Fail` with a sentence a learner can act on; none of them catches the learner's
exceptions (the runner turns those into `error` or `todo`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .core import Fail

__all__ = ["Fail", "call", "expect_callable", "expect_tensor", "expect_close", "expect_number", "diagnose", "fmt"]


def fmt(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def expect_callable(obj: Any, what: str) -> None:
    if not callable(obj):
        raise Fail(f"expected {what}, got a {type(obj).__name__}: pass the function itself, without calling it")


def _snapshot(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, nn.Module):
        return {k: v.detach().clone() for k, v in value.state_dict().items()}
    return None


def _unchanged(before: Any, value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return before.shape == value.shape and before.dtype == value.dtype and torch.equal(before, value.detach())
    if isinstance(value, nn.Module):
        now = value.state_dict()
        return now.keys() == before.keys() and all(torch.equal(before[k], now[k].detach()) for k in before)
    return True


def call(fn: Callable, *args: Any, names: tuple[str, ...] = (), grad: bool = False, mutable: tuple[int, ...] = (),
         **kwargs: Any) -> Any:
    """Call the learner's fn; fail if it changed a tensor or module it was given (in-place edits).

    Runs without autograd unless `grad`; the positional arguments listed in `mutable` may change.
    """
    expect_callable(fn, "a function")
    watched = [(k, v) for k, v in list(enumerate(args)) + list(kwargs.items()) if k not in mutable]
    before = {key: _snapshot(v) for key, v in watched if isinstance(v, (torch.Tensor, nn.Module))}
    with torch.set_grad_enabled(grad):
        out = fn(*args, **kwargs)
    for key, value in watched:
        if key in before and not _unchanged(before[key], value):
            label = names[key] if isinstance(key, int) and key < len(names) else (key if isinstance(key, str)
                                                                                    else f"argument {key + 1}")
            raise Fail(
                f"your function changed its input `{label}` in place (x += ..., x.mul_(...), x[...] = ...): "
                "compute a new tensor and leave the input as it was"
            )
    return out


def expect_tensor(out: Any, shape: tuple[int, ...], what: str = "the output", hint: str = "",
                  dtype: torch.dtype | None = None, finite: bool = True, nan_hint: str = "") -> torch.Tensor:
    """Type, then shape, then dtype, then no NaN/inf."""
    if isinstance(out, nn.Parameter):
        out = out.data
    if not isinstance(out, torch.Tensor):
        raise Fail(f"{what} should be a torch.Tensor of shape {fmt(shape)}, got a {type(out).__name__}"
                   + (f" ({hint})" if hint else ""))
    if tuple(out.shape) != tuple(shape):
        raise Fail(f"{what} has shape {fmt(out.shape)}, expected {fmt(shape)}" + (f": {hint}" if hint else ""))
    if dtype is not None and out.dtype != dtype:
        raise Fail(f"{what} has dtype {out.dtype}, expected {dtype}")
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


def expect_number(out: Any, what: str) -> float:
    """A finite Python number (a one-element tensor is accepted)."""
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        out = out.item()
    if isinstance(out, bool) or not isinstance(out, (int, float)) or not math.isfinite(float(out)):
        raise Fail(f"{what} should be a finite number, got {out!r:.60}")
    return float(out)


def clone_module(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)
