"""Lesson 11: the power-law fit, the law with a floor, and training compute."""

from __future__ import annotations

import math

from gptcourse import scaling


def fit(x, y):
    law = scaling.fit_power_law(x, y)
    return law.a, law.alpha


def fit_wrong_sign(x, y):
    a, alpha = fit(x, y)
    return a, -alpha


def fit_log_a(x, y):
    a, alpha = fit(x, y)
    return math.log(a), alpha


def fit_linear(x, y):
    lx = [math.log(v) for v in x]
    n = len(x)
    mx, my = sum(lx) / n, sum(y) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, y)) / sum((a - mx) ** 2 for a in lx)
    return math.exp(my - slope * mx), -slope


def _line(u, y):
    """Intercept and slope of the least-squares line y ~ c + s * u."""
    mu, my = sum(u) / len(u), sum(y) / len(y)
    slope = sum((a - mu) * (b - my) for a, b in zip(u, y)) / sum((a - mu) ** 2 for a in u)
    return my - slope * mu, slope


def _floor_at(x, y, alpha):
    """(sum of squares, E, A) of the best line L ~ E + A * u, u = x**(-alpha)."""
    u = [v**-alpha for v in x]
    E, A = _line(u, y)
    return sum((b - E - A * a) ** 2 for a, b in zip(u, y)), E, A


def fit_floor(x, y, rounds=30):
    """As the solution does it: a grid of alphas, then ever finer grids around the best."""
    lo, hi = 1e-3, 3.0
    for _ in range(rounds):
        alphas = [lo * (hi / lo) ** (i / 20) for i in range(21)]
        best = min(range(21), key=lambda i: _floor_at(x, y, alphas[i])[0])
        lo, hi = alphas[max(best - 1, 0)], alphas[min(best + 1, 20)]
    _, E, A = _floor_at(x, y, alphas[best])
    return E, A, alphas[best]


def fit_floor_coarse(x, y):
    alphas = [1e-3 * 3000 ** (i / 99) for i in range(100)]  # one grid of 100 alphas, never refined
    alpha = min(alphas, key=lambda a: _floor_at(x, y, a)[0])
    _, E, A = _floor_at(x, y, alpha)
    return E, A, alpha


def fit_floor_swapped(x, y):
    E, A, alpha = fit_floor(x, y)
    return A, E, alpha


def fit_floor_sign(x, y):
    E, A, alpha = fit_floor(x, y)
    return E, A, -alpha


def fit_floor_at_min(x, y):
    _, A, alpha = fit_floor(x, y)
    return min(y), A, alpha


def fit_floor_straightest_log(x, y):
    """Search E for the straightest line of log(L - E) against log N (misses measured on log axes)."""
    lx = [math.log(v) for v in x]

    def crookedness(E):
        ly = [math.log(v - E) for v in y]
        c, s = _line(lx, ly)
        return sum((b - c - s * a) ** 2 for a, b in zip(lx, ly))

    top = min(y) * (1 - 1e-9)
    grid = [top * i / 2000 for i in range(2001)]  # a grid first: the crookedness has more than one dip
    best = min(range(2001), key=lambda i: crookedness(grid[i]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, 2000)]
    for _ in range(100):  # then a golden-section search around the best grid point
        m1, m2 = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
        lo, hi = (lo, m2) if crookedness(m1) < crookedness(m2) else (m1, hi)
    law = scaling.fit_power_law(x, [v - lo for v in y])
    return lo, law.a, law.alpha


GOOD = {
    "scaling.fit_power_law": fit,
    "scaling.fit_with_floor": fit_floor,
    "scaling.flops": lambda n, d: 6 * n * d,
}

WRONG = [
    ("scaling.fit_power_law", fit_wrong_sign, "wrong sign"),
    ("scaling.fit_power_law", fit_log_a, "exp(intercept)"),
    ("scaling.fit_power_law", fit_linear, "straight line"),
    ("scaling.fit_with_floor", lambda x, y: (0.0, *fit(x, y)), "pure power law"),
    ("scaling.fit_with_floor", fit_floor_swapped, "swapped"),
    ("scaling.fit_with_floor", fit_floor_sign, "wrong sign"),
    ("scaling.fit_with_floor", fit_floor_at_min, "not below the smallest loss"),
    ("scaling.fit_with_floor", fit_floor_coarse, "refine the search"),
    ("scaling.fit_with_floor", fit_floor_straightest_log, "squared misses of L itself"),
    ("scaling.flops", lambda n, d: 2 * n * d, "backward"),
]
