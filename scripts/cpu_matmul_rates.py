"""GFLOP/s of the float32 products in a step of nanoGPT's README CPU model: MKL (what `a @ w.t()` runs) against
oneDNN (`gptcourse.linear.FastLinear`'s kernel), on one and two threads.

    python scripts/cpu_matmul_rates.py
"""

import time

import torch


def rate(fn, flops, reps=2000):
    for _ in range(20):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return flops * reps / (time.perf_counter() - t) / 1e9


for threads in (1, 2):
    torch.set_num_threads(threads)
    row = []
    for m, k, n in [
        (768, 128, 512),
        (768, 512, 128),
        (128, 768, 512),
        (512, 768, 128),
        (384, 768, 128),
        (128, 768, 384),
    ]:
        a, w = torch.randn(m, k), torch.randn(n, k)
        mkl = rate(lambda a=a, w=w: a @ w.t(), 2 * m * k * n)
        dnn = rate(lambda a=a, w=w: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""), 2 * m * k * n)
        row.append(f"({m},{k})@({k},{n}) MKL {mkl:.0f} oneDNN {dnn:.0f}")
    print(torch.backends.cpu.get_cpu_capability(), f"{threads} thread(s):", "; ".join(row), "GFLOP/s")
