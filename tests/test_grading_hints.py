"""A learner alone has only the hint: each wrong answer here gets the one that names its mistake, on every seed.

The cases are first attempts that once got a hint naming another mistake, or none (issue 17): top-p without
putting the decision back in vocabulary order, top-p that drops the token crossing p, a mask used the wrong
way round, token ids used as positions, a bias on lm_head, an integer one-hot, `k.T` on a 3-D tensor, ...
Each runs at SEEDS seeds: a hint that changes with the random inputs is caught.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from gptcourse import params
from gptcourse.grading import check

SEEDS = range(50)
NEG = float("-inf")


@pytest.fixture(autouse=True)
def one_thread():
    """The checks' tensors are tiny: on one thread they run several times faster than on contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# sampling.top_p: the decision is made in sorted order and must go back to vocabulary order

def _keep_sorted(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = sorted_logits.softmax(-1)
    return probs.cumsum(-1) - probs >= p, order  # drop, in sorted order


def top_p_not_scattered(logits, p):
    drop_sorted, _ = _keep_sorted(logits, p)
    return logits.masked_fill(drop_sorted, NEG)


def top_p_gathered(logits, p):
    drop_sorted, order = _keep_sorted(logits, p)
    return logits.masked_fill(drop_sorted.gather(-1, order), NEG)


def top_p_returns_sorted(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    drop_sorted, _ = _keep_sorted(logits, p)
    return sorted_logits.masked_fill(drop_sorted, NEG)


def _top_p_cut(logits, p, drop_rule, force_first=True, over=lambda s: s.softmax(-1)):
    sorted_logits, order = torch.sort(logits, descending=True)
    drop_sorted = drop_rule(over(sorted_logits).cumsum(-1), p)
    if force_first:
        drop_sorted[..., 0] = False
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), NEG)


def top_p_exclusive(logits, p):  # keeps tokens while the running mass stays <= p
    return _top_p_cut(logits, p, lambda cum, p: cum > p)


def top_p_exclusive_at_p(logits, p):  # stops as soon as the running mass reaches p
    return _top_p_cut(logits, p, lambda cum, p: cum >= p)


def top_p_exclusive_unforced(logits, p):
    return _top_p_cut(logits, p, lambda cum, p: cum > p, force_first=False)


def top_p_ascending(logits, p):  # the least likely first
    sorted_logits, order = torch.sort(logits)
    probs = sorted_logits.softmax(-1)
    drop_sorted = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), NEG)


def top_p_raw_logits(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    drop_sorted = sorted_logits.cumsum(-1) - sorted_logits >= p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), NEG)


def top_p_raw_logits_running(logits, p):
    return _top_p_cut(logits, p, lambda cum, p: cum > p, over=lambda s: s)


# attention: the mask used the wrong way round, and k.T on (B, T, hs)

def _weights(q, k, inverted=False, fill=NEG, transpose=lambda k: k.transpose(-2, -1)):
    T, hs = q.shape[-2], q.shape[-1]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = q @ transpose(k) / math.sqrt(hs)
    return scores.masked_fill(mask if inverted else ~mask, fill).softmax(-1)


def _head(x, Wq, Wk, Wv, **kw):
    return _weights(x @ Wq, x @ Wk, **kw) @ (x @ Wv)


# gpt.forward: positions are torch.arange(T)

def _forward(model, idx, positions):
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(positions(idx))
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x))


def forward_ids_as_positions(model, idx):
    return _forward(model, idx, lambda idx: idx)


def forward_whole_table_first(model, idx):
    tr = model.transformer
    x = tr.wpe.weight + tr.wte(idx)
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x))


# params: the count by parts, with one part off

