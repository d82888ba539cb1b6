"""Every lesson and exercise opens in Colab: its first cell installs the course where it is missing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import venv

import nbformat
import pytest
import torch

from gptcourse import colab
from gptcourse.notebooks import error_outputs, execute_notebook

from .conftest import ROOT

PAGES = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("exercises/*.ipynb")) + sorted(
    ROOT.glob("solutions/*.ipynb"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_lesson_exercise_and_solution_opens_with_the_install_cell(page):
    assert colab.has_install_cell(nbformat.read(page, as_version=4)), "run `python -m gptcourse colab`"


def test_the_cell_does_nothing_where_the_course_is_installed(monkeypatch, capsys):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"the install cell ran {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    exec(compile(colab.INSTALL_CELL, "install cell", "exec"), {})
    assert capsys.readouterr().out == ""


def test_the_command_inserts_the_cell_once_and_replaces_an_old_version(tmp_path):
    for folder in ("notebooks", "solutions"):
        (tmp_path / folder).mkdir()
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lesson")]),
                       tmp_path / folder / "01_x.ipynb")
    assert colab.main(["--root", str(tmp_path), "--check"]) == 1
    assert colab.main(["--root", str(tmp_path)]) == 0
    assert colab.main(["--root", str(tmp_path), "--check"]) == 0
    path = tmp_path / "notebooks" / "01_x.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert [c.cell_type for c in nb.cells] == ["code", "markdown"]

    nb.cells[0].source = colab.FIRST_LINE + "\nprint('an older install cell')"
    old_id = nb.cells[0].id
    nbformat.write(nb, path)
    assert colab.main(["--root", str(tmp_path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert len(nb.cells) == 2 and nb.cells[0].source == colab.INSTALL_CELL and nb.cells[0].id == old_id


def test_the_readme_opens_every_lesson_and_exercise_in_colab():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\((https://colab\.research\.google\.com/[^)\s]+)\)", readme))
    wanted = {colab.colab_url(p.relative_to(ROOT).as_posix()) for p in PAGES if p.parent.name != "solutions"}
    assert linked == wanted


def _fresh_environment(path):
    """A Python like Colab's before the course: PyTorch, NumPy and a Jupyter kernel, no gptcourse."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    torch_version = torch.__version__.split("+")[0]  # the build installed here (the CPU one in CI)
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"torch=={torch_version}", "numpy",
                    "ipykernel"], check=True)
    # Away from the checkout, whose gptcourse/ folder Python would find in the current directory.
    missing = subprocess.run([python, "-c", "import gptcourse"], cwd=path, capture_output=True, text=True)
    assert "No module named 'gptcourse'" in missing.stderr
    return python


@pytest.mark.slow
def test_lesson_00_installs_the_course_in_a_fresh_environment(tmp_path, monkeypatch):
    # A local copy of the repository stands in for GitHub: the cell installs from GPTCOURSE_SOURCE.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    copy = tmp_path / "course"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    python = _fresh_environment(tmp_path / "venv")

    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "fresh", "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GPTCOURSE_SOURCE", str(copy))
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))

    lesson = copy / "notebooks" / "00_setup.ipynb"
    nb, _ = execute_notebook(lesson, kernel_name="fresh", cwd=tmp_path, timeout=600)
    assert error_outputs(nb) == []
    assert nb.cells[0].outputs[0].text == f"installed the course from {copy}\n"
    doctor = next(c for c in nb.cells if c.cell_type == "code" and "doctor" in c.source)
    assert "exit code: 0" in doctor.outputs[-1].text

    where = subprocess.run([python, "-c", "import gptcourse; print(gptcourse.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "venv")), "the course was not installed into the fresh environment"
