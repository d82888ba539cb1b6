"""Scaling laws: fitting loss = a * N^(-alpha) on log-log axes, and predicting the next size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PowerLaw", "fit_power_law"]


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
