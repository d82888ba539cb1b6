import pytest
import torch
from torch import nn

from gptcourse.linear import FastLinear, _OneDNNLinear, onednn_usable

needs_onednn = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
    reason="this PyTorch has no oneDNN linear kernel",
)


def _pair(bias: bool) -> tuple[nn.Linear, FastLinear]:
    plain, fast = nn.Linear(32, 48, bias=bias), FastLinear(32, 48, bias=bias)
    fast.load_state_dict(plain.state_dict())
    return plain, fast


@pytest.mark.parametrize("bias", [False, True])
def test_fast_linear_equals_nn_linear(bias):
    plain, fast = _pair(bias)
    x = torch.randn(4, 20, 32, requires_grad=True)  # 80 rows: enough for the oneDNN path where it is used
    x2 = x.detach().clone().requires_grad_()
    y, y2 = plain(x), fast(x2)
    grad = torch.randn_like(y)
    y.backward(grad)
    y2.backward(grad)
    # float32 sums of 32 (forward) and 80 (weight gradient) products: equal to rounding
    assert torch.allclose(y, y2, atol=1e-5)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(plain.weight.grad, fast.weight.grad, atol=1e-5)
    if bias:
        assert torch.allclose(plain.bias.grad, fast.bias.grad, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("bias", [False, True])
def test_onednn_path_equals_nn_linear(bias):
    """The oneDNN products themselves, on any x86 CPU (FastLinear uses them only where they are faster)."""
    plain, _ = _pair(bias)
    x = torch.randn(4, 6, 32, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    w2 = plain.weight.detach().clone().requires_grad_()
    b2 = plain.bias.detach().clone().requires_grad_() if bias else None
    y, y2 = plain(x), _OneDNNLinear.apply(x2, w2, b2)
    grad = torch.randn_like(y)
    y.backward(grad)
    y2.backward(grad)
    assert torch.allclose(y, y2, atol=1e-5)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)
    assert torch.allclose(plain.weight.grad, w2.grad, atol=1e-5)
    if bias:
        assert torch.allclose(plain.bias.grad, b2.grad, atol=1e-5)


def test_autocast_and_other_dtypes_use_pytorchs_own_path():
    plain, fast = _pair(bias=True)
    x = torch.randn(2, 3, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast(x).dtype == torch.bfloat16
        assert torch.equal(fast(x), plain(x))
    assert torch.equal(fast.double()(x.double()), plain.double()(x.double()))


def test_usable_only_with_avx512(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not onednn_usable()
