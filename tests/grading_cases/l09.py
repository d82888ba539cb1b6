"""Lesson 09: temperature, sampling, top-k, top-p, and one attention step with a KV cache."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gptcourse import sampling
from gptcourse.attention import causal_mask


def temperature(logits, T):
    if not T >= 0:
        raise ValueError("temperature must be >= 0")
    if T == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return (logits / T).softmax(-1)


def temperature_after_softmax(logits, T):
    if not T >= 0:
        raise ValueError("temperature must be >= 0")
    if T == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return logits.softmax(-1) / T


def temperature_multiplied(logits, T):
    if not T >= 0:
        raise ValueError("temperature must be >= 0")
    if T == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return (logits * T).softmax(-1)


def temperature_unchecked(logits, T):
    if T == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return (logits / abs(T)).softmax(-1)


def temperature_divides_by_zero(logits, T):
    return (logits / T).softmax(-1)


def sample(logits, T, generator=None):
    return sampling.sample_next(logits, T, generator=generator)


def sample_argmax(logits, T, generator=None):
    return logits.argmax(-1, keepdim=True)


def sample_ignores_temperature(logits, T, generator=None):
    if T == 0:
        return logits.argmax(-1, keepdim=True)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)


def sample_unseeded(logits, T, generator=None):
    if T == 0:
        return logits.argmax(-1, keepdim=True)
    return torch.multinomial((logits / T).softmax(-1), 1)


def top_k_zero(logits, k):
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)


def top_k_off_by_one(logits, k):
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


def top_k_smallest(logits, k):
    kth = torch.topk(logits, k, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def top_p_drops_crossing_token(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cum > p
    drop_sorted[..., 0] = False
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


def top_p_ascending(logits, p):
    sorted_logits, order = torch.sort(logits, descending=False)
    probs = sorted_logits.softmax(-1)
    drop_sorted = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


def _cached_attention(attn, x, k_cache, v_cache, *, offset=True, rope=True, append=True, all_keys=True,
                      mask="offset", cat_dim=2, scale=True, proj=True):
    """A cached attention step as a learner writes it; each keyword switches one usual mistake on."""
    B, T, C = x.shape
    nh = attn.n_head
    past = k_cache.shape[2]
    q, k, v = attn.c_attn(x).split(C, dim=2)
    q = q.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, nh, C // nh).transpose(1, 2)
    v = v.view(B, T, nh, C // nh).transpose(1, 2)
    if rope:
        start = past if offset else 0
        q, k = attn.rotary(q, start), attn.rotary(k, start)
    k_all = torch.cat([k_cache, k], dim=cat_dim)
    v_all = torch.cat([v_cache, v], dim=cat_dim)
    keys, values = (k_all, v_all) if all_keys else (k, v)
    Tk = keys.shape[2]
    scores = q @ keys.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(C // nh)
    if mask == "offset":
        scores = scores.masked_fill(~torch.ones(Tk, Tk, dtype=torch.bool).tril()[Tk - T :], float("-inf"))
    elif mask == "top":  # rows 0..T-1: as if the new queries stood at the start
        scores = scores.masked_fill(~torch.ones(Tk, Tk, dtype=torch.bool).tril()[:T], float("-inf"))
    elif mask == "TxT":
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    y = (scores.softmax(-1) @ values).transpose(1, 2).reshape(B, T, C)
    if proj:
        y = attn.c_proj(y)
    return (y, k_all, v_all) if append else (y, k_cache, v_cache)


def cached_attention(attn, x, k_cache, v_cache):
    return _cached_attention(attn, x, k_cache, v_cache)


def kv_with_package_attend(attn, x, k_cache, v_cache):
    """Right too: the layer's own projection and core, fed the cache by hand."""
    q, k, v = attn.project_qkv(x, k_cache.shape[2])
    k, v = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
    y = attn.attend(q, k, v)
    return attn.c_proj(y.transpose(1, 2).reshape(x.shape)), k, v


def kv_returns_new_only(attn, x, k_cache, v_cache):
    y, k, v = _cached_attention(attn, x, k_cache, v_cache)
    T = x.shape[1]
    return y, k[:, :, -T:], v[:, :, -T:]


def kv_calls_forward(attn, x, k_cache, v_cache):
    _, k, v = _cached_attention(attn, x, k_cache, v_cache)
    return attn(x), k, v


def kv_returns_output_only(attn, x, k_cache, v_cache):
    return _cached_attention(attn, x, k_cache, v_cache)[0]


def kv_caches_unrotated_keys(attn, x, k_cache, v_cache):
    y, _, v = _cached_attention(attn, x, k_cache, v_cache)
    B, T, C = x.shape
    k = attn.c_attn(x).split(C, dim=2)[1].view(B, T, attn.n_head, -1).transpose(1, 2)
    return y, torch.cat([k_cache, k], dim=2), v


def _kv_wrong(**flaw):
    return lambda attn, x, k_cache, v_cache: _cached_attention(attn, x, k_cache, v_cache, **flaw)


GOOD = {
    "sampling.temperature": temperature,
    "sampling.sample": sample,
    "sampling.top_k": sampling.top_k_filter,
    "sampling.top_p": sampling.top_p_filter,
    "sampling.kv_cache": cached_attention,
}

WRONG = [
    ("sampling.temperature", temperature_after_softmax, "after the softmax"),
    ("sampling.temperature", temperature_multiplied, "divide the logits by T"),
    ("sampling.temperature", temperature_unchecked, "should be rejected"),
    ("sampling.temperature", temperature_divides_by_zero, "T = 0 means greedy"),
    ("sampling.sample", sample_argmax, "most likely token"),
    ("sampling.sample", sample_ignores_temperature, "follow T = 1"),
    ("sampling.sample", sample_unseeded, "same seed"),
    ("sampling.top_k", top_k_zero, "not 0"),
    ("sampling.top_k", top_k_off_by_one, "off-by-one"),
    ("sampling.top_k", top_k_smallest, "LARGEST"),
    ("sampling.top_p", top_p_drops_crossing_token, "crosses p"),
    ("sampling.top_p", top_p_ascending, "MOST likely"),
    ("sampling.kv_cache", _kv_wrong(offset=False), "positions not offset by the cache length"),
    ("sampling.kv_cache", _kv_wrong(rope=False), "RoPE is missing"),
    ("sampling.kv_cache", _kv_wrong(append=False), "cache was not appended"),
    ("sampling.kv_cache", kv_returns_new_only, "cache was not appended"),
    ("sampling.kv_cache", _kv_wrong(all_keys=False), "attended only to the new keys"),
    ("sampling.kv_cache", _kv_wrong(mask="top"), "as if the new queries were at positions 0..T-1"),
    ("sampling.kv_cache", _kv_wrong(mask="none"), "apply the causal mask, offset by past"),
    ("sampling.kv_cache", _kv_wrong(mask="TxT"), "one row per new query"),
    ("sampling.kv_cache", _kv_wrong(cat_dim=1), "positions axis"),
    ("sampling.kv_cache", _kv_wrong(cat_dim=-1), "positions axis"),
    ("sampling.kv_cache", _kv_wrong(cat_dim=0), "positions axis"),
    ("sampling.kv_cache", _kv_wrong(scale=False), "sqrt(head size)"),
    ("sampling.kv_cache", _kv_wrong(proj=False), "c_proj"),
    ("sampling.kv_cache", kv_calls_forward, "not the exercise"),
    ("sampling.kv_cache", kv_returns_output_only, "return three things"),
    ("sampling.kv_cache", kv_caches_unrotated_keys, "keys after RoPE"),
]
