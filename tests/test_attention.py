import math

import pytest
import torch
import torch.nn.functional as F

from gptcourse.attention import (
    CausalSelfAttention,
    MultiHeadAttention,
    SingleHeadAttention,
    attention_weights,
    causal_mask,
)


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.tolist()[1] == [True, True, False, False]


def test_weights_rows_sum_to_one_and_are_causal():
    q, k = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    w = attention_weights(q, k, causal_mask(5))
    assert torch.allclose(w.sum(-1), torch.ones(2, 5))
    assert (w.triu(diagonal=1) == 0).all()
    expected = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~causal_mask(5), float("-inf")).softmax(-1)
    assert torch.allclose(w, expected)


def test_single_head_shapes_and_causality():
    head = SingleHeadAttention(n_embd=16, head_size=4, block_size=8)
    x = torch.randn(3, 6, 16)
    y = head(x)
    assert y.shape == (3, 6, 4)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(3, 2, 16)  # change the future
    assert torch.allclose(head(x2)[:, :4], y[:, :4], atol=1e-6)
    with pytest.raises(ValueError, match="context window"):
        head(torch.randn(1, 9, 16))


@pytest.mark.parametrize("rope", [False, True])
def test_fast_equals_plain(rope):
    plain = MultiHeadAttention(32, 4, block_size=16, rope=rope)
    fast = CausalSelfAttention(32, 4, block_size=16, rope=rope)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 32)
    assert torch.allclose(plain(x), fast(x), atol=1e-5)


def test_plain_equals_torch_sdpa_per_head():
    mha = MultiHeadAttention(24, 3, block_size=10)
    x = torch.randn(2, 10, 24)
    q, k, v = mha.project_qkv(x)
    ours = mha.attend(q, k, v)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_split_merge_roundtrip_and_weights():
    mha = MultiHeadAttention(24, 3, block_size=10)
    x = torch.randn(2, 7, 24)
    heads = mha.split_heads(x)
    assert heads.shape == (2, 3, 7, 8)
    assert torch.equal(heads[:, 1], x[..., 8:16])  # head 1 holds channels 8..15
    assert torch.equal(mha.merge_heads(heads), x)
    w = mha.weights(x)
    assert w.shape == (2, 3, 7, 7) and torch.allclose(w.sum(-1), torch.ones(2, 3, 7))


@pytest.mark.parametrize("cls", [MultiHeadAttention, CausalSelfAttention])
@pytest.mark.parametrize("rope", [False, True])
def test_future_tokens_do_not_change_the_past(cls, rope):
    attn = cls(32, 4, block_size=16, rope=rope)
    x = torch.randn(2, 12, 32)
    x2 = x.clone()
    x2[:, 7:] += torch.randn(2, 5, 32)
    y, y2 = attn(x), attn(x2)
    assert torch.allclose(y[:, :7], y2[:, :7], atol=1e-6)
    assert not torch.allclose(y[:, 7:], y2[:, 7:])


@pytest.mark.parametrize("cls", [MultiHeadAttention, CausalSelfAttention])
def test_cache_gives_the_same_output(cls):
    from gptcourse.attention import KVCache

    attn = cls(32, 4, block_size=16, rope=True)
    x = torch.randn(2, 10, 32)
    full = attn(x)
    for cache in (KVCache(), KVCache(capacity=16)):  # growing buffers, or sized once
        parts = [attn(x[:, :4], cache), attn(x[:, 4:7], cache), attn(x[:, 7:8], cache), attn(x[:, 8:], cache)]
        assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
        assert len(cache) == 10


def test_cache_sized_once_writes_in_place():
    from gptcourse.attention import KVCache

    cache = KVCache(capacity=8)
    k, v = cache.update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    buffer = cache.k.data_ptr()
    new_k = torch.randn(1, 2, 1, 4)
    k, v = cache.update(new_k, torch.randn(1, 2, 1, 4))
    assert cache.k.data_ptr() == buffer and k.shape == (1, 2, 4, 4) and torch.equal(k[:, :, 3:], new_k)


def test_cpu_bf16_autocast_runs_attention_core_in_float32():
    fast = CausalSelfAttention(32, 4, block_size=16)
    x = torch.randn(2, 16, 32, requires_grad=True)
    ref = fast(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = fast.project_qkv(x)
        assert q.dtype == torch.bfloat16
        y = fast(x)
    assert y.dtype == torch.bfloat16
    assert (y.float() - ref).abs().max().item() < 0.05  # bf16 keeps about 3 significant digits
    y.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
