"""Lesson 07: the GPT forward pass, dropout, and parameter counting."""

from __future__ import annotations

import torch

from gptcourse import params


def gpt_forward(model, idx, positions_=True, final_norm=True):
    tr = model.transformer
    x = tr.wte(idx) + (tr.wpe(torch.arange(idx.shape[1])) if positions_ else 0)
    for block in tr.h:
        x = block(x)
    return model.lm_head(tr.ln_f(x) if final_norm else x)


def dropout(x, p, training, generator, keep_prob=False, scale=True, per_row=False, use_generator=True):
    if not training:
        return x
    shape = (x.shape[0], 1) if per_row else x.shape
    u = torch.rand(shape, generator=generator if use_generator else None)
    keep = u < p if keep_prob else u >= p
    return x * keep / (1 - p) if scale else x * keep


def dropout_in_eval_too(x, p, training, generator):
    return dropout(x, p, True, generator)


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


def share_of_blocks(cfg):
    b = params.count_parameters(cfg)
    return b.feed_forward / (b.feed_forward + b.attention)


GOOD = {
    "gpt.forward": gpt_forward,
    "gpt.dropout": dropout,
    "params.count": count,
    "params.ffn_share": share,
}

WRONG = [
    ("gpt.forward", lambda model, idx: gpt_forward(model, idx, positions_=False), "position embeddings"),
    ("gpt.forward", lambda model, idx: gpt_forward(model, idx, final_norm=False), "ln_f"),
    ("gpt.forward", lambda model, idx: model(idx), "calling model(idx)"),
    ("gpt.forward", lambda model, idx: model.lm_head(model.transformer.ln_f(
        model.transformer.wte(idx) + model.transformer.wpe(torch.arange(idx.shape[1])))), "blocks are missing"),
    ("gpt.dropout", dropout_in_eval_too, "training=False"),
    ("gpt.dropout", lambda x, p, t, g: dropout(x, p, t, g, keep_prob=True), "not of keeping it"),
    ("gpt.dropout", lambda x, p, t, g: dropout(x, p, t, g, scale=False), "1 / (1 - p)"),
    ("gpt.dropout", lambda x, p, t, g: dropout(x, p, t, g, scale=False) * (1 - p) if t else x, "don't multiply"),
    ("gpt.dropout", lambda x, p, t, g: dropout(x, p, t, g, per_row=True), "one random number per element"),
    ("gpt.dropout", lambda x, p, t, g: dropout(x, p, t, g, use_generator=False), "generator you are given"),
    ("gpt.dropout", lambda x, p, t, g: torch.nn.functional.dropout(x, p, t), "generator you are given"),
    ("params.count", count_always_untied, "tie_weights=True"),
    ("params.count", lambda cfg: count(cfg.replace(tie_weights=True)), "tie_weights=False"),
    ("params.count", count_no_bias, "biases are missing"),
    ("params.count", count_no_norms, "LayerNorms are missing"),
    ("params.count", lambda cfg: count(cfg) - cfg.block_size * cfg.n_embd, "position embeddings"),
    ("params.count", lambda cfg: float(count(cfg)) + 0.5, "return an int"),
    ("params.ffn_share", lambda cfg: 100 * share(cfg), "not a percentage"),
    ("params.ffn_share", lambda cfg: share(cfg) / 2, "two matrices"),
    ("params.ffn_share", share_of_blocks, "every parameter"),
]
