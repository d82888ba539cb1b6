"""Every check passes a right answer and fails each deliberately wrong one with the hint that names the mistake.

The wrong versions are the mistakes learners make (missing 1/sqrt(d), mask off by one, softmax over the wrong
axis, epsilon outside the square root, temperature after the softmax, an untied count where tying was asked
for, ...). Each runs with two fixed seeds so a hint that only sometimes appears is caught.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gptcourse import data, heads, params, positions, sampling, scaling, train
from gptcourse.grading import check, checks

SEEDS = (1, 2)


class CharTok:
    def __init__(self, text):
        self.chars = sorted(set(text))
        self.vocab_size = len(self.chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    def encode(self, s):
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


class UnsortedTok(CharTok):
    def __init__(self, text):
        self.chars = list(dict.fromkeys(text))  # order of first appearance
        self.vocab_size = len(self.chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}


class CountsEveryCharTok(CharTok):
    def __init__(self, text):
        super().__init__(text)
        self.vocab_size = len(text)


class TensorTok(CharTok):
    def encode(self, s):
        return torch.tensor(super().encode(s))


def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def weights_with(q, k, scale=None, dim=-1, diagonal=0, fill=float("-inf")):
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(hs) if scale is None else scale)
    mask = torch.ones(T, T, dtype=torch.bool).tril(diagonal)
    return scores.masked_fill(~mask, fill).softmax(dim=dim)


def head(x, Wq, Wk, Wv, **kw):
    return weights_with(x @ Wq, x @ Wk, **kw) @ (x @ Wv)


def no_mask_head(x, Wq, Wk, Wv):
    q, k = x @ Wq, x @ Wk
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ (x @ Wv)


def split(x, nh):
    B, T, C = x.shape
    return x.view(B, T, nh, C // nh).transpose(1, 2)


def merge(y):
    B, nh, T, hs = y.shape
    return y.transpose(1, 2).reshape(B, T, nh * hs)


def mha(x, c_attn, c_proj, nh, scale_by_c=False, project=True):
    B, T, C = x.shape
    q, k, v = (split(t, nh) for t in c_attn(x).split(C, 2))
    y = weights_with(q, k, scale=math.sqrt(C) if scale_by_c else None) @ v
    return c_proj(merge(y)) if project else merge(y)


def gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def layer_norm(x, w, b, eps=1e-5, unbiased=False, eps_outside=False):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=unbiased)
    std = var.sqrt() + eps if eps_outside else torch.sqrt(var + eps)
    return (x - mean) / std * w + b


def gpt_forward(model, idx, positions_=True, final_norm=True):
    tr = model.transformer
    x = tr.wte(idx) + (tr.wpe(torch.arange(idx.shape[1])) if positions_ else 0)
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x) if final_norm else x)


def count(cfg):
    return params.count_parameters(cfg).total


def count_always_untied(cfg):
    b = params.count_parameters(cfg)
    return b.total + (0 if b.head else cfg.vocab_size * cfg.n_embd)


def count_no_bias(cfg):
    return params.count_parameters(cfg.replace(bias=False)).total


def count_no_norms(cfg):
    return count(cfg) - params.count_parameters(cfg).norms


def share(cfg):
    b = params.count_parameters(cfg)
    return b.feed_forward / b.total


def get_batch(d, T, B, generator=None):
    return data.get_batch(d, T, B, generator=generator)


def get_batch_y_is_x(d, T, B, generator=None):
    x, _ = data.get_batch(d, T, B, generator=generator)
    return x, x.clone()


def get_batch_global_rng(d, T, B, generator=None):
    return data.get_batch(d, T, B, generator=None)


def lr_warmup_without_plus_one(it, *, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    return train.get_lr(it, learning_rate=learning_rate, warmup_iters=warmup_iters,
                        lr_decay_iters=lr_decay_iters, min_lr=min_lr)


def lr_decays_to_zero(it, *, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    return train.get_lr(it, learning_rate=learning_rate, warmup_iters=warmup_iters,
                        lr_decay_iters=lr_decay_iters, min_lr=0.0)


def step_no_zero_grad(model, opt, x, y, grad_clip=1.0):
    loss = train.loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def step_no_clip(model, opt, x, y, grad_clip=1.0):
    return train.train_step(model, opt, x, y, grad_clip=0.0)


def step_no_step(model, opt, x, y, grad_clip=1.0):
    loss = train.loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    return loss.item()


def step_returns_tensor(model, opt, x, y, grad_clip=1.0):
    train.train_step(model, opt, x, y, grad_clip)
    return train.loss_fn(model(x), y)


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


def fit(x, y):
    law = scaling.fit_power_law(x, y)
    return law.a, law.alpha


def fit_wrong_sign(x, y):
    a, alpha = fit(x, y)
    return a, -alpha


def fit_log_a(x, y):
    a, alpha = fit(x, y)
    return math.log(a), alpha


def fit_linear(x, y):
    lx = [math.log(v) for v in x]
    n = len(x)
    mx, my = sum(lx) / n, sum(y) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, y)) / sum((a - mx) ** 2 for a in lx)
    return math.exp(my - slope * mx), -slope


GOOD = {
    "tokens.char_tokenizer": CharTok,
    "tokens.one_hot_embedding": lambda idx, W: F.one_hot(idx, W.shape[0]).float() @ W,
    "position.sinusoidal": positions.sinusoidal_table,
    "position.rope": lambda x: positions.apply_rope(x, positions.rope_angles(x.shape[-2], x.shape[-1])),
    "attention.causal_mask": causal_mask,
    "attention.weights": weights_with,
    "attention.causal": head,
    "multihead.split": split,
    "multihead.merge": merge,
    "multihead.attention": mha,
    "ffn.gelu": gelu,
    "ffn.mlp": lambda x, c_fc, c_proj: c_proj(gelu(c_fc(x))),
    "norm.layernorm": layer_norm,
    "norm.pre_norm_block": lambda x, a, m, l1, l2: (lambda h: h + m(l2(h)))(x + a(l1(x))),
    "gpt.forward": gpt_forward,
    "params.count": count,
    "params.ffn_share": share,
    "train.get_batch": get_batch,
    "train.get_lr": train.get_lr,
    "train.step": train.train_step,
    "sampling.temperature": temperature,
    "sampling.sample": sample,
    "sampling.top_k": sampling.top_k_filter,
    "sampling.top_p": sampling.top_p_filter,
    "heads.previous_token": heads.previous_token_score,
    "heads.first_token": heads.first_token_score,
    "scaling.fit_power_law": fit,
    "scaling.flops": lambda n, d: 6 * n * d,
}

ROPE = positions.rope_angles
sin_table = positions.sinusoidal_table

# (check, wrong implementation, words the hint must contain)
WRONG = [
    ("tokens.char_tokenizer", UnsortedTok, "sort"),
    ("tokens.char_tokenizer", CountsEveryCharTok, "distinct characters"),
    ("tokens.char_tokenizer", TensorTok, "list of Python ints"),
    ("tokens.one_hot_embedding", lambda idx, W: F.one_hot(idx, W.shape[0]).float(), "times W (V, C)"),
    ("tokens.one_hot_embedding", lambda idx, W: F.one_hot(idx, W.shape[0]) @ W.long(), "into floats"),
    ("position.sinusoidal", lambda P, d: torch.cat((sin_table(P, d)[:, 0::2], sin_table(P, d)[:, 1::2]), 1),
     "interleave"),
    ("position.sinusoidal", lambda P, d: sin_table(P, d).view(P, d // 2, 2).flip(-1).reshape(P, d),
     "sin and cos are swapped"),
    ("position.rope", lambda x: positions.apply_rope(x, -ROPE(x.shape[-2], x.shape[-1])), "wrong way"),
    ("position.rope", lambda x: x * 1.5, "lengths changed"),
    ("position.rope", lambda x: positions.apply_rope(x, ROPE(x.shape[-2] + 1, x.shape[-1])[1:]), "position 0"),
    ("attention.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "off by one"),
    ("attention.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upside down"),
    ("attention.causal_mask", lambda T: torch.ones(T, T).tril(), "booleans"),
    ("attention.weights", lambda q, k: weights_with(q, k, scale=1.0), "sqrt(head size)"),
    ("attention.weights", lambda q, k: weights_with(q, k, dim=-2), "wrong axis"),
    ("attention.weights", lambda q, k: weights_with(q, k, diagonal=-1), "off by one"),
    ("attention.weights", lambda q, k: weights_with(q, k, scale=q.shape[-1]), "not 1/head size"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, scale=1.0), "not scaled"),
    ("attention.causal", no_mask_head, "mask"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, diagonal=-1), "off by one"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, diagonal=-1, fill=-1e9), "off by one"),
    ("attention.causal", lambda x, Wq, Wk, Wv: head(x, Wq, Wk, Wv, dim=-2), "wrong axis"),
    ("multihead.split", lambda x, nh: x.view(x.shape[0], nh, x.shape[1], -1), "then transpose(1, 2)"),
    ("multihead.split", lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1), "(B, nh, T, hs)"),
    ("multihead.merge", lambda y: y.reshape(y.shape[0], y.shape[2], -1), "transpose(1, 2) back"),
    ("multihead.attention", lambda x, a, p, nh: mha(x, a, p, nh, scale_by_c=True), "not 1/sqrt(n_embd)"),
    ("multihead.attention", lambda x, a, p, nh: mha(x, a, p, nh, project=False), "c_proj is missing"),
    ("ffn.gelu", torch.relu, "ReLU"),
    ("ffn.gelu", lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)), "cubic term"),
    ("ffn.gelu", lambda x: x * torch.sigmoid(1.702 * x), "tanh form"),
    ("ffn.gelu", lambda x: gelu(x.clamp_(min=-5.0)), "in place"),
    ("ffn.mlp", lambda x, c_fc, c_proj: c_proj(c_fc(x)), "no nonlinearity"),
    ("ffn.mlp", lambda x, c_fc, c_proj: gelu(c_proj(c_fc(x))), "not after c_proj"),
    ("ffn.mlp", lambda x, c_fc, c_proj: c_proj(gelu(c_fc(x))).cumsum(1), "each token alone"),
    ("norm.layernorm", lambda x, w, b, eps: layer_norm(x, w, b, eps, eps_outside=True), "outside the square root"),
    ("norm.layernorm", lambda x, w, b, eps: layer_norm(x, w, b, eps, unbiased=True), "population variance"),
    ("norm.layernorm", lambda x, w, b, eps: F.layer_norm(x, (x.shape[-1],), None, None, eps), "weight and bias"),
    ("norm.layernorm", lambda x, w, b, eps: (x - x.mean(0)) / (x.var(0) + eps).sqrt() * w + b, "last dimension"),
    ("norm.pre_norm_block", lambda x, a, m, l1, l2: (lambda h: l2(h + m(h)))(l1(x + a(x))), "post-norm"),
    ("norm.pre_norm_block", lambda x, a, m, l1, l2: m(l2(a(l1(x)))), "residual connections are missing"),
    ("norm.pre_norm_block", lambda x, a, m, l1, l2: (lambda h: h + m(l1(h)))(x + a(l1(x))), "its own LayerNorm"),
    ("gpt.forward", lambda model, idx: gpt_forward(model, idx, positions_=False), "position embeddings"),
    ("gpt.forward", lambda model, idx: gpt_forward(model, idx, final_norm=False), "ln_f"),
    ("gpt.forward", lambda model, idx: model(idx), "calling model(idx)"),
    ("gpt.forward", lambda model, idx: model.lm_head(model.transformer.ln_f(
        model.transformer.wte(idx) + model.transformer.wpe(torch.arange(idx.shape[1])))), "blocks are missing"),
    ("params.count", count_always_untied, "tie_weights=True"),
    ("params.count", lambda cfg: count(cfg.replace(tie_weights=True)), "tie_weights=False"),
    ("params.count", count_no_bias, "biases are missing"),
    ("params.count", count_no_norms, "LayerNorms are missing"),
    ("params.count", lambda cfg: count(cfg) - cfg.block_size * cfg.n_embd, "position embeddings"),
    ("params.count", lambda cfg: float(count(cfg)) + 0.5, "return an int"),
    ("params.ffn_share", lambda cfg: 100 * share(cfg), "not a percentage"),
    ("params.ffn_share", lambda cfg: share(cfg) / 2, "two matrices"),
    ("params.ffn_share", lambda cfg: params.count_parameters(cfg).feed_forward
     / (params.count_parameters(cfg).feed_forward + params.count_parameters(cfg).attention), "every parameter"),
    ("train.get_batch", get_batch_y_is_x, "shifted by one"),
    ("train.get_batch", get_batch_global_rng, "generator you are given"),
    ("train.get_batch", lambda d, T, B, g=None: get_batch(d, T, B, g)[0], "pair (x, y)"),
    ("train.get_batch", lambda d, T, B, g=None: tuple(t.int() for t in get_batch(d, T, B, g)), "int64"),
    ("train.get_lr", lr_warmup_without_plus_one, "(it + 1) / (warmup_iters + 1)"),
    ("train.get_lr", lr_decays_to_zero, "ends at min_lr"),
    ("train.step", step_no_zero_grad, "zero_grad"),
    ("train.step", step_no_clip, "not clipped"),
    ("train.step", step_no_step, "optimizer.step()"),
    ("train.step", step_returns_tensor, "loss.item()"),
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
    ("heads.previous_token", lambda w: w.diagonal(0, -2, -1).mean(dim=(0, 2)), "offset=-1"),
    ("heads.previous_token", lambda w: w.diagonal(-1, -2, -1).sum(dim=(0, 2)) / (w.shape[0] * w.shape[-1]),
     "t >= 1"),
    ("heads.previous_token", lambda w: w.diagonal(-1, -2, -1).mean(), "one score per head"),
    ("heads.first_token", lambda w: w[..., :, 0].mean(dim=(0, 2)), "skip query 0"),
    ("heads.first_token", lambda w: w[..., 0, :].mean(dim=(0, 2)), "column 0"),
    ("scaling.fit_power_law", fit_wrong_sign, "wrong sign"),
    ("scaling.fit_power_law", fit_log_a, "exp(intercept)"),
    ("scaling.fit_power_law", fit_linear, "straight line"),
    ("scaling.flops", lambda n, d: 2 * n * d, "backward"),
]


@pytest.mark.parametrize("name", checks())
def test_right_answer_passes(name):
    for seed in SEEDS:
        result = check(name, GOOD[name], seed=seed, quiet=True)
        assert result.status == "pass", result.line


@pytest.mark.parametrize("name, wrong, hint", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_answer_fails_with_its_hint(name, wrong, hint):
    for seed in SEEDS:
        result = check(name, wrong, seed=seed, quiet=True)
        assert result.status == "fail", result.line
        assert hint in result.message, result.line
        assert result.points == 0


def test_every_check_has_a_wrong_answer_and_a_right_one():
    assert set(GOOD) == set(checks())
    assert {w[0] for w in WRONG} == set(checks())


def test_a_stub_in_every_check_is_todo():
    def stub(*args, **kwargs):
        raise NotImplementedError("write it")

    for name in checks():
        result = check(name, stub, quiet=True)
        assert result.status == "todo", result.line
