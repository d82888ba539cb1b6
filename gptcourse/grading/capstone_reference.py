"""The capstone's reference GPT written out, so that each known mistake can be switched on; the hint for each.

`reference_logits(ref, idx, mistake)` computes gptcourse.GPT's logits with one mistake made everywhere it can be
(a post-norm block, no causal mask, ...). The capstone check (lessons/l08b_capstone.py) compares a learner's
model with each, so that a wrong model gets the hint that names its mistake.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import causal_mask
from ..model import GPT
from .lessons.l04_multihead import NO_TRANSPOSE_MERGE
from .lessons.l06_norm import EPS_OUTSIDE
from .lessons.l07_gpt import WPE_IDS

HINTS = {  # mistake -> hint; a mistake changes every block (or the embeddings, or the end) the same way
    "no_positions": "the position embeddings are not added: x = wte(idx) + wpe(pos) with pos = torch.arange(T)",
    "positions_from_ids": WPE_IDS,
    "no_ln_f": "the final LayerNorm is missing: logits = lm_head(transformer.ln_f(x)) after the last block",
    "no_residual": "the blocks have no residual connections: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))",
    "no_attn_residual": "the residual connection around attention is missing: x = x + attn(ln_1(x))",
    "no_mlp_residual": "the residual connection around the MLP is missing: x = x + mlp(ln_2(x))",
    "post_norm": "the blocks are post-norm (LayerNorm after adding, as in 2017); GPT-2's are pre-norm: each "
                 "sub-layer reads a normalised copy, x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))",
    "no_mask": "attention has no causal mask: fill the scores above the diagonal with -inf before the softmax",
    "softmax_dim": "the softmax runs over the wrong axis: each query's row of weights must sum to one (dim=-1)",
    "no_scale": "the attention scores are not scaled: divide q @ k^T by sqrt(head size)",
    "scale_hs": "scale the attention scores by 1/sqrt(head size), not 1/head size",
    "one_head": "attention runs as one head: split q, k and v into n_head heads of n_embd // n_head channels",
    "merge_no_transpose": NO_TRANSPOSE_MERGE,
    "no_attn_proj": "attention's output projection c_proj is not applied after the heads are merged",
    "relu": "the MLP uses ReLU; GPT-2's uses GELU: c_proj(gelu(c_fc(x)))",
    "no_gelu": "the MLP has no activation: c_proj(gelu(c_fc(x)))",
    "ln_unbiased": "LayerNorm uses the sample variance: use the population variance (unbiased=False)",
    "eps_outside": EPS_OUTSIDE,
}
ACCEPTED = {"exact_gelu": "the exact GELU (erf) in place of GPT-2's tanh form is accepted"}


def layer_norm_forward(ln: nn.LayerNorm, x: torch.Tensor, mistake: str | None) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)  # (B, T, 1)
    var = x.var(-1, keepdim=True, unbiased=mistake == "ln_unbiased")
    x_hat = (x - mean) / (var.sqrt() + ln.eps if mistake == "eps_outside" else torch.sqrt(var + ln.eps))
    return x_hat * ln.weight + ln.bias


def attention_forward(attn: nn.Module, x: torch.Tensor, n_head: int, mistake: str | None) -> torch.Tensor:
    B, T, C = x.shape
    nh = 1 if mistake == "one_head" else n_head
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2))  # (B, nh, T, hs)
    scale = {"no_scale": 1.0, "scale_hs": 1.0 / q.size(-1)}.get(mistake, 1.0 / math.sqrt(q.size(-1)))
    scores = q @ k.transpose(-2, -1) * scale  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
    if mistake != "no_mask":
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    y = scores.softmax(dim=-2 if mistake == "softmax_dim" else -1) @ v  # (B, nh, T, hs)
    y = y.reshape(B, T, C) if mistake == "merge_no_transpose" else y.transpose(1, 2).reshape(B, T, C)
    return y if mistake == "no_attn_proj" else attn.c_proj(y)


def mlp_forward(mlp: nn.Module, x: torch.Tensor, mistake: str | None) -> torch.Tensor:
    h = mlp.c_fc(x)  # (B, T, 4C)
    if mistake == "relu":
        h = F.relu(h)
    elif mistake != "no_gelu":
        h = F.gelu(h, approximate="none" if mistake == "exact_gelu" else "tanh")
    return mlp.c_proj(h)  # (B, T, C)


def block_forward(block: nn.Module, x: torch.Tensor, n_head: int, mistake: str | None) -> torch.Tensor:
    attn = functools.partial(attention_forward, block.attn, n_head=n_head, mistake=mistake)
    mlp = functools.partial(mlp_forward, block.mlp, mistake=mistake)
    ln_1, ln_2 = (functools.partial(layer_norm_forward, ln, mistake=mistake) for ln in (block.ln_1, block.ln_2))
    if mistake == "post_norm":
        x = ln_1(x + attn(x))
        return ln_2(x + mlp(x))
    a = attn(ln_1(x))
    x = a if mistake in ("no_residual", "no_attn_residual") else x + a
    m = mlp(ln_2(x))
    return m if mistake in ("no_residual", "no_mlp_residual") else x + m


def reference_logits(ref: GPT, idx: torch.Tensor, mistake: str | None = None) -> torch.Tensor:
    """The logits of `ref` for idx (B, T), with one known mistake made everywhere it can be (None: none)."""
    tr = ref.transformer
    x = tr.wte(idx)  # (B, T, C)
    if mistake != "no_positions":
        x = x + tr.wpe(idx if mistake == "positions_from_ids" else torch.arange(idx.shape[1]))
    for block in tr.h:
        x = block_forward(block, x, ref.config.n_head, mistake)
    if mistake != "no_ln_f":
        x = layer_norm_forward(tr.ln_f, x, mistake)
    return ref.lm_head(x)  # (B, T, V)