def _count(cfg, head_bias=False, head_bias_when_tied=False, mlp_proj_bias=None):
    d, L, V, b = cfg.n_embd, cfg.n_layer, cfg.vocab_size, int(cfg.bias)
    mlp_proj_bias = d if mlp_proj_bias is None else mlp_proj_bias
    block = (d * 3 * d + 3 * d * b) + (d * d + d * b) + (d * 4 * d + 4 * d * b) + (4 * d * d + mlp_proj_bias * b)
    head = 0 if cfg.tie_weights else V * d + V * b * head_bias
    extra = V * b if (head_bias_when_tied and cfg.tie_weights) else 0
    return V * d + cfg.block_size * d + L * (block + 2 * d * (1 + b)) + d * (1 + b) + head + extra


def count_head_bias(cfg):  # a bias on the untied head
    return _count(cfg, head_bias=True)


def count_head_bias_always(cfg):  # a bias on the head whenever bias=True
    return _count(cfg, head_bias=True, head_bias_when_tied=True)


def count_mlp_proj_bias_4d(cfg):
    return _count(cfg, mlp_proj_bias=4 * cfg.n_embd)


def share_without_biases(cfg):
    return cfg.n_layer * 8 * cfg.n_embd**2 / params.count_parameters(cfg).total


def share_blocks_only(cfg):
    b = params.count_parameters(cfg)
    return b.feed_forward / (b.attention + b.feed_forward)


def share_blocks_and_their_norms(cfg):
    b = params.count_parameters(cfg)
    return b.feed_forward / (b.attention + b.feed_forward + 2 * cfg.n_layer * cfg.n_embd * (1 + int(cfg.bias)))


def share_on_head_bias_count(cfg):
    return params.count_parameters(cfg).feed_forward / count_head_bias_always(cfg)


def share_on_always_untied_count(cfg):
    b = params.count_parameters(cfg)
    return b.feed_forward / (b.total + (0 if b.head else cfg.vocab_size * cfg.n_embd))


def temperature_integer_one_hot(logits, T):
    if not T >= 0:
        raise ValueError("temperature must be >= 0")
    if T == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1])  # int64
    return (logits / T).softmax(-1)


TOP_P_RULE = "keep the token that crosses p"
EVERY_TOKEN = "at p = 1 every token is kept"
INVERTED = "wrong way round"
ARANGE_T = "torch.arange(T)"
TRANSPOSE = "k.transpose(-2, -1)"
HEAD_BIAS = "lm_head has no bias"
FIX_COUNT = "fix count_params first"

