"""Lesson 11: fitting a power law on log-log axes, a law with a floor, and the compute of a training run."""

from __future__ import annotations

import math

from ...scaling import FlooredPowerLaw, fit_power_law, fit_with_floor
from ..core import Context, register
from ..tools import Fail, call, expect_number


def _pair(out) -> tuple[float, float]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        a, alpha = out
    else:  # an object with fields, like gptcourse.scaling.PowerLaw: asked through `call`, as it is the learner's
        a, alpha = call(lambda: (getattr(out, "a", None), getattr(out, "alpha", None)))
    if a is None:
        raise Fail(f"return (a, alpha), got {type(out).__name__}")
    return expect_number(a, "a"), expect_number(alpha, "alpha")


def _exact_law(ctx: Context) -> tuple[list[float], list[float]]:
    """Six points on y = a * x**(-alpha), a and alpha drawn at random (and kept off the check's own frame)."""
    a, alpha = ctx.uniform(2.0, 50.0), ctx.uniform(0.05, 0.5)
    x = [10 ** ctx.uniform(4, 8) for _ in range(6)]
    return x, [a * v ** (-alpha) for v in x]


@register("scaling.fit_power_law", lesson=11, title="power-law fit function")
def fit(fn, ctx: Context) -> str:
    x, y = _exact_law(ctx)
    a, alpha = _pair(call(fn, x, y))
    exact = fit_power_law(x, y)  # recovers the drawn a and alpha (to ~1e-12), after the learner's call
    a0, alpha0 = exact.a, exact.alpha
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


def _triple(out) -> tuple[float, float, float]:
    if isinstance(out, (tuple, list)) and len(out) == 3:
        E, A, alpha = out
    else:  # an object with fields, like gptcourse.scaling.FlooredPowerLaw
        E, A, alpha = call(lambda: tuple(getattr(out, k, None) for k in ("E", "A", "alpha")))
    if E is None:
        raise Fail(f"return three numbers (E, A, alpha), got {type(out).__name__}")
    return expect_number(E, "E"), expect_number(A, "A"), expect_number(alpha, "alpha")


def _floored_law(ctx: Context) -> tuple[list[float], FlooredPowerLaw]:
    """Seven sizes over three decades and a law whose curve bends within them (the floor is measurable)."""
    x = [10 ** (4 + 0.5 * i + ctx.uniform(-0.1, 0.1)) for i in range(7)]
    alpha = ctx.uniform(0.15, 0.6)
    excess = ctx.uniform(0.5, 2.0)  # how far the smallest model sits above the floor
    return x, FlooredPowerLaw(E=ctx.uniform(0.5, 2.5), A=excess * x[0] ** alpha, alpha=alpha)


@register("scaling.fit_with_floor", lesson=11, title="power law with a floor")
def fit_floor(fn, ctx: Context) -> str:
    x, law = _floored_law(ctx)
    y = [law(v) for v in x]
    E, A, alpha = _triple(call(fn, x, y))
    truth = f"E = {law.E:.4g}, A = {law.A:.4g}, alpha = {law.alpha:.4g}"
    if alpha < 0:
        raise Fail("alpha has the wrong sign: L = E + A * N**(-alpha) falls as N grows, so alpha > 0")
    if abs(E - law.A) < 1e-2 * law.A and abs(A - law.E) < 1e-2 * law.E:
        raise Fail(f"E and A are swapped: return the floor first, (E, A, alpha); the data follow {truth}")
    if E >= min(y):
        raise Fail(f"E = {E:.4g} is not below the smallest loss ({min(y):.4g}): the floor is what no model size "
                   "removes, so every measured loss lies above it; search E (or alpha) below min(L)")
    pure = fit_power_law(x, y)
    if abs(E) < 1e-3 * law.E and abs(alpha - pure.alpha) < 0.02 * pure.alpha:
        raise Fail("E = 0 is a pure power law (a straight line of log L against log N): the data level off at a "
                   f"floor ({truth}); fit E as well, e.g. for each alpha a least-squares line of L against N**(-alpha)")
    if abs(alpha - law.alpha) > 1e-3 * law.alpha or abs(E - law.E) > 1e-3 * (max(y) - law.E):
        if abs(alpha - law.alpha) < 0.25 * law.alpha:
            raise Fail(f"close but not exact on noise-free data ({truth}; you found E = {E:.4g}, alpha = "
                       f"{alpha:.4g}): refine the search for alpha around the best grid point (a finer grid each "
                       "round, or a golden-section search)")
        raise Fail(f"on noise-free data ({truth}) you found E = {E:.4g}, A = {A:.4g}, alpha = {alpha:.4g}: for each "
                   "alpha, E and A are the intercept and slope of the least-squares line of L against N**(-alpha)")
    noisy = [v + ctx.uniform(-0.01, 0.01) for v in y]
    mine = FlooredPowerLaw(*_triple(call(fn, x, noisy)))
    ref = fit_with_floor(x, noisy)
    ss, ss_ref = mine.sum_of_squares(x, noisy), ref.sum_of_squares(x, noisy)
    if not ss <= ss_ref * (1 + 1e-5) + 1e-15:
        raise Fail(f"on noisy data your fit (E = {mine.E:.4g}, A = {mine.A:.4g}, alpha = {mine.alpha:.4g}) misses "
                   f"by {ss:.3g} (sum of squares) where least squares reaches {ss_ref:.3g} (E = {ref.E:.4g}, "
                   f"alpha = {ref.alpha:.4g}): minimise the squared misses of L itself (not of log L or log(L - E)), "
                   "and refine the search for alpha until it stops changing")
    return "recovers the floor exactly from noise-free data; least squares on the loss for noisy data"


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
