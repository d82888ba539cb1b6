"""Lesson 11: fitting a power law on log-log axes, and the compute of a training run."""

from __future__ import annotations

import math

from ...scaling import fit_power_law
from ..core import Context, register
from ..tools import Fail, call, expect_number


def _pair(out) -> tuple[float, float]:
    a = getattr(out, "a", None)
    alpha = getattr(out, "alpha", None)
    if a is None and isinstance(out, (tuple, list)) and len(out) == 2:
        a, alpha = out
    if a is None:
        raise Fail(f"return (a, alpha), got {type(out).__name__}")
    return expect_number(a, "a"), expect_number(alpha, "alpha")


@register("scaling.fit_power_law", lesson=11, title="power-law fit function")
def fit(fn, ctx: Context) -> str:
    a0, alpha0 = ctx.uniform(2.0, 50.0), ctx.uniform(0.05, 0.5)
    x = [10 ** ctx.uniform(4, 8) for _ in range(6)]
    y = [a0 * v ** (-alpha0) for v in x]
    a, alpha = _pair(call(fn, x, y))
    if abs(alpha + alpha0) < 1e-6 * alpha0:
        raise Fail("alpha has the wrong sign: y = a * x**(-alpha), so alpha is minus the slope of log y against log x")
    if abs(alpha - alpha0) > 1e-6 * alpha0 or abs(a - a0) > 1e-6 * a0:
        if abs(alpha - alpha0) <= 1e-6 * alpha0 and abs(a - math.log(a0)) < 1e-6 * abs(math.log(a0)):
            raise Fail("a is exp(intercept): the fit gives log a, take its exponential")
        if abs(alpha - alpha0) <= 1e-6 * alpha0 and abs(a - 10 ** math.log(a0)) < 1e-6 * a0 * 100:
            raise Fail("natural logs and exp go together: a = exp(intercept) when you fit with math.log")
        raise Fail(f"on exact power-law data (a = {a0:.4g}, alpha = {alpha0:.4g}) you found a = {a:.4g}, "
                   f"alpha = {alpha:.4g}: fit a straight line to (log x, log y)")
    noisy = [v * math.exp(ctx.uniform(-0.05, 0.05)) for v in y]
    a, alpha = _pair(call(fn, x, noisy))
    ref = fit_power_law(x, noisy)
    if abs(alpha - ref.alpha) > 1e-6 or abs(a - ref.a) > 1e-6 * ref.a:
        raise Fail(f"on noisy data you found a = {a:.5g}, alpha = {alpha:.5g}; the least-squares line on log axes "
                   f"gives a = {ref.a:.5g}, alpha = {ref.alpha:.5g}: fit in log space, not on the raw values")
    return "recovers a and alpha exactly from a power law; least squares on log axes for noisy data"


@register("scaling.flops", lesson=11, title="training-compute function")
def flops(fn, ctx: Context) -> str:
    for _ in range(5):
        n, d = 10 ** ctx.uniform(5, 9), 10 ** ctx.uniform(7, 11)
        got = expect_number(call(fn, n, d), "training_flops(n_params, n_tokens)")
        want = 6 * n * d
        if abs(got - want) <= 1e-9 * want:
            continue
        if abs(got - 2 * n * d) <= 1e-9 * want:
            raise Fail("2 N D is the forward pass only; the backward pass costs about twice that: 6 N D in all")
        raise Fail(f"for N = {n:.3g} parameters and D = {d:.3g} tokens you said {got:.3g}; "
                   f"about 6 N D = {want:.3g} floating-point operations")
    return "6 N D: 2 for the forward pass, 4 for the backward pass, per parameter per token"
