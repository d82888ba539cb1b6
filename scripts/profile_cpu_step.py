"""Where a float32 training step of nanoGPT's README CPU model goes: torch.profiler's self-CPU time per step,
by kind of operation, for gptcourse or for nanoGPT (its model.py, from a checkout).

    python scripts/profile_cpu_step.py gptcourse [steps]
    python scripts/profile_cpu_step.py NANOGPT_DIR [steps]

Random token batches (the time does not depend on the text). Set ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 to see a CPU without AVX-512.
"""

import collections
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

impl, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60
torch.manual_seed(1337)
B, T = 12, 64
if impl == "gptcourse":
    from gptcourse import GPT
    from gptcourse.recipes import RECIPES
    from gptcourse.step import configure_optimizer, train_step

    r = RECIPES["nanogpt-cpu"]
    model = GPT(r.model)
    opt = configure_optimizer(model, r.train, "cpu")

    def step(x, y):
        return train_step(model, opt, x, y, 1.0)
else:
    sys.path.insert(0, impl)  # a nanoGPT checkout
    from model import GPT, GPTConfig

    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()


data = torch.randint(65, (100_000,))


def batch():
    ix = torch.randint(len(data) - T, (B,))
    x = torch.stack([data[i : i + T] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + T] for i in ix])
    return x, y


for _ in range(10):
    step(*batch())
wall = []
for _ in range(steps):
    t0 = time.perf_counter()
    step(*batch())
    wall.append((time.perf_counter() - t0) * 1e3)
CATS = [
    ("matmul", ("addmm", "mm", "bmm", "linear", "matmul", "_linear_pointwise", "baddbmm")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax")),
    ("optimizer", ("adam", "_foreach", "fused_adam")),
    ("layernorm", ("layer_norm",)),
    ("grad clip", ("norm", "clip", "stack", "_foreach_norm", "linalg_vector_norm")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("gelu", ("gelu",)),
    ("embedding", ("embedding",)),
    (
        "elementwise",
        (
            "add",
            "mul",
            "div",
            "sum",
            "copy_",
            "fill_",
            "zero_",
            "clone",
            "cat",
            "where",
            "neg",
            "sub",
            "masked_fill",
            "view_as_real",
            "contiguous",
            "to",
            "_to_copy",
            "dropout",
            "ones_like",
        ),
    ),
]
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
        step(*batch())
tot = collections.Counter()
for e in prof.key_averages():
    name = e.key.split("::")[-1].lower()
    cat = next((c for c, keys in CATS if any(k in name for k in keys)), "other")
    if e.key.startswith("autograd::engine"):
        continue  # the backward's wrapper events repeat their children's time
    tot[cat] += e.self_cpu_time_total
alltime = sum(tot.values())
print(
    f"{impl}: wall {statistics.median(wall):.2f} ms/step (median of {steps}); profiled self-CPU by category, ms/step:"
)
for c, v in tot.most_common():
    print(f"  {c:12s} {v / steps / 1e3:7.2f}  {100 * v / alltime:5.1f}%")
top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
print("  top ops: " + "; ".join(f"{e.key} {e.self_cpu_time_total / steps / 1e3:.2f}" for e in top))
