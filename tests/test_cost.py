"""The cost helpers measure what they say: peak memory of known allocations, medians of known sleeps."""

from __future__ import annotations

import time

import pytest
import torch

from gptcourse.attention import CausalSelfAttention, MultiHeadAttention
from gptcourse.cost import median_seconds, peak_memory_bytes, tensor_bytes


def test_tensor_bytes():
    assert tensor_bytes(2, 3, 4) == 2 * 3 * 4 * 4
    assert tensor_bytes(2, 3, dtype=torch.bfloat16) == 2 * 3 * 2
    assert tensor_bytes() == 4


def test_median_seconds_is_the_median():
    durations = iter([0.0, 0.001, 0.03, 0.001, 0.001])  # one warm-up, then a slow outlier among four
    seconds = median_seconds(lambda: time.sleep(next(durations)), repeats=4, warmup=1)
    assert 0.0009 < seconds < 0.02  # the outlier does not move the median far


def test_median_seconds_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(lambda: None, repeats=0)


def test_peak_memory_sees_a_tensor_alive_at_once():
    def two_alive():
        a = torch.ones(1000, 1000)  # 4 MB
        b = torch.ones(1000, 1000)  # another 4 MB while a is still held
        return (a + b).sum()  # and a third for the sum

    def one_at_a_time():
        for _ in range(3):
            torch.ones(1000, 1000).sum()  # each 4 MB freed before the next

    mb = 1000 * 1000 * 4
    assert 3 * mb <= peak_memory_bytes(two_alive) < 3.2 * mb
    assert mb <= peak_memory_bytes(one_at_a_time) < 1.2 * mb


def test_peak_memory_of_plain_attention_grows_with_the_matrix():
    torch.manual_seed(0)
    C, nh, T = 32, 4, 256
    plain = MultiHeadAttention(C, nh, T, bias=False).eval()
    fused = CausalSelfAttention(C, nh, T, bias=False).eval()
    x = torch.randn(1, T, C)
    with torch.no_grad():
        plain_peak = peak_memory_bytes(lambda: plain(x))
        fused_peak = peak_memory_bytes(lambda: fused(x))
    matrix = tensor_bytes(1, nh, T, T)
    assert plain_peak >= matrix  # the (B, nh, T, T) weights must exist at some moment
    assert fused_peak < matrix  # the fused kernel never builds the whole matrix on CPU


def test_peak_memory_rejects_unknown_devices():
    with pytest.raises(ValueError, match="cpu"):
        peak_memory_bytes(lambda: None, device="meta")


def test_median_seconds_uses_the_clock_it_is_given():
    ticks = iter(range(100))  # a fake clock: every reading is one second later than the last

    def clock() -> float:
        return float(next(ticks))

    assert median_seconds(lambda: None, repeats=3, warmup=0, clock=clock) == 1.0
    cpu_seconds = median_seconds(lambda: time.sleep(0.02), repeats=3, warmup=0, clock=time.thread_time)
    assert cpu_seconds < 0.015  # sleeping uses no CPU time, though 20 ms of wall clock pass
