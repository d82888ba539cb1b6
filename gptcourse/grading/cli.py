"""`python -m gptcourse grade [PATH ...]`: grade exercise notebooks (or folders of them) in fresh kernels.

Each notebook runs on a copy, in a fresh kernel (the learner's file is only read). The grader's own first
cell takes over the results file before any of the learner's cells run, so they cannot find it to add
rows; and the table counts only registered checks, with the registry's points, whatever a row says. It
prints a table per notebook (every hint in full) and a total, keeps the report beside the notebooks (in
`.grades/` in their folder, where `python -m gptcourse progress` reads it), and exits 0 only when every
check passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell

from .core import LOG_ENV, STATUSES, CheckSpec, registry
from .progress import default_folder, lesson_key, progress_main, record

__all__ = ["grade_notebook", "grade_paths", "grade_main", "progress_main", "collect", "notebook_paths",
           "print_entry", "CHECK_CALL"]

CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([\w.]+)["']""")  # the checks a notebook calls, read from its source
CELL_TIMEOUT = 120  # seconds per cell; each check also has its own, shorter, limit inside the kernel
CLAIM = "from gptcourse.grading.core import claim_log as _claim_log\n_claim_log()\ndel _claim_log"
# Code that reaches into the grader or the interpreter's stack: flagged in the report for a teacher to read.
TAMPERING = ("GPTCOURSE_GRADE_LOG", "claim_log", "_getframe", "f_locals", "f_back", "gc.get_objects",
             "gc.get_referrers", "inspect.stack", "inspect.currentframe", "grading.core", "grading.tools",
             "grading.isolation", "grading.lessons", "/proc/self")


def _cell_error(cell: Any) -> str:
    """The error a cell ended with, as `Name: last line`, or ''."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = str(out.get("evalue", "")).strip().splitlines()
            return f"{out.get('ename')}: {lines[-1] if lines else ''}"[:300]
    return ""


def _lesson_number(key: str) -> int | None:
    digits = re.match(r"\d+", key)
    return int(digits.group()) if digits else None


def _number(value: Any, kind: type = float) -> Any:
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else kind(0)


def collect(rows: list[Any], wanted: dict[str, int], lesson: int | None, specs: dict[str, CheckSpec],
            cell_error: Callable[[int], str], problem: str) -> list[dict[str, Any]]:
    """The graded checks of one notebook, from the rows its kernel wrote.

    Only registered names count, with the registry's points: a row's own points and maximum are never
    read. The checks are the ones the notebook calls by name, then any other check of its lesson that ran
    (in a loop, say); the last row of a check counts. A check that wrote no row gets its cell's error.
    """
    got: dict[str, dict[str, Any]] = {}
    for row in rows:
        if isinstance(row, dict) and row.get("name") in specs and row.get("status") in STATUSES:
            got[row["name"]] = row
    names = list(wanted) + [n for n in specs if n in got and n not in wanted and specs[n].lesson == lesson]
    checks = []
    for name in names:
        best = specs[name].points if name in specs else 0.0
        row = got.get(name)
        if row is not None:
            status, message = row["status"], str(row.get("message", ""))[:2000]
        else:
            why = cell_error(wanted[name])
            status = "error"
            if why.startswith("NotImplementedError"):  # the stub raised in the same cell, before check() ran
                status, message = "todo", "not done yet: " + why.split(":", 1)[1].strip()
            elif why:
                message = f"the check's cell failed before checking: {why}"
            else:
                message = f"the check did not run ({problem or 'its cell was not reached'})"
        checks.append({"name": name, "status": status, "message": message,
                       "points": best if status == "pass" else 0.0, "max_points": best,
                       "seconds": _number(row.get("seconds") if row else 0), "seed": _number(
                           row.get("seed") if row else 0, int), "passed": status == "pass"})
    return checks


def _tampering(nb: Any) -> list[str]:
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return [marker for marker in TAMPERING if marker in code]


def grade_notebook(path: Path, cell_timeout: int = CELL_TIMEOUT) -> dict[str, Any]:
    """Execute a copy of `path` in a fresh kernel and return its graded entry (never writes `path`)."""
    from nbclient import NotebookClient

    path = Path(path).resolve()
    source = nbformat.read(path, as_version=4)
    wanted: dict[str, int] = {}  # check name -> the cell that calls it, in the order the notebook calls them
    for i, cell in enumerate(source.cells):
        if cell.cell_type == "code":
            for name in CHECK_CALL.findall(cell.source):
                wanted.setdefault(name, i)
    # a check with a longer limit than a cell's (the capstone trains two models) gets its own limit and a minute
    cell_timeout = max([cell_timeout] + [int(spec.timeout) + 60 for n, spec in registry().items() if n in wanted])
    start = time.perf_counter()
    problem = ""
    with tempfile.TemporaryDirectory(prefix="gptcourse-grade-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copy(path, copy)
        log = Path(tmp) / "results.jsonl"
        log.touch()
        nb = nbformat.read(copy, as_version=4)
        nb.cells.insert(0, new_code_cell(CLAIM))  # runs before the learner's cells: see core.claim_log
        env = {**os.environ, LOG_ENV: str(log)}  # only this kernel sees where to log
        with open(log, encoding="utf-8") as results:  # our own handle: the kernel removes the file's name
            try:
                client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                                        resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
                client.execute(env=env, stderr=subprocess.DEVNULL)  # kernel start-up chatter stays out
            except Exception as err:  # a dead kernel, a cell past its time: grade what ran
                problem = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[-1][:200]}"
            rows = []
            for line in results.read().splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    checks = collect(rows, wanted, _lesson_number(lesson_key(path)), registry(),
                     lambda i: _cell_error(nb.cells[i + 1]) if i + 1 < len(nb.cells) else "", problem)
    return {
        "notebook": path.name,
        "path": str(path),
        "lesson": lesson_key(path),
        "seconds": round(time.perf_counter() - start, 2),
        "score": sum(c["points"] for c in checks),
        "max": sum(c["max_points"] for c in checks),
        "checks": checks,
        "problem": problem,
        "tampering": _tampering(source),
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def print_entry(entry: dict[str, Any], width: int | None = None) -> None:
    """The notebook's table: one row per check; the whole message, wrapped under the row, never cut."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    print(f"\n{entry['notebook']}  ({entry['seconds']:.1f} s)")
    for c in entry["checks"]:
        head = f"  {c['status'].upper():<7} {c['name']:<24} {c['points']:g}/{c['max_points']:g}".ljust(42)
        lines = textwrap.wrap(c["message"], width=max(40, width - len(head) - 1)) or [""]
        print(f"{head} {lines[0]}")
        for line in lines[1:]:
            print(" " * (len(head) + 1) + line)
    if not entry["checks"]:
        print("  (no check() calls found in this notebook)")
    if entry["problem"]:
        print(f"  note: {entry['problem']}")
    if entry.get("tampering"):
        print(f"  note: its code reaches into the grader or the interpreter ({', '.join(entry['tampering'])}): "
              "read it before trusting this score")
    print(f"  score {entry['score']:g}/{entry['max']:g}")


