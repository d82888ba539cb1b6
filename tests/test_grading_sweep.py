"""The seed sweep: every right answer passes and every wrong one fails with its hint, at hundreds of seeds.

`check` draws fresh inputs at every call, so a check that fails 1 right answer in 60 (a near-tie, a
tolerance too tight) passes a two-seed test most of the time; this sweep finds it. It reuses the answers of
tests/grading_cases/ (every lesson module there), at GPTCOURSE_SWEEP_SEEDS seeds (200 unless set). Run it
with `make sweep` (or `pytest -m sweep tests/test_grading_sweep.py -s` to see the counts).
"""

from __future__ import annotations

import os
import time

import pytest

from gptcourse.grading import check, checks

from .grading_cases import load

SEEDS = range(int(os.environ.get("GPTCOURSE_SWEEP_SEEDS", "200")))
GOOD, WRONG = load()


@pytest.mark.slow
@pytest.mark.sweep
@pytest.mark.parametrize("name", checks())
def test_every_answer_at_every_seed(name):
    start = time.perf_counter()
    wrongs = [(wrong, hint) for n, wrong, hint in WRONG if n == name]
    misses = []
    for seed in SEEDS:
        result = check(name, GOOD[name], seed=seed, quiet=True)
        if result.status != "pass":
            misses.append(f"right answer: {result.line} (seed {seed})")
        for i, (wrong, hint) in enumerate(wrongs):
            result = check(name, wrong, seed=seed, quiet=True)
            if result.status != "fail" or hint not in result.message:
                misses.append(f"wrong answer {i} (hint {hint!r}): {result.line} (seed {seed})")
    runs = len(SEEDS) * (1 + len(wrongs))
    print(f"\n{name}: 1 right and {len(wrongs)} wrong answers x {len(SEEDS)} seeds = {runs} runs, "
          f"{len(misses)} misses, {time.perf_counter() - start:.1f} s")
    assert not misses, f"{len(misses)} of {runs} runs went the wrong way:\n" + "\n".join(misses[:20])
