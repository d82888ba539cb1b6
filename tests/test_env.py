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
