"""Slow down checkpoint saves in a subprocess, so that a test can kill it in the middle of one.

The package holds no test hooks: the test writes a `sitecustomize.py` into a folder of its own and puts
that folder on PYTHONPATH. Python imports sitecustomize at start-up in every process (torchrun's workers
too); this one makes `os.replace` wait before renaming a checkpoint's temporary file over the real one.
"""

from __future__ import annotations

import os
from pathlib import Path

from gptcourse.checkpoint import TEMP_PREFIX

SITECUSTOMIZE = """
import os
import time

_replace = os.replace


def _slow_replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(src)).startswith({prefix!r}):
        time.sleep({seconds!r})
    return _replace(src, dst, *args, **kwargs)


os.replace = _slow_replace
"""


def pause_saves(env: dict[str, str], folder: Path, seconds: float) -> dict[str, str]:
    """`env` for a subprocess whose checkpoint saves each pause `seconds` between writing and renaming."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(prefix=TEMP_PREFIX, seconds=seconds))
    path = [str(folder), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(path)}
