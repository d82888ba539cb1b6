"""The command line: `python -m gptcourse COMMAND`. Each command lives in its own module, imported lazily."""

from __future__ import annotations

import importlib
import sys

# command -> (module, function taking the remaining argv and returning an exit code, one-line help)
COMMANDS = {
    "doctor": ("gptcourse.env", "doctor_main", "check the environment: one OK / FAIL line per requirement"),
    "notebooks": ("gptcourse.notebooks", "main", "execute lesson/solution notebooks and save their outputs"),
    "train": ("gptcourse.train_cli", "train_main", "train a GPT: --preset NAME, --FIELD VALUE overrides, --resume"),
    "sample": ("gptcourse.train_cli", "sample_main", "write text with a trained checkpoint"),
    "bench": ("gptcourse.bench", "main", "measure training speed and loss against time, as JSON"),
    "grade": ("gptcourse.grading.cli", "grade_main", "grade exercise notebooks in a fresh kernel (default: all)"),
    "progress": ("gptcourse.grading.cli", "progress_main", "your standing across all exercises"),
    "exercises": ("gptcourse.grading.generate", "main", "regenerate exercises/ from solutions/"),
    "colab": ("gptcourse.colab", "main", "write the Colab install cell first in every lesson and solution"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m gptcourse COMMAND [ARGS...]\n\ncommands:")
        for name, (_, _, text) in COMMANDS.items():
            print(f"  {name:<11} {text}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)
