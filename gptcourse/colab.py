"""Every lesson and exercise opens in Colab: the first cell installs the course where it is missing.

Colab (or any fresh Python) opens one notebook with no `gptcourse` beside it. The install cell below is
the first cell of every lesson and solution (exercises inherit it from their solution); where the course
is installed it does nothing and prints nothing, so the saved pages are unchanged by it.
`python -m gptcourse colab` writes it into the notebooks; `--check` reports the ones out of date.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

from gptcourse.notebooks import ROOT, course_notebooks

__all__ = ["COURSE_REPOSITORY", "INSTALL_CELL", "colab_url", "has_install_cell", "with_install_cell", "main"]

# Where the course is published. A fork changes this line, runs `python -m gptcourse colab`, and updates
# the links in the README (a test checks them against this value).
COURSE_REPOSITORY = "https://github.com/gptcourse/gptcourse"

# The first line identifies the cell, so that a changed cell replaces the old one instead of stacking.
INSTALL_CELL = f'''\
# Opened in Colab, or in a Python without the course? This cell installs it first; where the course is
# installed it does nothing. GPTCOURSE_SOURCE may name another copy: a folder or a pip URL.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("gptcourse") is None:
    source = os.environ.get("GPTCOURSE_SOURCE", "git+{COURSE_REPOSITORY}")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"installing the course from {{source}} failed:\\n{{pip.stderr[-2000:]}}")
    importlib.invalidate_caches()
    print("installed the course from", source)'''

FIRST_LINE = INSTALL_CELL.splitlines()[0]


def colab_url(relative_path: str) -> str:
    """The address that opens a notebook of the course's repository in Colab."""
    owner_repo = COURSE_REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/{relative_path}"


def has_install_cell(nb: nbformat.NotebookNode) -> bool:
    """True when the notebook's first cell is the current install cell."""
    return bool(nb.cells) and nb.cells[0].cell_type == "code" and nb.cells[0].source == INSTALL_CELL


def with_install_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with the current install cell first (an older version of it is replaced)."""
    cell = nbformat.v4.new_code_cell(INSTALL_CELL)  # nbformat 4.5: a fresh cell id
    if nb.cells and nb.cells[0].cell_type == "code" and nb.cells[0].source.startswith(FIRST_LINE):
        cell.id = nb.cells[0].get("id", cell.id)  # the same cell, changed: keep its id
        nb.cells[0] = cell
    else:
        nb.cells.insert(0, cell)
    return nb


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse colab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook lacks the cell")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    notebooks = {p: nbformat.read(p, as_version=4) for p in course_notebooks(args.root)}
    stale = [p for p, nb in notebooks.items() if not has_install_cell(nb)]
    for path in stale:
        if args.check:
            print(f"out of date: {path.relative_to(args.root)} (run `python -m gptcourse colab`)")
        else:
            nbformat.write(with_install_cell(notebooks[path]), path)
            print(f"wrote the install cell into {path.relative_to(args.root)}")
    if stale and not args.check:
        print("now run `python -m gptcourse exercises` and re-execute the notebooks (`make notebooks`)")
    return 1 if stale and args.check else 0
