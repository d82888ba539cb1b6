"""The learner's machine: which device lessons use, and a self-check of the environment (`doctor`)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "pick_device", "mps_is_safe", "cpu_has_fast_bf16", "fast_mode", "runs_dir",
    "Check", "run_checks", "doctor", "REQUIREMENTS",
]

# MPS (Apple GPUs) trains these models correctly from this torch release on; older ones gave wrong
# gradients for some ops, so lessons use the CPU there.
MPS_MIN_TORCH = (2, 4)



def _installed_requirements() -> dict[str, str]:
    """The course's dependencies as the installed package declares them (pyproject.toml's `dependencies`):
    name -> oldest version allowed ("0" where none is named). Empty when gptcourse is not installed."""
    try:
        declared = importlib.metadata.requires("gptcourse") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    found = {}
    for requirement in declared:
        spec, _, marker = requirement.partition(";")
        if "extra" in marker:  # optional extras (the test tools) are not the course's requirements
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group()
        minimum = re.search(r">=\s*([\w.]+)", spec)
        found[name] = minimum.group(1) if minimum else "0"
    return found


# The packages the course needs, and the oldest version known to work: read from the installed package's
# metadata, so this list cannot drift from pyproject.toml.
REQUIREMENTS = _installed_requirements()


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = []
    for piece in v.split("+")[0].split("."):
        digits = re.match(r"\d*", piece).group()  # "0rc1" -> "0"
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def mps_is_safe() -> bool:
    """True where an Apple GPU is present and the installed torch trains correctly on it."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available() and _version_tuple(torch.__version__) >= MPS_MIN_TORCH)


def _mps_refusal() -> str:
    """Why device 'mps' is refused here, and what to do instead."""
    mps = getattr(torch.backends, "mps", None)
    if not (mps and mps.is_available()):
        return "device 'mps' was asked for, but PyTorch sees no Apple GPU here: use --device cpu (or auto)"
    need = ".".join(map(str, MPS_MIN_TORCH))
    return (f"device 'mps' was asked for, but PyTorch {torch.__version__} trains incorrectly on Apple GPUs (some "
            f"gradients come out wrong before {need}): upgrade with `pip install -U 'torch>={need}'`, "
            "or use --device cpu")


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): there bf16 matmuls run
    about twice as fast as float32 ones (measured in BENCHMARKS.md); elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: be conservative
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(prefer: str | None = None) -> torch.device:
    """The device a lesson should use: `prefer` if given (and present), else cuda, then safe mps, else cpu.

    The environment variable GPTCOURSE_DEVICE overrides the choice (e.g. to force the CPU).
    """
    prefer = prefer or os.environ.get("GPTCOURSE_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here")
        if device.type == "mps" and not mps_is_safe():
            raise ValueError(_mps_refusal())
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_is_safe():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'OK  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return text if self.ok else f"{text}\n      -> {self.fix}"


def _check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, platform.python_version(), "install Python 3.10 or newer (3.11 is tested)")


def _check_package(name: str, minimum: str) -> Check:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return Check(name, False, "not installed", "run `make lab` (or `pip install -e .`) in the course folder")
    ok = _version_tuple(version) >= _version_tuple(minimum)
    return Check(name, ok, version, f"upgrade: pip install '{name}>={minimum}'")


def _check_device() -> Check:
    device = pick_device()
    if device.type == "cuda":
        detail = f"cuda ({torch.cuda.get_device_name(0)}): lessons train on the GPU with bf16"
    elif device.type == "mps":
        detail = "mps (Apple GPU)"
    else:
        detail = f"cpu ({torch.get_num_threads()} threads): every lesson runs; training uses the CPU presets"
    return Check("device", True, detail)


def _check_tokenizer() -> Check:
    try:
        from .tokenizers import gpt2_encoding

        ids = gpt2_encoding().encode("Why is the sky blue?")
    except Exception as err:  # any failure here is what the learner needs to see
        return Check("gpt2 tokenizer", False, f"{type(err).__name__}: {err}", "reinstall the course: pip install -e .")
    ok = ids == [5195, 318, 262, 6766, 4171, 30]
    return Check("gpt2 tokenizer", ok, "offline, from the bundled ranks" if ok else f"wrong ids {ids}",
                 "the bundled ranks file is damaged: reinstall the course")


def _check_dataset() -> Check:
    try:
        from . import data
    except ImportError as err:
        return Check("dataset", False, f"gptcourse.data failed to import: {err}", "reinstall the course")
    where = data.find_shakespeare()
    if where is not None:
        return Check("dataset", True, f"Tiny Shakespeare at {where}")
    return Check("dataset", False, "Tiny Shakespeare is not cached yet",
                 "lesson 08 downloads it on first use; offline, set GPTCOURSE_DATA_DIR to a folder "
                 "holding tinyshakespeare.txt")


def run_checks() -> list[Check]:
    checks = [_check_python()]
    if not REQUIREMENTS:
        checks.append(Check("gptcourse", False, "not installed, so its requirements are unknown",
                            "run `make lab` (or `pip install -e .`) in the course folder"))
    checks += [_check_package(name, minimum) for name, minimum in REQUIREMENTS.items()]
    checks += [_check_device(), _check_tokenizer(), _check_dataset()]
    return checks


def doctor() -> int:
    """Print one OK / FAIL line per requirement; return 0 when all are OK (the shell's exit code)."""
    checks = run_checks()
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"\n{len(checks) - failed} OK, {failed} FAIL")
    return 1 if failed else 0


def doctor_main(argv: list[str]) -> int:
    if argv:
        print("usage: python -m gptcourse doctor  (takes no arguments)", file=sys.stderr)
        return 2
    return doctor()


def fast_mode() -> bool:
    """True when GPTCOURSE_FAST=1: lessons shrink loop counts and sizes (the test suite's setting)."""
    return os.environ.get("GPTCOURSE_FAST", "0") not in ("", "0", "false", "False")


def runs_dir() -> Path:
    """Where training runs and checkpoints go: $GPTCOURSE_RUNS if set; else `runs/` at the course's root when
    the package runs from a checkout of the course (an editable install); else, for a regular install, a
    user data folder: $XDG_DATA_HOME/gptcourse/runs, by default ~/.local/share/gptcourse/runs.

    Lesson 08 saves its model there and lessons 09-12 look for it there.
    """
    if os.environ.get("GPTCOURSE_RUNS"):
        return Path(os.environ["GPTCOURSE_RUNS"])
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root / "runs"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "gptcourse" / "runs"
