"""Right and wrong answers for every check, one module per lesson (lNN.py, lNNb.py, ...).

Each module defines `GOOD` (check name -> a right answer) and `WRONG` (a list of (check name, wrong answer,
words its hint must contain)). `tests/test_grading_wrong.py` runs them at a few seeds; the `sweep` test at
hundreds. A new lesson's cases go in a new module here: nothing else to register.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

Case = tuple[str, Callable[..., Any], str]


def lesson_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("l"))


def load() -> tuple[dict[str, Callable[..., Any]], list[Case]]:
    """Every lesson's (GOOD, WRONG), merged; a check named twice is a mistake in the cases."""
    good: dict[str, Callable[..., Any]] = {}
    wrong: list[Case] = []
    for name in lesson_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        clash = set(good) & set(module.GOOD)
        if clash:
            raise ValueError(f"{name}: right answers for {sorted(clash)} are already given by another module")
        good.update(module.GOOD)
        wrong.extend(module.WRONG)
    return good, wrong
