"""Every lesson runs top to bottom in a fresh kernel, on a copy, with no error; the committed ones are clean."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from gptcourse.notebooks import error_outputs, execute_notebook

from .conftest import ROOT

LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """One runs/ folder for the whole session, so lesson 08's checkpoint reaches lessons 09-11."""
    return tmp_path_factory.mktemp("runs")


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_executes(lesson, tmp_path, runs, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_RUNS", str(runs))
    copy = tmp_path / lesson.name
    shutil.copy(lesson, copy)
    nb, seconds = execute_notebook(copy, out_path=copy, cwd=lesson.parent)  # the copy, never the lesson
    assert error_outputs(nb) == []
    print(f"{lesson.name}: {seconds:.1f} s")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_committed_lesson_is_executed_and_clean(lesson):
    nb = nbformat.read(lesson, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, "a lesson without code"
    assert all(c.execution_count for c in code), "cells not executed: run `make notebooks`"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "not executed top to bottom in one fresh kernel"
    assert error_outputs(nb) == []
    assert "widgets" not in nb.metadata, "widget state committed: run `make notebooks`"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "a lesson without a figure"
