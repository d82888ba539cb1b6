"""The check runner: verdicts, statuses, and isolation from whatever the learner's code does."""

from __future__ import annotations

import json
import math
import random
import sys
import time

import pytest
import torch

from gptcourse.grading import STATUSES, Result, check, checks
from gptcourse.grading.core import LOG_ENV, registry
from gptcourse.grading.isolation import MAX_CAPTURED

from .conftest import ROOT


def good_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def test_pass_prints_one_verdict_line_and_returns_a_result(capsys):
    result = check("ffn.gelu", good_gelu)
    out = capsys.readouterr().out
    assert isinstance(result, Result)
    assert result.passed and result.status == "pass" and result.points == result.max_points == 1.0
    assert out.count("\n") == 1 and out.startswith("PASS ffn.gelu: ")
    assert out.strip() == result.line == repr(result)


def test_registry_names_lessons_and_counts():
    specs = registry()
    assert list(specs) == checks()
    lessons = {int(p.name[:2]) for p in (ROOT / "notebooks").glob("*.ipynb")} - {0}
    per_lesson: dict[int, int] = {}
    for name, spec in specs.items():
        concept, _, part = name.partition(".")
        assert concept and part and name == spec.name
        assert spec.lesson in lessons and spec.points > 0 and 0 < spec.timeout <= 300  # the capstone trains a model
        per_lesson[spec.lesson] = per_lesson.get(spec.lesson, 0) + 1
    assert sorted(per_lesson) == sorted(lessons)
    assert all(2 <= n <= 5 for n in per_lesson.values()), per_lesson


def test_unknown_name_is_an_error_not_an_exception(capsys):
    result = check("attention.no_such_check", good_gelu)
    assert result.status == "error" and "attention.causal" in result.message
    assert capsys.readouterr().out.startswith("ERROR attention.no_such_check")


def stub(x):
    raise NotImplementedError("write GELU here")


@pytest.mark.parametrize("obj", [stub, None, ...])
def test_stub_or_nothing_is_todo(obj, capsys):
    result = check("ffn.gelu", obj)
    assert result.status == "todo" and result.points == 0
    assert capsys.readouterr().out.startswith("TODO ffn.gelu: not done yet")
    if obj is stub:
        assert "write GELU here" in result.message


def test_learner_exception_is_an_error_with_its_last_line():
    def broken(x):
        raise ValueError("first line\nthe shapes do not match")

    result = check("ffn.gelu", broken)
    assert result.status == "error"
    assert result.message.startswith("ValueError: the shapes do not match (in broken, line ")


def test_wrong_return_type_fails_with_a_message():
    result = check("ffn.gelu", lambda x: x.tolist())
    assert result.status == "fail" and "torch.Tensor" in result.message and "list" in result.message


def test_not_callable_fails_cleanly():
    result = check("ffn.gelu", 42)
    assert result.status in ("fail", "error") and result.points == 0


def test_nan_output_is_caught():
    result = check("ffn.gelu", lambda x: good_gelu(x) / (x - x))
    assert result.status == "fail" and ("NaN" in result.message or "inf" in result.message)


def test_in_place_change_of_the_input_is_caught():
    def sneaky(x):
        y = good_gelu(x.clone())
        x.mul_(0)
        return y

    result = check("ffn.gelu", sneaky)
    assert result.status == "fail" and "in place" in result.message


def test_hang_times_out_within_the_limit_and_the_next_check_still_runs():
    def hang(x):
        while True:
            pass

    start = time.perf_counter()
    result = check("ffn.gelu", hang, timeout=0.5)
    assert result.status == "timeout" and "0.5 s" in result.message
    assert time.perf_counter() - start < 3.0
    assert check("ffn.gelu", good_gelu).status == "pass"


def test_timeout_cannot_be_swallowed_by_a_bare_except():
    def stubborn(x):
        for _ in range(10**9):
            try:
                time.sleep(0.05)
            except:  # noqa: E722  the learner's bare except
                pass

    start = time.perf_counter()
    assert check("ffn.gelu", stubborn, timeout=0.3).status == "timeout"
    assert time.perf_counter() - start < 3.0


def test_sleeping_times_out():
    assert check("ffn.gelu", lambda x: time.sleep(60), timeout=0.3).status == "timeout"


def test_sys_exit_is_an_error_and_does_not_stop_anything():
    result = check("ffn.gelu", lambda x: sys.exit(3))
    assert result.status == "error" and "sys.exit(3)" in result.message
    assert check("ffn.gelu", good_gelu).passed


def test_huge_print_is_captured_not_shown(capsys):
    streams = (sys.stdout, sys.stderr)

    def chatty(x):
        print("y" * 5_000_000)
        print("more", file=sys.stderr)
        return good_gelu(x)

    result = check("ffn.gelu", chatty)
    captured = capsys.readouterr()
    assert result.passed
    assert captured.out.count("\n") == 1 and len(captured.out) < 300 and captured.err == ""
    assert MAX_CAPTURED <= len(result.output) < MAX_CAPTURED + 200 and "more characters not kept" in result.output
    assert (sys.stdout, sys.stderr) == streams  # the very streams that were there before the check


def test_streams_come_back_even_when_the_learner_replaces_them():
    streams = (sys.stdout, sys.stderr)

    def rude(x):
        sys.stdout = sys.stderr = None
        return good_gelu(x)

    assert check("ffn.gelu", rude, quiet=True).passed
    assert (sys.stdout, sys.stderr) == streams


def test_global_state_does_not_leak():
    torch.manual_seed(123)
    random.seed(7)
    expected_torch, expected_py = torch.rand(3), random.random()
    torch.manual_seed(123)
    random.seed(7)

    def vandal(x):
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(0)
        random.seed(0)
        torch.set_grad_enabled(False)
        torch.rand(1000)
        return good_gelu(x.float()).float()

    check("ffn.gelu", vandal)
    assert torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected_torch) and random.random() == expected_py


def test_checks_do_not_touch_the_global_generator():
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    for name in ("attention.causal", "gpt.forward", "train.step"):
        check(name, None, quiet=True)
    check("gpt.forward", lambda model, idx: model.lm_head(model.transformer.wte(idx)), quiet=True)
    assert torch.equal(torch.rand(4), expected)


def test_fresh_inputs_every_run_and_a_seed_repeats_one():
    seeds = {check("ffn.gelu", good_gelu, quiet=True).seed for _ in range(5)}
    assert len(seeds) > 1
    wrong = lambda x: torch.relu(x)  # noqa: E731
    a, b = check("ffn.gelu", wrong, seed=11, quiet=True), check("ffn.gelu", wrong, seed=11, quiet=True)
    assert (a.status, a.message, a.seed) == (b.status, b.message, 11)


def test_results_are_logged_when_the_grader_asks(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    check("ffn.gelu", good_gelu, quiet=True)
    check("ffn.gelu", None, quiet=True)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["pass", "todo"]
    assert set(rows[0]) >= {"name", "status", "message", "points", "max_points", "passed", "seed"}
    assert all(r["status"] in STATUSES for r in rows)


def test_no_log_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(LOG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    check("ffn.gelu", good_gelu, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_importing_the_grader_does_nothing_visible():
    import subprocess

    code = "import gptcourse.grading, gptcourse.grading.cli, gptcourse.grading.generate"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "" and out.stderr == ""


def test_grade_command_refuses_a_missing_notebook(capsys):
    from gptcourse.cli import main

    assert main(["grade", "no/such/notebook.ipynb"]) == 2
    assert "no such notebook" in capsys.readouterr().err
