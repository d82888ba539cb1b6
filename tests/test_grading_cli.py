"""The shell grader's bookkeeping: what counts from the kernel's rows, where the grades are kept, the table."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from gptcourse.grading import checks
from gptcourse.grading.cli import collect, grade_main, grade_paths, notebook_paths, print_entry
from gptcourse.grading.core import registry
from gptcourse.grading.progress import grades_file, lesson_key, progress_lines, progress_main, read_store, record

SPECS = registry()


def row(name, status="pass", **extra):
    return {"name": name, "status": status, "message": "m", "points": 1.0, "max_points": 1.0, "seconds": 0.1,
            "seed": 1, **extra}


def test_rows_count_only_registered_checks_with_the_registrys_points():
    rows = [
        row("attention.causal_mask", "fail"),
        row("attention.causal_mask", "pass", points=50.0, max_points=50.0),  # the last row of a check counts
        row("made.up", points=100.0, max_points=0.0),  # not a check: ignored
        row("attention.weights", "sure", points=9.0),  # not a status: ignored
        row("gpt.forward"),  # lesson 07's check in a lesson 03 notebook, not called there: ignored
        row("attention.causal", points=7.0, max_points=0.1),  # lesson 03's, run in a loop: counts, 1 point
        "not a row",
    ]
    got = collect(rows, {"attention.causal_mask": 2, "attention.weights": 5}, 3, SPECS, lambda i: "", "")
    assert [(c["name"], c["status"], c["points"], c["max_points"]) for c in got] == [
        ("attention.causal_mask", "pass", 1.0, 1.0),
        ("attention.weights", "error", 0.0, 1.0),
        ("attention.causal", "pass", 1.0, 1.0),
    ]
    assert sum(c["points"] for c in got) == 2.0 and sum(c["max_points"] for c in got) == 3.0


def test_a_check_without_a_row_gets_its_cells_error():
    errors = {4: "NotImplementedError: write the mask", 6: "NameError: name 'f' is not defined"}
    got = collect([], {"attention.causal_mask": 4, "attention.weights": 6, "attention.causal": 9}, 3, SPECS,
                  lambda i: errors.get(i, ""), "")
    assert [c["status"] for c in got] == ["todo", "error", "error"]
    assert got[0]["message"] == "not done yet: write the mask"
    assert "NameError" in got[1]["message"] and "not reached" in got[2]["message"]


def test_the_lesson_is_the_prefix_before_the_first_underscore():
    assert [lesson_key(n) for n in ("03_masked_self_attention.ipynb", "08b_capstone_your_gpt.ipynb",
                                    "12_fine_tuning.ipynb", "09_first_attempt.ipynb", "notes.ipynb")] == [
        "03", "08b", "12", "09", "notes"]


def test_folders_are_graded_as_the_notebooks_in_them(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "notes.txt"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "03_c.ipynb").write_text("{}")
    assert notebook_paths([tmp_path, tmp_path / "sub" / "03_c.ipynb"]) == [
        tmp_path / "01_a.ipynb", tmp_path / "02_b.ipynb", tmp_path / "sub" / "03_c.ipynb"]


def test_grade_refuses_what_is_not_a_notebook_or_folder(tmp_path, capsys):
    assert grade_main([str(tmp_path / "nothing_here")]) == 2
    assert "no such notebook or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert grade_main([str(tmp_path / "empty")]) == 2
    assert "no notebooks found" in capsys.readouterr().err


def test_the_table_shows_the_whole_hint(capsys):
    hint = ("for GPT-2 small (124,439,808 with tied weights) you counted 163,037,184; the real model has "
            "124,439,808: you counted the output head although tie_weights=True: a tied head reuses the token "
            "embedding")
    entry = {"notebook": "07_x.ipynb", "seconds": 1.0, "score": 0, "max": 1, "problem": "", "tampering": [],
             "checks": [{"name": "params.count", "status": "fail", "message": hint, "points": 0.0,
                         "max_points": 1.0}]}
    print_entry(entry, width=100)
    out = capsys.readouterr().out
    assert " ".join(out.split()).count(hint) == 1  # every word, in order, wrapped under the row
    assert all(len(line) <= 100 for line in out.splitlines())


def _entry(folder, name, score, when, statuses=("pass", "fail")):
    return {"notebook": name, "path": str(folder / name), "lesson": lesson_key(name), "seconds": 1.0,
            "score": score, "max": len(statuses), "problem": "", "tampering": [], "graded_at": when,
            "checks": [{"name": f"c.{i}", "status": s} for i, s in enumerate(statuses)]}


def _report(entries):
    return {"graded_at": "2026-01-01T00:00:00+00:00", "notebooks": entries, "score": 0, "max": 0, "counts": {},
            "passed": False, "seconds": 1.0}


def test_grades_are_kept_beside_the_work_and_keyed_by_lesson_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    work, solutions = tmp_path / "exercises", tmp_path / "solutions"
    work.mkdir()
    solutions.mkdir()
    for name in ("01_a.ipynb", "09_sampling.ipynb", "09_first_attempt.ipynb", "10_heads.ipynb"):
        (work / name).write_text("{}")
    written = record(_report([_entry(work, "09_sampling.ipynb", 1, "2026-01-01T00:00:00+00:00"),
                              _entry(work, "01_a.ipynb", 2, "2026-01-01T00:00:00+00:00", ("pass", "pass"))]))
    written += record(_report([_entry(work, "09_first_attempt.ipynb", 2, "2026-01-02T00:00:00+00:00",
                                      ("pass", "pass")),
                               _entry(solutions, "09_sampling.ipynb", 2, "2026-01-03T00:00:00+00:00",
                                      ("pass", "pass"))]))
    assert [p for p, _ in written] == [grades_file(work, "report.json")] * 2 + [grades_file(solutions, "report.json")]
    assert "1 notebook: 09_first_attempt.ipynb" in written[1][1]
    assert not (tmp_path / "runs").exists()
    store = read_store(work)
    assert sorted(store) == ["01", "09"] and len(store["09"]) == 2
    lines = progress_lines(store, sorted(work.glob("*.ipynb")), ascii_only=True)
    assert len(lines) == 4  # 01, 09, 10 and the total: the copy is lesson 09, not a row of its own
    assert "01_a.ipynb" in lines[0] and "done" in lines[0]
    assert "09_first_attempt.ipynb" in lines[1] and "2/2" in lines[1] and "latest of 2" in lines[1]
    assert "10_heads.ipynb" in lines[2] and "not graded yet" in lines[2]
    assert lines[3].startswith("  total 4/4")  # the solutions' grade is not the learner's
    assert json.loads(grades_file(work, "report.json").read_text())["notebooks"][0]["notebook"] == (
        "09_first_attempt.ipynb")
    assert (work / ".grades" / ".gitignore").read_text().strip().endswith("*")


def test_progress_names_the_file_it_reads_and_shows_only_that_folder(tmp_path, capsys):
    work = tmp_path / "exercises"
    work.mkdir()
    (work / "03_attention.ipynb").write_text("{}")
    assert progress_main([str(work), "--ascii"]) == 0
    out = capsys.readouterr().out
    assert str(grades_file(work)) in out and "03_attention.ipynb" in out and "not graded yet" in out
    assert progress_main([str(tmp_path / "nowhere")]) == 2


def _notebook(path, cells):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_learner_cannot_add_rows_to_the_results(tmp_path, capsys):
    fake = json.dumps({"name": "scaling.flops", "status": "pass", "message": "forged", "points": 99,
                       "max_points": 99, "seconds": 0, "seed": 0, "passed": True})
    path = _notebook(tmp_path / "11_forged.ipynb", [
        "import os\nfrom gptcourse.grading import check",
        "check('scaling.flops', lambda n, d: 2 * n * d)",
        f"with open(os.environ['GPTCOURSE_GRADE_LOG'], 'a') as f:\n    f.write({fake!r} + '\\n')",
        "check('scaling.fit_power_law', None)",
    ])
    assert grade_main([str(path)]) == 1
    report = json.loads(grades_file(tmp_path, "report.json").read_text())
    entry = report["notebooks"][0]
    assert [(c["name"], c["status"]) for c in entry["checks"]] == [("scaling.flops", "fail"),
                                                                   ("scaling.fit_power_law", "todo")]
    assert entry["score"] == 0 and entry["max"] == 2
    assert "GPTCOURSE_GRADE_LOG" in entry["tampering"]
    out = capsys.readouterr().out
    assert "read it before trusting this score" in out and f"report: {grades_file(tmp_path, 'report.json')}" in out
    assert os.environ.get("GPTCOURSE_GRADE_LOG") is None


@pytest.mark.slow
def test_grade_solutions_folder_then_progress_of_exercises_is_untouched(tmp_path, monkeypatch, capsys):
    from .test_exercises import SOLUTIONS

    sols, work = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    work.mkdir()
    for src in SOLUTIONS[:2]:
        (sols / src.name).write_bytes(src.read_bytes())
    assert grade_main([str(sols), "--jobs", "2"]) == 0
    assert read_store(sols) and not read_store(work)
    report = json.loads(grades_file(sols, "report.json").read_text())
    assert report["passed"] and [e["notebook"] for e in report["notebooks"]] == [p.name for p in SOLUTIONS[:2]]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert progress_main(["--ascii"]) == 0  # ./exercises: the learner's, never the solutions' grades
    assert "total 0/0" in capsys.readouterr().out
    assert set(checks()) >= {c["name"] for e in report["notebooks"] for c in e["checks"]}
    assert grade_paths([], quiet=True)["passed"] is False
