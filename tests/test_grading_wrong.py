"""Every check passes a right answer and fails each deliberately wrong one with the hint that names the mistake.

The answers live in tests/grading_cases/ (one module per lesson): the mistakes learners make (missing
1/sqrt(d), mask off by one, softmax over the wrong axis, epsilon outside the square root, temperature after
the softmax, an untied count where tying was asked for, ...). Each runs here at two fixed seeds, so a hint
that only sometimes appears is caught; tests/test_grading_sweep.py runs them all at hundreds of seeds.
"""

from __future__ import annotations

import pytest
import torch

from gptcourse.grading import check, checks

from .grading_cases import load

SEEDS = (1, 2)
GOOD, WRONG = load()


@pytest.mark.parametrize("name", checks())
def test_right_answer_passes(name):
    for seed in SEEDS:
        result = check(name, GOOD[name], seed=seed, quiet=True)
        assert result.status == "pass", result.line


@pytest.mark.parametrize("name, wrong, hint", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_answer_fails_with_its_hint(name, wrong, hint):
    for seed in SEEDS:
        result = check(name, wrong, seed=seed, quiet=True)
        assert result.status == "fail", result.line
        assert hint in result.message, result.line
        assert result.points == 0


def test_every_check_has_a_wrong_answer_and_a_right_one():
    assert set(GOOD) == set(checks())
    assert {w[0] for w in WRONG} == set(checks())


def test_a_stub_in_every_check_is_todo():
    def stub(*args, **kwargs):
        raise NotImplementedError("write it")

    for name in checks():
        result = check(name, stub, quiet=True)
        assert result.status == "todo", result.line


# Seeds at which the 200-seed sweep (tests/test_grading_sweep.py) once saw a wrong answer pass.
SWEEP_FINDS = [
    ("sampling.sample", "most likely token", (4, 7, 55, 64, 92)),
    ("sampling.sample", "follow T = 1", (86,)),
    ("gpt.dropout", "not of keeping it", (12, 15, 17)),
    ("finetune.response_loss", "first response token is left out", (65,)),
]


@pytest.mark.parametrize("name, hint, seeds", SWEEP_FINDS, ids=[f"{n}-{h}" for n, h, _ in SWEEP_FINDS])
def test_what_the_sweep_found_stays_found(name, hint, seeds):
    wrong = next(w for n, w, h in WRONG if n == name and h == hint)
    for seed in seeds:
        result = check(name, wrong, seed=seed, quiet=True)
        assert result.status == "fail" and hint in result.message, f"seed {seed}: {result.line}"


def _in_double(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    if isinstance(value, (tuple, list)):
        return type(value)(_in_double(v) for v in value)
    return value


# sampling.kv_cache hands the returned caches back to the learner's next step as they came: not cast there
IN_DOUBLE = [n for n in checks() if n != "sampling.kv_cache"]


@pytest.mark.parametrize("name", IN_DOUBLE)
def test_a_right_answer_computed_in_double_precision_passes(name):
    result = check(name, lambda *a, **k: _in_double(GOOD[name](*a, **k)), seed=1, quiet=True)
    assert result.status == "pass", result.line


@pytest.mark.parametrize("name", ["attention.weights", "ffn.gelu", "position.rope"])
def test_a_half_precision_answer_is_told_to_return_float32(name):
    result = check(name, lambda *a, **k: GOOD[name](*a, **k).half(), seed=1, quiet=True)
    assert result.status == "fail" and "return float32" in result.message, result.line
