"""Single source: `python -m gptcourse exercises` writes exercises/ from solutions/.

In a solution notebook's code cells, a region

        ### BEGIN SOLUTION: one line telling the learner what to write
        ...the worked answer...
        ### END SOLUTION

becomes, in the exercise, `raise NotImplementedError("one line telling the learner what to write")` at the
region's indentation. Outputs and execution counts are dropped. A learner's executed exercise notebook is
never overwritten (pass --force to replace it; the old file is kept beside it as .bak).
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "strip_solutions", "exercise_notebook", "expected", "main"]

ROOT = Path(__file__).resolve().parent.parent.parent
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?::\s*(?P<text>.*?))?\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
DEFAULT_INSTRUCTION = "your code here"


class SolutionMarkerError(ValueError):
    """A solution region that is not closed, nested, or an END without a BEGIN."""


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every marked solution region in one cell's source with a NotImplementedError stub."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise SolutionMarkerError(f"{where}, line {number}: BEGIN SOLUTION inside another region")
            inside = True
            text = (begin.group("text") or DEFAULT_INSTRUCTION).replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'{begin.group("indent")}raise NotImplementedError("{text}")')
        elif end:
            if not inside:
                raise SolutionMarkerError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: BEGIN SOLUTION is never closed by ### END SOLUTION")
    return "\n".join(out)


def exercise_notebook(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solution notebook: regions stubbed, no outputs, no execution counts."""
    nb = copy.deepcopy(solution)
    regions = 0
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        if cell.cell_type != "code":
            continue
        regions += sum(1 for line in cell.source.split("\n") if BEGIN.match(line))
        cell.source = strip_solutions(cell.source, f"{name}, cell {i}")
        cell.outputs = []
        cell.execution_count = None
    if not regions:
        raise SolutionMarkerError(f"{name}: no ### BEGIN SOLUTION region; nothing for the learner to write")
    nb.metadata.pop("widgets", None)
    return nb


def expected(root: Path = ROOT) -> dict[Path, str]:
    """Every exercise file's text as the generator would write it, keyed by its path."""
    files = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        nb = exercise_notebook(nbformat.read(path, as_version=4), path.name)
        files[root / "exercises" / path.name] = nbformat.writes(nb) + "\n"
    return files


def _has_learner_work(path: Path) -> bool:
    """An exercise with outputs or execution counts has been run by someone: it is their work."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return True  # unreadable: do not guess, do not overwrite
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    parser.add_argument("--force", action="store_true", help="also replace exercises that have outputs (keeps .bak)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        files = expected(args.root)
    except SolutionMarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not files:
        print(f"no solution notebooks in {args.root / 'solutions'}", file=sys.stderr)
        return 2
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(args.root)} (run `python -m gptcourse exercises`)")
        return 1 if stale else 0
    refused = 0
    for path in stale:
        if path.is_file() and _has_learner_work(path):
            if not args.force:
                print(f"kept {path.relative_to(args.root)}: it has outputs (your work?); --force replaces it "
                      "and keeps a .bak copy", file=sys.stderr)
                refused += 1
                continue
            shutil.copy2(path, path.with_suffix(".ipynb.bak"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".ipynb.tmp")
        tmp.write_text(files[path], encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves half a notebook
        print(f"wrote {path.relative_to(args.root)}")
    print(f"{len(files) - len(stale)} up to date, {len(stale) - refused} written, {refused} kept")
    return 1 if refused else 0
