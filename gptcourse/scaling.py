"""Scaling laws: power laws with and without a floor, the two-variable law, and the compute-optimal frontier.

Three fits, each least squares:
- `fit_power_law`: y = a * x^-alpha, a straight line on log-log axes (Kaplan et al. 2020's form).
- `fit_with_floor`: y = E + A * x^-alpha. The floor E is the loss no model size removes (the text's own
  entropy, and what the training budget leaves); with it the curve bends on log-log axes.
- `fit_scaling_law`: L(N, D) = E + A / N^alpha + B / D^beta over model size N and tokens D (Hoffmann et al.
  2022's form); it says how to split a compute budget C = 6 N D between size and data.

For fixed exponents the laws with a floor are linear in their coefficients (a straight line in u = x^-alpha
has intercept E and slope A), so the fits search the exponents and solve for the rest exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PowerLaw",
    "fit_power_law",
    "FlooredPowerLaw",
    "fit_with_floor",
    "ScalingLaw",
    "fit_scaling_law",
    "compute_frontier",
]

EXPONENT_RANGE = (1e-3, 3.0)  # exponents searched: from nearly flat to steeper than any measured law


@dataclass(frozen=True)
class PowerLaw:
    """y = a * x ** (-alpha): a straight line of slope -alpha on log-log axes."""

    a: float
    alpha: float

    def __call__(self, x: float) -> float:
        return self.a * x ** (-self.alpha)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least squares on (log x, log y). Needs at least two points, all positive, not all at one x."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two or more (x, y) pairs of equal length, got {len(x)} and {len(y)}")
    if any(v <= 0 for v in list(x) + list(y)):
        raise ValueError("a power law is fitted on log axes: every x and y must be positive")
    lx, ly = [math.log(v) for v in x], [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("all x are equal: the slope is undefined")
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    return PowerLaw(a=math.exp(my - slope * mx), alpha=-slope)


@dataclass(frozen=True)
class FlooredPowerLaw:
    """y = E + A * x ** (-alpha): a power law that levels off at the floor E as x grows."""

    E: float
    A: float
    alpha: float

    def __call__(self, x: float) -> float:
        return self.E + self.A * x ** (-self.alpha)

    def sum_of_squares(self, x: Sequence[float], y: Sequence[float]) -> float:
        """The fit's squared misses, summed over the points: what `fit_with_floor` makes smallest."""
        return float(sum((yi - self(xi)) ** 2 for xi, yi in zip(x, y)))


