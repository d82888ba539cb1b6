"""Every lesson runs top to bottom in a fresh kernel, on a copy, with no error; the committed ones are clean."""

from __future__ import annotations

import re
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


# What a reader must never see in a saved lesson: a raw object repr, a progress bar stopped part-way.
RAW_REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>")
PARTIAL_BAR = re.compile(r"\b(\d+)/(\d+) \[")  # tqdm's "  3/900 [00:01<..."
LINK = re.compile(r"\]\(([^)#\s]+)")


def reader_problems(nb) -> list[str]:
    """The defects a reader of a saved notebook would see, one line each (empty when the page is clean)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"cell {i}: stderr output (a pink box): {out['text'][:60]!r}")
            data = out.get("data", {})
            text = out.get("text", "") + data.get("text/plain", "")
            if RAW_REPR.search(text):
                problems.append(f"cell {i}: raw object repr {RAW_REPR.search(text).group(0)}")
            if "application/vnd.jupyter.widget-view+json" in data and set(data) <= {
                "application/vnd.jupyter.widget-view+json", "text/plain"}:
                problems.append(f"cell {i}: a live widget without a static snapshot")
            for done, total in PARTIAL_BAR.findall(text):
                if done != total:
                    problems.append(f"cell {i}: a progress bar saved part-way ({done}/{total})")
    return problems


def structure_problems(lesson) -> list[str]:
    """The standard page: title, goals, summary, a link to the exercises and to the next lesson."""
    nb = nbformat.read(lesson, as_version=4)
    number = lesson.name[:2]
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    problems = []
    if not re.match(rf"# Lesson {number}: \S", markdown[0]):
        problems.append(f"the first cell must start '# Lesson {number}: Title'")
    if "**Learning goals" not in markdown[0]:
        problems.append("the first cell has no **Learning goals**")
    if not any(re.search(r"^## Summary", m, re.M) for m in markdown):
        problems.append("no '## Summary' section")
    closing = "\n".join(markdown[-3:])
    exercise = next((ROOT / "exercises").glob(f"{number}_*.ipynb"), None)
    if exercise and f"](../exercises/{exercise.name})" not in closing:
        problems.append(f"the closing cells do not link to ../exercises/{exercise.name}")
    later = [p for p in LESSONS if p.name > lesson.name]
    if later and f"**Next:** [Lesson {later[0].name[:2]}: " not in closing:
        problems.append(f"the closing cells have no '**Next:** [Lesson {later[0].name[:2]}: ...]' link")
    if later and f"]({later[0].name})" not in closing:
        problems.append(f"the closing cells do not link to {later[0].name}")
    for target in {t for m in markdown for t in LINK.findall(m) if not t.startswith(("http", "mailto"))}:
        if not (lesson.parent / target).exists():
            problems.append(f"a link to {target}, which does not exist")
    return problems


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_committed_lesson_reads_clean(lesson):
    assert reader_problems(nbformat.read(lesson, as_version=4)) == []


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_the_standard_structure(lesson):
    assert structure_problems(lesson) == []


def test_the_page_checks_catch_each_defect(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    bad = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("stream", name="stderr", text="step 1 loss 4.2\n"),
        new_output("execute_result", data={"text/plain": "<torch._C.Generator at 0x7f65bc1985f0>"}, execution_count=1),
        new_output("stream", name="stdout", text=" 12%|#  | 107/900 [00:05<00:40]\n"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                                         "text/plain": "VBox()"}),
    ])])
    assert len(reader_problems(bad)) == 4
    done = new_output("stream", name="stdout", text="900/900 [00:41]\n")
    finished = new_notebook(cells=[new_code_cell("x", outputs=[done])])
    assert reader_problems(finished) == []
    page = tmp_path / "notebooks" / "03_x.ipynb"
    page.parent.mkdir()
    cells = [new_markdown_cell("# 03 · X"), new_markdown_cell("see [here](nowhere.ipynb)")]
    nbformat.write(new_notebook(cells=cells), page)
    found = "\n".join(structure_problems(page))
    for words in ("# Lesson 03: Title", "Learning goals", "Summary", "nowhere.ipynb"):
        assert words in found
