"""Grades kept beside the learner's work, and `python -m gptcourse progress [FOLDER]`.

`grade` keeps two files in a `.grades/` folder next to the notebooks it graded: `report.json`, the latest
run on that folder, and `progress.json`, the latest grade of every notebook, keyed by lesson (the file
name's prefix before the first underscore: "03", "08b", "12") and path. So a copy named
`09_first_attempt.ipynb` counts for lesson 09, and grading `solutions/` never counts as the learner's work
in `exercises/`. `progress` shows one row per lesson: the latest graded file of that lesson, its marks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["GRADES", "default_folder", "lesson_key", "grades_file", "read_store", "record", "progress_lines",
           "progress_main"]

ROOT = Path(__file__).resolve().parent.parent.parent
GRADES = ".grades"  # the folder beside the graded notebooks
MARKS = {"pass": "✓", "fail": "✗", "todo": "·", "error": "!", "timeout": "⌛"}
ASCII_MARKS = {"pass": "+", "fail": "x", "todo": ".", "error": "!", "timeout": "T"}


def default_folder() -> Path:
    """The learner's exercises: ./exercises where the command runs, else the course's own exercises/."""
    here = Path.cwd() / "exercises"
    return here if here.is_dir() else ROOT / "exercises"


def lesson_key(path: Path | str) -> str:
    """'03' for 03_masked_self_attention.ipynb, '08b' for 08b_capstone_your_gpt.ipynb; the stem without '_'."""
    return Path(path).stem.split("_", 1)[0]


def grades_file(folder: Path, name: str = "progress.json") -> Path:
    return Path(folder) / GRADES / name


def read_store(folder: Path) -> dict[str, dict[str, Any]]:
    """lesson -> {path: entry} from the folder's progress file ({} when there is none or it is unreadable)."""
    try:
        store = json.loads(grades_file(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    lessons = store.get("lessons") if isinstance(store, dict) else None
    return lessons if isinstance(lessons, dict) else {}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# grades of this folder's notebooks, written by `python -m gptcourse grade`\n*\n")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic


def record(report: dict[str, Any], extra: Path | None = None) -> list[tuple[Path, str]]:
    """Keep the report beside the notebooks it graded (one `.grades/` per folder); return (path, what it holds)."""
    folders: dict[Path, list[dict[str, Any]]] = {}
    for entry in report["notebooks"]:
        folders.setdefault(Path(entry["path"]).parent, []).append(entry)
    written = []
    for folder, entries in folders.items():
        part = {**report, "notebooks": entries, "score": sum(e["score"] for e in entries),
                "max": sum(e["max"] for e in entries)}
        store = read_store(folder)
        for e in entries:
            store.setdefault(e["lesson"], {})[e["path"]] = {k: e[k] for k in ("notebook", "path", "lesson", "score",
                                                                            "max", "checks", "graded_at")}
        try:
            _write_json(grades_file(folder, "report.json"), part)
            _write_json(grades_file(folder), {"lessons": store})
        except OSError as err:
            print(f"could not keep the grades in {folder}: {err}", file=sys.stderr)
            continue
        written.append((grades_file(folder, "report.json"), _holds(entries)))
    if extra is not None:
        _write_json(Path(extra), report)
        written.append((Path(extra), _holds(report["notebooks"])))
    return written


def _holds(entries: list[dict[str, Any]]) -> str:
    names = [e["notebook"] for e in entries]
    return f"{len(names)} notebook{'s' if len(names) != 1 else ''}: " + ", ".join(names)


def progress_lines(store: dict[str, dict[str, Any]], notebooks: list[Path], ascii_only: bool = False) -> list[str]:
    """One line per lesson: its latest graded file, a mark per check, the score, what to do next."""
    marks = ASCII_MARKS if ascii_only else MARKS
    names: dict[str, str] = {}
    for p in sorted(notebooks):
        names.setdefault(lesson_key(p), p.name)  # a lesson's first file names its row until one is graded
    lines, total, best = [], 0.0, 0.0
    for key in sorted(set(names) | set(store)):
        graded = list(store.get(key, {}).values())
        if not graded:
            lines.append(f"  {key:<4} {names[key]:<36} not graded yet")
            continue
        entry = max(graded, key=lambda e: e.get("graded_at", ""))
        total += entry["score"]
        best += entry["max"]
        row = "".join(marks.get(c["status"], "?") for c in entry["checks"])
        todo = [c["name"] for c in entry["checks"] if c["status"] != "pass"]
        note = f"  next: {todo[0]}" if todo else "  done"
        path = Path(entry.get("path", ""))
        if path.is_file() and path.stat().st_mtime > dt.datetime.fromisoformat(entry["graded_at"]).timestamp() + 1:
            note += "  (changed since graded)"
        if len(graded) > 1:
            note += f"  (latest of {len(graded)} graded files)"
        lines.append(f"  {key:<4} {entry['notebook']:<36} {row:<6} {entry['score']:>3g}/{entry['max']:<3g}{note}")
    legend = "  ".join(f"{m} {s}" for s, m in marks.items())
    lines.append(f"  total {total:g}/{best:g}    {legend}")
    return lines


def progress_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptcourse progress",
                                     description="your standing across the exercises, from their latest grades")
    parser.add_argument("folder", nargs="?", type=Path, default=None,
                        help="the folder of your exercise notebooks (default: exercises/)")
    parser.add_argument("--grade", action="store_true", help="grade every notebook in the folder first")
    parser.add_argument("--ascii", action="store_true", help="plain ASCII marks")
    args = parser.parse_args(argv)
    folder = args.folder or default_folder()
    if not folder.is_dir():
        print(f"no such folder: {folder}", file=sys.stderr)
        return 2
    notebooks = sorted(folder.glob("*.ipynb"))
    if args.grade:
        from .cli import grade_paths

        record(grade_paths(notebooks, quiet=True))
    encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    print(f"Your progress in {folder} (grades kept in {grades_file(folder)}; "
          "refresh with `python -m gptcourse progress --grade`):")
    for line in progress_lines(read_store(folder), notebooks, args.ascii or "utf" not in encoding):
        print(line)
    return 0