# (check, wrong answer, words the hint must contain, words it must not contain)
CASES = [
    ("sampling.top_p", top_p_not_scattered, ["vocabulary order", "scatter(-1, order"], ["sort descending"]),
    ("sampling.top_p", top_p_returns_sorted, ["vocabulary order", "scatter(-1, order"], ["stay as they were"]),
    ("sampling.top_p", top_p_gathered, ["gather(-1, order) moves the decision the wrong way", "scatter"],
     ["sort descending"]),
    ("sampling.top_p", top_p_exclusive, [TOP_P_RULE, EVERY_TOKEN], ["1.000 "]),
    ("sampling.top_p", top_p_exclusive_at_p, [TOP_P_RULE, EVERY_TOKEN], ["1.000 "]),
    ("sampling.top_p", top_p_exclusive_unforced, [TOP_P_RULE, EVERY_TOKEN], []),
    ("sampling.top_p", top_p_ascending, ["keep the MOST likely tokens", "descending"], ["more tokens than needed"]),
    ("sampling.top_p", top_p_raw_logits, ["softmax of the sorted logits", "raw logits"], [TOP_P_RULE]),
    ("sampling.top_p", top_p_raw_logits_running, ["softmax of the sorted logits", "raw logits"], [TOP_P_RULE]),
    ("attention.weights", lambda q, k: _weights(q, k, inverted=True), [INVERTED, "~mask"], ["off by one"]),
    ("attention.weights", lambda q, k: _weights(q, k, inverted=True, fill=-1e9), [INVERTED, "~mask"],
     ["later keys"]),
    ("attention.causal", lambda x, Wq, Wk, Wv: _head(x, Wq, Wk, Wv, inverted=True), [INVERTED, "~mask"],
     ["off by one"]),
    ("attention.causal", lambda x, Wq, Wk, Wv: _head(x, Wq, Wk, Wv, inverted=True, fill=-1e9), [INVERTED],
     ["missing"]),
    ("attention.weights", lambda q, k: _weights(q, k, transpose=lambda k: k.T), [TRANSPOSE, "k.T reverses"], []),
    ("attention.causal", lambda x, Wq, Wk, Wv: _head(x, Wq, Wk, Wv, transpose=lambda k: k.T),
     [TRANSPOSE, "RuntimeError"], []),
    ("attention.causal", lambda x, Wq, Wk, Wv: _head(x, Wq, Wk, Wv, transpose=lambda k: k.t()), [TRANSPOSE], []),
    ("gpt.forward", forward_ids_as_positions, [ARANGE_T, "not the token ids"], []),
    ("gpt.forward", lambda model, idx: _forward(model, idx, lambda idx: torch.arange(model.config.block_size)),
     [ARANGE_T, "not all block_size rows"], []),
    ("gpt.forward", forward_whole_table_first, [ARANGE_T, "not all block_size rows"], []),
    ("gpt.forward", lambda model, idx: _forward(model, idx, lambda idx: torch.arange(idx.shape[0])),
     ["torch.arange(idx.shape[1])"], []),
    ("params.count", count_head_bias, [HEAD_BIAS, "50,257 too many"], []),
    ("params.count", count_head_bias_always, [HEAD_BIAS], []),
    ("params.count", count_mlp_proj_bias_4d, ["c_proj maps 4 * n_embd back to n_embd", "n_embd entries"], []),
    ("params.ffn_share", share_without_biases, ["count the MLP's biases too"], [FIX_COUNT]),
    ("params.ffn_share", share_blocks_only, ["not only the blocks'"], [FIX_COUNT]),
    ("params.ffn_share", share_blocks_and_their_norms, ["not only the blocks'"], [FIX_COUNT]),
    ("params.ffn_share", share_on_head_bias_count, [FIX_COUNT, "check('params.count'", HEAD_BIAS], []),
    ("params.ffn_share", share_on_always_untied_count, [FIX_COUNT, "although tie_weights=True"], []),
    ("sampling.temperature", temperature_integer_one_hot, ["return float probabilities", "torch.int64"], []),
]


@pytest.mark.parametrize("name, wrong, must, must_not", CASES,
                         ids=[f"{c[0]}-{getattr(c[1], '__name__', i)}-{i}" for i, c in enumerate(CASES)])
def test_the_hint_names_the_mistake_on_every_seed(name, wrong, must, must_not):
    for seed in SEEDS:
        result = check(name, wrong, seed=seed, quiet=True)
        assert result.status == "fail", result.line
        for words in must:
            assert words in result.message, result.line
        for words in must_not:
            assert words not in result.message, result.line


@pytest.mark.parametrize("wrong", [top_p_exclusive, top_p_exclusive_at_p])
def test_top_p_shows_the_kept_mass_below_p_never_rounded_up_to_it(wrong):
    for seed in SEEDS:
        message = check("sampling.top_p", wrong, seed=seed, quiet=True).message
        p, mass = re.search(r"at p = ([\d.e-]+) .* holding ([\d.]+) of the probability", message).groups()
        assert float(mass) < float(p), message


def test_a_recognised_error_is_quoted_after_the_hint_with_the_line_it_came_from():
    messages = [check("gpt.forward", forward_ids_as_positions, seed=seed, quiet=True).message for seed in range(10)]
    raised = [m for m in messages if "your code raised" in m]  # when a token id is past block_size
    assert raised and all(m.startswith("wpe takes the positions 0..T-1 (torch.arange(T))") for m in messages)
    assert all("ValueError: position" in m and "(in _forward, line" in m for m in raised), raised[0]
