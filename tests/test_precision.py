"""gptcourse.precision: which number format a run computes in, and float16's loss scaler."""

from __future__ import annotations

import pytest
import torch

from gptcourse import precision


def test_named_dtypes_are_taken_as_given():
    cpu = torch.device("cpu")
    assert precision.resolve_dtype("float32", cpu) == torch.float32
    assert precision.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert precision.resolve_dtype("float16", cpu) == torch.float16


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_auto_on_the_cpu_uses_bf16_only_where_it_is_native(monkeypatch, fast_bf16):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: fast_bf16)
    expected = torch.bfloat16 if fast_bf16 else torch.float32
    assert precision.resolve_dtype("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize("capability, expected", [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16),
                                                    ((7, 5), torch.float16), ((6, 0), torch.float16)])
def test_auto_on_a_gpu_falls_back_to_float16(monkeypatch, capability, expected):
    """A T4 (7.5) has no native bf16: float16 with a scaler, although torch.cuda.is_bf16_supported() says True
    there (it counts emulation)."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 reports
    assert precision.resolve_dtype("auto", torch.device("cuda")) == expected


def test_only_float16_gets_a_scaler_and_float32_no_autocast():
    cpu = torch.device("cpu")
    assert isinstance(precision.grad_scaler(cpu, torch.float16), torch.amp.GradScaler)
    assert precision.grad_scaler(cpu, torch.bfloat16) is None and precision.grad_scaler(cpu, torch.float32) is None
    x = torch.randn(2, 2)
    with precision.autocast(cpu, torch.float32):
        assert (x @ x).dtype == torch.float32
    with precision.autocast(cpu, torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
