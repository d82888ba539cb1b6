"""`python -m gptcourse grade [PATH ...]` and `python -m gptcourse progress`.

`grade` executes each exercise notebook on a copy, in a fresh kernel (the learner's file is only read),
collects every check's result through a JSON-lines file named in $GPTCOURSE_GRADE_LOG, prints a table per
notebook and a total, writes a JSON report, and exits 0 only when every check passes. `progress` shows
the latest grades of every exercise at a glance.
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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat

from .core import LOG_ENV, STATUSES

__all__ = ["grade_notebook", "grade_paths", "grade_main", "progress_main", "progress_lines", "CHECK_CALL"]

ROOT = Path(__file__).resolve().parent.parent.parent
CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([\w.]+)["']""")  # the checks a notebook calls, read from its source
CELL_TIMEOUT = 120  # seconds per cell; each check also has its own, shorter, limit inside the kernel


def progress_path() -> Path:
    """Where the latest grade of each exercise is kept: $GPTCOURSE_RUNS/grades/progress.json."""
    from ..env import runs_dir

    return runs_dir() / "grades" / "progress.json"


def _cell_error(cell: Any) -> str:
    """The error a cell ended with, as `Name: last line`, or ''."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = str(out.get("evalue", "")).strip().splitlines()
            return f"{out.get('ename')}: {lines[-1] if lines else ''}"[:300]
    return ""


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
    start = time.perf_counter()
    problem = ""
    with tempfile.TemporaryDirectory(prefix="gptcourse-grade-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copy(path, copy)
        log = Path(tmp) / "results.jsonl"
        log.touch()
        nb = nbformat.read(copy, as_version=4)
        env = {**os.environ, LOG_ENV: str(log)}  # only this kernel sees where to log
        try:
            client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
            client.execute(env=env, stderr=subprocess.DEVNULL)  # kernel start-up chatter stays out of the table
        except Exception as err:  # a dead kernel, a cell past its time: grade what ran
            problem = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[-1][:200]}"
        rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    seconds = time.perf_counter() - start
    got = {}
    for row in rows:  # the last result of each check counts (a learner may call a check twice)
        got[row["name"]] = row
    from .core import registry

    specs = registry()
    checks = []
    for name, cell_index in wanted.items():
        if name in got:
            checks.append(got[name])
            continue
        why = _cell_error(nb.cells[cell_index]) if cell_index < len(nb.cells) else ""
        status = "error"
        if why.startswith("NotImplementedError"):  # the stub raised in the same cell, before check() ran
            status, message = "todo", "not done yet: " + why.split(":", 1)[1].strip()
        elif why:
            message = f"the check's cell failed before checking: {why}"
        else:
            message = f"the check did not run ({problem or 'its cell was not reached'})"
        points = specs[name].points if name in specs else 0.0
        checks.append({"name": name, "status": status, "message": message, "points": 0.0, "max_points": points,
                       "seconds": 0.0, "seed": 0, "passed": False})
    for name, row in got.items():  # checks run some other way (a loop, a helper) still count
        if name not in {c["name"] for c in checks}:
            checks.append(row)
    return {
        "notebook": path.name,
        "path": str(path),
        "seconds": round(seconds, 2),
        "score": sum(c["points"] for c in checks),
        "max": sum(c["max_points"] for c in checks),
        "checks": checks,
        "problem": problem,
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_entry(entry: dict[str, Any]) -> None:
    print(f"\n{entry['notebook']}  ({entry['seconds']:.1f} s)")
    for c in entry["checks"]:
        pts = f"{c['points']:g}/{c['max_points']:g}"
        print(f"  {c['status'].upper():<7} {c['name']:<24} {pts:>5}  {_short(c['message'], 90)}")
    if not entry["checks"]:
        print("  (no check() calls found in this notebook)")
    if entry["problem"]:
        print(f"  note: {entry['problem']}")
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


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic


def _update_progress(report: dict[str, Any]) -> None:
    path = progress_path()
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        store = {}
    for entry in report["notebooks"]:
        store[entry["notebook"]] = {k: entry[k] for k in ("path", "score", "max", "checks", "graded_at")}
    _write_json(path, store)


def _exercise_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "exercises").glob("*.ipynb"))


def grade_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="exercise notebooks (default: all of exercises/)")
    parser.add_argument("--report", type=Path, help="where to write the JSON report "
                        "(default: $GPTCOURSE_RUNS/grades/report.json)")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT, help="seconds allowed per cell")
    parser.add_argument("--jobs", type=int, default=None, help="kernels at once (default: one per core, at most 4)")
    args = parser.parse_args(argv)
    paths = args.paths or _exercise_paths()
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        print(f"no such notebook: {missing[0]}", file=sys.stderr)
        return 2
    if not paths:
        print("no exercise notebooks found in exercises/", file=sys.stderr)
        return 2
    report = grade_paths(paths, args.cell_timeout, jobs=args.jobs)
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n)
    print(f"\nTOTAL {report['score']:g}/{report['max']:g}  ({counts or 'no checks'})  in {report['seconds']:.1f} s")
    report_path = args.report or progress_path().parent / "report.json"
    _write_json(report_path, report)
    _update_progress(report)
    print(f"report: {report_path}")
    return 0 if report["passed"] else 1


MARKS = {"pass": "✓", "fail": "✗", "todo": "·", "error": "!", "timeout": "⌛"}
ASCII_MARKS = {"pass": "+", "fail": "x", "todo": ".", "error": "!", "timeout": "T"}


def progress_lines(store: dict[str, Any], notebooks: list[Path], ascii_only: bool = False) -> list[str]:
    """One line per exercise notebook: a mark per check, the score, and whether it changed since grading."""
    marks = ASCII_MARKS if ascii_only else MARKS
    lines, total, best = [], 0.0, 0.0
    names = [p.name for p in notebooks] + sorted(set(store) - {p.name for p in notebooks})
    for name in names:
        entry = store.get(name)
        if entry is None:
            lines.append(f"  {name:<36} not graded yet")
            continue
        total += entry["score"]
        best += entry["max"]
        row = "".join(marks.get(c["status"], "?") for c in entry["checks"])
        note = ""
        path = Path(entry.get("path", ""))
        graded = dt.datetime.fromisoformat(entry["graded_at"]).timestamp()
        if path.is_file() and path.stat().st_mtime > graded + 1:
            note = "  (changed since graded)"
        todo = [c["name"] for c in entry["checks"] if c["status"] != "pass"]
        nxt = f"  next: {todo[0]}" if todo else "  done"
        lines.append(f"  {name:<36} {row:<6} {entry['score']:>3g}/{entry['max']:<3g}{nxt}{note}")
    legend = "  ".join(f"{m} {s}" for s, m in marks.items())
    lines.append(f"  total {total:g}/{best:g}    {legend}")
    return lines


def progress_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse progress",
                                     description="your standing across all exercises (from the latest grades)")
    parser.add_argument("--grade", action="store_true", help="grade every exercise first (about a minute)")
    parser.add_argument("--ascii", action="store_true", help="plain ASCII marks")
    args = parser.parse_args(argv)
    if args.grade:
        _update_progress(grade_paths(_exercise_paths(), quiet=True))
    path = progress_path()
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        store = {}
    encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    ascii_only = args.ascii or "utf" not in encoding
    print("Your progress (from `python -m gptcourse grade`; refresh with `python -m gptcourse progress --grade`):")
    for line in progress_lines(store, _exercise_paths(), ascii_only):
        print(line)
    return 0
