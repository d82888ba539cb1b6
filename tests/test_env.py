import pytest
import torch

from gptcourse import env


def test_pick_device_on_cpu(monkeypatch):
    monkeypatch.delenv("GPTCOURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if env.mps_is_safe() else "cpu")
    assert env.pick_device().type == expected
    assert env.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            env.pick_device("cuda")


def test_version_parsing():
    assert env._version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert env._version_tuple("4.0.0rc1") == (4, 0, 0)


def test_doctor_lines(capsys, monkeypatch):
    code = env.doctor()
    out = capsys.readouterr().out
    assert "OK    torch:" in out and "gpt2 tokenizer: offline" in out
    assert code == (1 if "FAIL" in out.split("\n\n")[0] else 0)


def test_doctor_reports_a_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPTCOURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    assert env.doctor() == 1
    out = capsys.readouterr().out
    assert "FAIL  dataset" in out and "GPTCOURSE_DATA_DIR" in out


def test_cpu_bf16_detection_reads_the_flags(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx2 avx512f avx512_bf16", True), ("fpu avx2 amx_bf16", True), ("fpu avx2", False)):
        fake = tmp_path / "cpuinfo"
        fake.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        def fake_open(path, *args, _f=fake, **kwargs):
            return real_open(_f if path == "/proc/cpuinfo" else path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        assert env.cpu_has_fast_bf16() is expected


def test_requirements_are_pyprojects_dependencies():
    """The doctor checks what pyproject.toml declares (as installed), so the two cannot drift apart."""
    import re

    import tomllib

    from .conftest import ROOT

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {re.match(r"[\w.-]+", d).group(): re.search(r">=([\w.]+)", d).group(1) for d in declared}
    assert env.REQUIREMENTS == expected
    assert {"ipykernel", "huggingface_hub", "torch"} <= set(env.REQUIREMENTS)
    assert "pytest" not in env.REQUIREMENTS  # the test extra is not the course's requirement


def test_runs_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("GPTCOURSE_RUNS", raising=False)
    from .conftest import ROOT

    assert env.runs_dir() == ROOT / "runs"  # a checkout of the course: its own runs/
    installed = tmp_path / "site-packages" / "gptcourse" / "env.py"  # a regular install: no course beside it
    monkeypatch.setattr(env, "__file__", str(installed))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert env.runs_dir() == tmp_path / "data" / "gptcourse" / "runs"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert env.runs_dir() == tmp_path / "home" / ".local" / "share" / "gptcourse" / "runs"
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "mine"))
    assert env.runs_dir() == tmp_path / "mine"  # the variable wins everywhere