def fit_with_floor(x: Sequence[float], y: Sequence[float]) -> FlooredPowerLaw:
    """Least squares y ~ E + A * x^-alpha with E >= 0 and A >= 0 (on linear axes: errors in loss, not log loss).

    For each alpha the law is a straight line in u = x^-alpha (intercept E, slope A), solved exactly; alpha
    is searched on a grid, then refined around the best. Needs three or more points at two or more x.
    """
    xs, ys = _positive_points(x, y, minimum=3)
    ones = np.ones_like(xs)

    def misses(log_alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = xs[None, :] ** -np.exp(log_alpha)  # (1, n) ** -(K, 1) -> (K, n): one row per candidate alpha
        return _nonneg_lstsq(np.stack([np.broadcast_to(ones, u.shape), u], -1), ys)

    (log_alpha,), (E, A) = _search(misses, 1)
    return FlooredPowerLaw(E=float(E), A=float(A), alpha=math.exp(log_alpha))


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta: loss of a model of N parameters trained on D tokens."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def __call__(self, n: float, d: float) -> float:
        return self.E + self.A * n ** (-self.alpha) + self.B * d ** (-self.beta)

    def optimal_size(self, compute: float) -> tuple[float, float]:
        """(N, D) with the lowest loss for the compute C = 6 N D (set dL/dN = 0 along D = C / 6N)."""
        if self.A <= 0 or self.B <= 0:
            raise ValueError("with A or B zero one of the terms is flat: no balance between size and data")
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        n = g * (compute / 6) ** (self.beta / s)
        return n, compute / (6 * n)


def fit_scaling_law(n: Sequence[float], d: Sequence[float], loss: Sequence[float]) -> ScalingLaw:
    """Least squares L ~ E + A / N^alpha + B / D^beta with E, A, B >= 0, over runs of size n[i] and tokens d[i].

    For fixed (alpha, beta) the law is linear in (E, A, B), solved exactly; the exponents are searched on a
    grid, then refined. Needs six or more runs, with at least two sizes and two token counts.
    """
    if len(set(d)) < 2:
        raise ValueError("all runs saw the same number of tokens: beta cannot be measured")
    ns, losses = _positive_points(n, loss, minimum=6)
    ds, _ = _positive_points(d, loss, minimum=6)
    ones = np.ones_like(ns)

    def misses(log_exponents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha, beta = np.exp(log_exponents[:, :1]), np.exp(log_exponents[:, 1:])  # (K, 1) each
        columns = [np.broadcast_to(ones, (len(alpha), len(ns))), ns[None, :] ** -alpha, ds[None, :] ** -beta]
        return _nonneg_lstsq(np.stack(columns, -1), losses)

    (log_alpha, log_beta), (E, A, B) = _search(misses, 2)
    return ScalingLaw(E=float(E), A=float(A), alpha=math.exp(log_alpha), B=float(B), beta=math.exp(log_beta))


def compute_frontier(compute: Sequence[float], loss: Sequence[float]) -> list[int]:
    """Indices of the runs on the compute-optimal frontier: each one reached a lower loss than every run
    that used less compute. In order of compute."""
    if len(compute) != len(loss) or not len(compute):
        raise ValueError(f"need one loss per compute value (and at least one), got {len(compute)} and {len(loss)}")
    frontier, best = [], math.inf
    for i in sorted(range(len(compute)), key=lambda i: (compute[i], loss[i])):
        if loss[i] < best:
            frontier.append(i)
            best = loss[i]
    return frontier


def _positive_points(x: Sequence[float], y: Sequence[float], minimum: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) != len(y) or len(x) < minimum:
        raise ValueError(f"need {minimum} or more points, one y per x; got {len(x)} x and {len(y)} y")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))) or np.any(xs <= 0) or np.any(ys <= 0):
        raise ValueError("every x and y must be a positive, finite number")
    if len(set(xs.tolist())) < 2:
        raise ValueError("all x are equal: the exponent cannot be measured")
    return xs, ys


def _nonneg_lstsq(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares X @ c ~ y with c >= 0, for a stack of small designs X (K, n, p), p <= 3.

    Tries every subset of columns with the others held at zero and keeps, per design, the best one whose
    coefficients are all >= 0 (that is the exact non-negative solution). Returns (sum of squares (K,), c (K, p)).
    """
    K, _, p = X.shape
    best_ss, best_c = np.full(K, np.inf), np.zeros((K, p))
    for size in range(1, p + 1):
        for cols in itertools.combinations(range(p), size):
            sub = X[:, :, cols]  # (K, n, size)
            gram = sub.transpose(0, 2, 1) @ sub  # (K, size, size)
            rhs = sub.transpose(0, 2, 1) @ y  # (K, size)
            ok = np.abs(np.linalg.det(gram)) > 1e-12 * np.prod(np.diagonal(gram, axis1=1, axis2=2), axis=1)
            coef = np.zeros((K, size))
            coef[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
            ss = (((sub @ coef[..., None])[..., 0] - y) ** 2).sum(1)  # (K,)
            better = ok & np.all(coef >= 0, axis=1) & (ss < best_ss)
            best_ss[better] = ss[better]
            full = np.zeros((K, p))
            full[:, cols] = coef
            best_c[better] = full[better]
    return best_ss, best_c


def _search(
    misses: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], dims: int, grid: int = 41, rounds: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise misses(log exponents (K, dims)) -> (sum of squares (K,), coefficients (K, p)): a grid over
    EXPONENT_RANGE (log-spaced), then grids ever smaller around the best point. Returns (log exponents, coefs)."""
    lo, hi = np.full(dims, math.log(EXPONENT_RANGE[0])), np.full(dims, math.log(EXPONENT_RANGE[1]))
    center, width = (lo + hi) / 2, (hi - lo) / 2
    for _ in range(rounds):
        axes = [np.clip(np.linspace(c - w, c + w, grid), lo_, hi_) for c, w, lo_, hi_ in zip(center, width, lo, hi)]
        points = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], -1)  # (grid^dims, dims)
        ss, coefs = misses(points)
        best = int(np.argmin(ss))
        center, width = points[best], width * 4 / (grid - 1)  # the next grid spans two cells each side
    return center, coefs[best]
