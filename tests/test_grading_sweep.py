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


# `make test` runs the same sweep at a few seeds (fewer for the checks that train a model), so a check that
# goes wrong often is caught by CI; `make sweep` runs the hundreds.
SHORT_SEEDS = range(30)
TRAINING_CHECKS = {"capstone.your_gpt": range(4), "train.loop": range(4)}


def sweep(name: str, seeds) -> tuple[int, list[str]]:
    """Every answer of `name` at every seed: the number of runs and the ones that went the wrong way."""
    wrongs = [(wrong, hint) for n, wrong, hint in WRONG if n == name]
    misses = []
    for seed in seeds:
        result = check(name, GOOD[name], seed=seed, quiet=True)
        if result.status != "pass":
            misses.append(f"right answer: {result.line} (seed {seed})")
        for i, (wrong, hint) in enumerate(wrongs):
            result = check(name, wrong, seed=seed, quiet=True)
            if result.status != "fail" or hint not in result.message:
                misses.append(f"wrong answer {i} (hint {hint!r}): {result.line} (seed {seed})")
    return len(seeds) * (1 + len(wrongs)), misses


@pytest.mark.slow
@pytest.mark.parametrize("name", checks())
def test_every_answer_at_a_few_seeds(name):
    runs, misses = sweep(name, TRAINING_CHECKS.get(name, SHORT_SEEDS))
    assert not misses, f"{len(misses)} of {runs} runs went the wrong way:\n" + "\n".join(misses[:20])


@pytest.mark.slow
@pytest.mark.sweep
@pytest.mark.parametrize("name", checks())
def test_every_answer_at_every_seed(name):
    start = time.perf_counter()
    runs, misses = sweep(name, SEEDS)
    print(f"\n{name}: {runs} runs (the right answer and every wrong one x {len(SEEDS)} seeds), "
          f"{len(misses)} misses, {time.perf_counter() - start:.1f} s")
    assert not misses, f"{len(misses)} of {runs} runs went the wrong way:\n" + "\n".join(misses[:20])
