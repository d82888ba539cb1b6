"""Exercises and solutions: one source, generated in step, solutions all PASS, and the shell grader end to end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from gptcourse.grading import checks
from gptcourse.grading.cli import CHECK_CALL, grade_main, grade_paths
from gptcourse.grading.generate import SolutionMarkerError, exercise_notebook, expected, strip_solutions
from gptcourse.grading.generate import main as generate_main
from gptcourse.grading.progress import grades_file, progress_main

from .conftest import ROOT

# Every lesson after the setup has an exercise notebook of the same name; the capstone is an exercise only.
CAPSTONE = "08b_capstone_your_gpt"
LESSONS = sorted([*(p.stem for p in (ROOT / "notebooks").glob("*.ipynb") if not p.stem.startswith("00")), CAPSTONE])
SOLUTIONS = [ROOT / "solutions" / f"{name}.ipynb" for name in LESSONS]
EXERCISES = [ROOT / "exercises" / f"{name}.ipynb" for name in LESSONS]
VERDICTS = ("PASS", "FAIL", "TODO", "ERROR", "TIMEOUT")


def calls(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [n for c in nb.cells if c.cell_type == "code" for n in CHECK_CALL.findall(c.source)]


def test_one_exercise_and_one_solution_per_lesson():
    assert sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb")) == LESSONS
    assert sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb")) == LESSONS


def test_exercises_are_what_the_generator_writes():
    files = expected(ROOT)
    assert sorted(files) == sorted(EXERCISES)
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run `python -m gptcourse exercises`"
    assert generate_main(["--check"]) == 0


@pytest.mark.parametrize("name", LESSONS)
def test_every_notebook_grades_two_to_five_registered_checks(name):
    names = calls(ROOT / "solutions" / f"{name}.ipynb")
    fewest = 1 if name == CAPSTONE else 2  # the capstone is one check: your whole model, trained
    assert fewest <= len(names) <= 5 and len(set(names)) == len(names)
    assert set(names) <= set(checks())
    assert calls(ROOT / "exercises" / f"{name}.ipynb") == names


def test_every_registered_check_is_used_by_exactly_one_notebook():
    used = [n for p in SOLUTIONS for n in calls(p)]
    assert sorted(used) == sorted(checks())


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_exercises_have_stubs_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    text = "\n".join(c.source for c in code)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    solution = nbformat.read(ROOT / "solutions" / path.name, as_version=4)
    regions = sum(c.source.count("### BEGIN SOLUTION") for c in solution.cells if c.cell_type == "code")
    assert text.count("raise NotImplementedError(") == regions >= 2


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_are_executed_and_every_check_passes_visibly(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run `make notebooks`"
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert "widgets" not in nb.metadata
    lines = [line for c in code for o in c.outputs if o.get("output_type") == "stream"
             for line in o.get("text", "").splitlines() if line.split(" ")[0] in VERDICTS]
    assert sorted(line.split(":")[0] for line in lines) == sorted(f"PASS {n}" for n in calls(path))


def test_strip_solutions_turns_a_region_into_a_stub():
    source = (
        "def f(x):\n"
        "    ### BEGIN SOLUTION: return x doubled\n"
        "    y = 2 * x\n"
        "    return y\n"
        "    ### END SOLUTION\n"
        "\n"
        "print('kept')"
    )
    assert strip_solutions(source) == (
        'def f(x):\n    raise NotImplementedError("return x doubled")\n\nprint(\'kept\')'
    )
    assert strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION") == (
        'raise NotImplementedError("your code here")'
    )
    assert 'NotImplementedError("say \\"hi\\"")' in strip_solutions('### BEGIN SOLUTION: say "hi"\n### END SOLUTION')


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION: a\nx = 1",
    "### END SOLUTION",
    "### BEGIN SOLUTION: a\n### BEGIN SOLUTION: b\n### END SOLUTION",
])
def test_broken_markers_are_refused(source):
    with pytest.raises(SolutionMarkerError):
        strip_solutions(source)


def test_a_solution_without_regions_is_refused():
    with pytest.raises(SolutionMarkerError, match="no ### BEGIN SOLUTION"):
        exercise_notebook(new_notebook(cells=[new_code_cell("x = 1")]))


def _mini_course(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    nb = new_notebook(cells=[new_code_cell("def f():\n    ### BEGIN SOLUTION: return 1\n    return 1\n"
                                           "    ### END SOLUTION")])
    nbformat.write(nb, tmp_path / "solutions" / "01_x.ipynb")
    return tmp_path / "exercises" / "01_x.ipynb"


def test_generator_writes_then_is_up_to_date(tmp_path):
    target = _mini_course(tmp_path)
    assert generate_main(["--root", str(tmp_path), "--check"]) == 1
    assert generate_main(["--root", str(tmp_path)]) == 0
    source = nbformat.read(target, as_version=4).cells[0].source
    assert source == 'def f():\n    raise NotImplementedError("return 1")'
    assert generate_main(["--root", str(tmp_path), "--check"]) == 0


def test_generator_never_overwrites_a_learners_executed_notebook(tmp_path):
    target = _mini_course(tmp_path)
    work = new_notebook(cells=[new_code_cell("def f():\n    return 1", execution_count=1)])
    nbformat.write(work, target)
    before = target.read_bytes()
    assert generate_main(["--root", str(tmp_path)]) == 1
    assert target.read_bytes() == before
    assert generate_main(["--root", str(tmp_path), "--force"]) == 0
    assert target.with_suffix(".ipynb.bak").read_bytes() == before
    assert "NotImplementedError" in target.read_text()


def _digest(paths) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.slow
def test_grading_blank_exercises_gives_all_todo_and_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    work = tmp_path / "exercises"
    work.mkdir()
    for path in EXERCISES:
        shutil.copy(path, work / path.name)
    monkeypatch.chdir(tmp_path)  # `grade` and `progress` with no argument: ./exercises
    before = _digest(sorted(work.glob("*.ipynb")))
    assert grade_main([]) == 1
    out = capsys.readouterr().out
    report = json.loads(grades_file(work, "report.json").read_text())
    statuses = [c["status"] for e in report["notebooks"] for c in e["checks"]]
    assert statuses == ["todo"] * len(checks())
    assert report["score"] == 0 and report["max"] == len(checks()) and not report["passed"]
    assert f"TOTAL 0/{len(checks())}" in out and f"report: {grades_file(work, 'report.json')}" in out
    assert _digest(sorted(work.glob("*.ipynb"))) == before, "the grader wrote to a learner's notebook"
    assert not (tmp_path / "runs").exists(), "the grades belong beside the learner's work"
    print(f"graded {len(EXERCISES)} blank exercises in {report['seconds']:.1f} s of kernel time")
    assert progress_main(["--ascii"]) == 0
    assert f"total 0/{len(checks())}" in capsys.readouterr().out


@pytest.mark.slow
def test_grading_the_solutions_gives_full_marks(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path))
    copies = []
    for path in SOLUTIONS:
        shutil.copy(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    before = _digest(copies)
    report = grade_paths(copies, quiet=True)
    failed = [c for e in report["notebooks"] for c in e["checks"] if c["status"] != "pass"]
    assert not failed, failed
    assert report["passed"] and report["score"] == report["max"] == len(checks())
    assert not any(e["tampering"] for e in report["notebooks"])
    assert _digest(copies) == before


@pytest.mark.slow
def test_grader_survives_hangs_exits_crashes_and_broken_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    cells = [
        "import math, sys, time\nimport torch\nfrom gptcourse.grading import check",
        "def hang(x):\n    while True:\n        pass\ncheck('ffn.gelu', hang, timeout=1)",
        "check('ffn.mlp', lambda x, a, b: sys.exit(1))\ncheck('scaling.flops', lambda n, d: 6 * n * d)",
        "def broken(:\n    pass\ncheck('heads.first_token', broken)",
        "print('x' * 3_000_000)\ncheck('multihead.merge', lambda y: y.transpose(1, 2).flatten(2))",
        "torch.set_default_dtype(torch.float64)\ncheck('tokens.one_hot_embedding', lambda i, W: W[i])\n"
        "assert torch.get_default_dtype() == torch.float64",
        "import os\nos._exit(0)",
        "check('heads.previous_token', lambda w: w.diagonal(-1, -2, -1).mean(dim=(0, 2)))",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "robust.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    report = grade_paths([path], cell_timeout=60, quiet=True)
    got = {c["name"]: (c["status"], c["message"]) for c in report["notebooks"][0]["checks"]}
    assert got["ffn.gelu"][0] == "timeout"
    assert got["ffn.mlp"][0] == "error" and "sys.exit" in got["ffn.mlp"][1]
    assert got["scaling.flops"][0] == "pass"
    assert got["heads.first_token"][0] == "error" and "SyntaxError" in got["heads.first_token"][1]
    assert got["multihead.merge"][0] == "pass"
    assert got["tokens.one_hot_embedding"][0] == "pass"
    assert got["heads.previous_token"][0] == "error" and "did not run" in got["heads.previous_token"][1]
    assert report["notebooks"][0]["problem"]  # the kernel died; the report says so
    assert path.read_bytes() == before
    assert os.environ.get("GPTCOURSE_GRADE_LOG") is None


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_run_all_on_a_blank_exercise_reaches_every_check_and_each_says_todo(path, tmp_path, monkeypatch):
    from gptcourse.notebooks import execute_notebook

    monkeypatch.setenv("GPTCOURSE_FAST", "1")
    monkeypatch.delenv("GPTCOURSE_GRADE_LOG", raising=False)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb, _ = execute_notebook(copy)  # like Run All: stops at the first cell that raises
    code = [c for c in nb.cells if c.cell_type == "code"]
    printed = [[line for o in c.outputs if o.get("output_type") == "stream" for line in o["text"].splitlines()]
               for c in code]
    names = set(checks())
    verdicts = [line.split(":")[0] for lines in printed for line in lines
                if line.split(" ")[0] in VERDICTS and line.split(":")[0].split(" ")[-1] in names]
    assert sorted(verdicts) == sorted(f"TODO {n}" for n in calls(path))
    for cell, lines in zip(code, printed):
        if cell.source.startswith("with preview():"):  # a preview of a stub says TODO instead of stopping
            assert [line for line in lines if line.startswith("TODO ")], (cell.source, lines)
