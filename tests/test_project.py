"""The repository's promises: layout, and the same dependencies for pip and conda."""

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda's name -> pip's


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_layout():
    for name in ("notebooks", "exercises", "solutions", "gptcourse", "tests", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip_names = {_name(d) for d in deps}
    conda_names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z][\w.-]*)", line)  # top-level conda dependencies only
        if m and m.group(1) not in ("python", "pip"):
            name = _name(m.group(1))
            conda_names.add(CONDA_NAMES.get(name, name))
    assert conda_names == pip_names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_importing_does_nothing_visible():
    code = ("import gptcourse, gptcourse.sampling, gptcourse.gpt2, gptcourse.env, gptcourse.data, gptcourse.train, "
            "gptcourse.trained, gptcourse.train_cli, gptcourse.widgets.snapshot")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "" and out.stderr == ""


def test_cli_doctor_runs():
    out = subprocess.run([sys.executable, "-m", "gptcourse", "doctor"], capture_output=True, text=True)
    assert "OK    python" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "gptcourse", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'fly'" in bad.stderr
