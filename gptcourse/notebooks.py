"""Executing the course's notebooks top to bottom in a fresh kernel (`python -m gptcourse notebooks`).

The committed lessons and solutions are the output of this command. Widget state and timing metadata
are dropped so the files stay small and their diffs readable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

__all__ = ["execute_notebook", "clean_metadata", "course_notebooks", "error_outputs", "main"]

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "python3"


def course_notebooks(root: Path = ROOT) -> list[Path]:
    """Every lesson and solution notebook, in course order."""
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def clean_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop widget state and per-cell execution timestamps; keep outputs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
    return nb


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """One line per error output in the notebook ("cell N: Name: message")."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def execute_notebook(
    path: Path, out_path: Path | None = None, timeout: int = 900, cwd: Path | None = None,
    kernel_name: str = KERNEL,
) -> tuple[nbformat.NotebookNode, float]:
    """Run `path` top to bottom in a new kernel, stop at the first error, write the result to `out_path`.

    Returns the executed notebook and the seconds it took. The kernel starts in `cwd` (default: the
    notebook's own folder), so relative paths in a lesson work the same in JupyterLab and here.
    `kernel_name` picks another kernel (the Colab test runs one in a fresh environment).
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd or path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    clean_metadata(nb)
    if out_path is not None:
        nbformat.write(nb, out_path)
    return nb, seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse notebooks", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: lessons and solutions)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.paths or course_notebooks()
    failed = 0
    for path in paths:
        try:
            _, seconds = execute_notebook(path, out_path=path, timeout=args.timeout)
            print(f"{seconds:7.1f} s  {path}", flush=True)
        except Exception as err:  # report every notebook, then fail
            failed += 1
            last = str(err).strip().splitlines()[-1:] or [type(err).__name__]
            print(f"  FAILED  {path}: {last[0]}", file=sys.stderr, flush=True)
    return 1 if failed else 0