def default_jobs() -> int:
    """Kernels to run at once: one per core, at most 4 (a kernel spends much of its start-up waiting)."""
    return max(1, min(4, os.cpu_count() or 1))


def grade_paths(paths: list[Path], cell_timeout: int = CELL_TIMEOUT, quiet: bool = False,
                jobs: int | None = None) -> dict[str, Any]:
    """Grade the notebooks, `jobs` kernels at a time; the report holds every entry (in order) and the totals."""
    jobs = max(1, min(jobs or default_jobs(), len(paths) or 1))
    if jobs == 1:
        entries = [grade_notebook(p, cell_timeout) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            entries = list(pool.map(lambda p: grade_notebook(p, cell_timeout), paths))
    if not quiet:
        for entry in entries:
            print_entry(entry)
    counts = {s: sum(c["status"] == s for e in entries for c in e["checks"]) for s in STATUSES}
    total = sum(e["score"] for e in entries)
    best = sum(e["max"] for e in entries)
    return {
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "notebooks": entries,
        "score": total,
        "max": best,
        "counts": counts,
        "passed": bool(entries) and best > 0 and total == best and all(e["checks"] for e in entries),
        "seconds": round(sum(e["seconds"] for e in entries), 2),
    }


def notebook_paths(paths: list[Path]) -> list[Path]:
    """The notebooks to grade: files as given, folders as the notebooks directly inside them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.ipynb")) if p.is_dir() else [p])
    return out


def grade_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path,
                        help="exercise notebooks or folders of them (default: every notebook in exercises/)")
    parser.add_argument("--report", type=Path, help="also write the whole JSON report here")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT, help="seconds allowed per cell")
    parser.add_argument("--jobs", type=int, default=None, help="kernels at once (default: one per core, at most 4)")
    args = parser.parse_args(argv)
    given = args.paths or [default_folder()]
    missing = [p for p in given if not p.exists() or (p.is_file() and p.suffix != ".ipynb")]
    if missing:
        print(f"no such notebook or folder: {missing[0]}", file=sys.stderr)
        return 2
    paths = notebook_paths(given)
    if not paths:
        print(f"no notebooks found in {', '.join(map(str, given))}", file=sys.stderr)
        return 2
    report = grade_paths(paths, args.cell_timeout, jobs=args.jobs)
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n)
    print(f"\nTOTAL {report['score']:g}/{report['max']:g}  ({counts or 'no checks'})  in {report['seconds']:.1f} s")
    for where, held in record(report, args.report):
        print(f"report: {where} ({held})")
    return 0 if report["passed"] else 1
