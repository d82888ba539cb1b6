"""Lesson 01: the character tokenizer, and an embedding as one-hot times a matrix."""

from __future__ import annotations

import string

import torch.nn.functional as F

from ...tokenizers import CharTokenizer
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_tensor


def _random_text(ctx: Context, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + " .,;:!?'\n-"
    pool = [alphabet[int(i)] for i in ctx.randint(0, len(alphabet), (ctx.choice([6, 12, 25]),))]
    return "".join(pool[int(i)] for i in ctx.randint(0, len(pool), (n,)))


@register("tokens.char_tokenizer", lesson=1, title="character tokenizer class")
def char_tokenizer(cls, ctx: Context) -> str:
    if not callable(cls):
        raise Fail(f"pass the class itself (CharTok), not a {type(cls).__name__}")
    for _ in range(5):
        _tokenizer_round(cls, _random_text(ctx, 200))
    return "encode/decode round-trip on 5 random texts; ids match the sorted vocabulary"


def _text(out) -> str:
    if not isinstance(out, str):
        raise Fail(f"decode should return a str, got a {type(out).__name__}")
    return out


def _tokenizer_round(cls, text: str) -> None:
    """One text: the learner's tokenizer first (every call through `call`), then the reference."""
    tok = call(cls, text)
    size = call(lambda: getattr(tok, "vocab_size", None))
    ids = call(tok.encode, text)
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise Fail(f"encode should return a list of Python ints, got {type(ids).__name__}"
                   + (f" of {type(ids[0]).__name__}" if isinstance(ids, (list, tuple)) and ids else ""))
    back = _text(call(tok.decode, ids))
    ref = CharTokenizer.from_text(text)
    if type(size) is not int or size != ref.vocab_size:
        shown = repr(size) if isinstance(size, (int, float, str, type(None))) else f"a {type(size).__name__}"
        raise Fail(f"vocab_size is {shown} for a text with {ref.vocab_size} distinct characters: "
                   "the vocabulary is the set of distinct characters (use set(text))")
    if len(ids) != len(text):
        raise Fail(f"encode gave {len(ids)} ids for {len(text)} characters: one id per character")
    if back != text:
        raise Fail("decode(encode(text)) does not give the text back: decode must invert encode "
                   "(''.join of the characters, in order)")
    if ids != ref.encode(text):
        first = sorted(set(text))
        raise Fail("ids are not the characters' ranks in sorted order: sort the vocabulary, "
                   f"e.g. {first[0]!r} -> 0, {first[1]!r} -> 1, ... (sorted(set(text)))")
    sample = text[5:25]
    if _text(call(tok.decode, ref.encode(sample))) != sample:
        raise Fail("decode is not the inverse of the sorted vocabulary: use the same table both ways")


@register("tokens.one_hot_embedding", lesson=1, title="one-hot embedding function")
def one_hot_embedding(fn, ctx: Context) -> str:
    for _ in range(3):
        V, C = ctx.choice([5, 11, 65]), ctx.choice([3, 8, 16])
        B, T = 2, 7
        W = ctx.randn(V, C)
        idx = ctx.randint(0, max(2, V // 2), (B, T))  # ids below V - 1 catch a one-hot that is too narrow
        out = call(fn, idx, W, names=("idx", "W"))
        out = expect_tensor(out, (B, T, C), "embed(idx, W)",
                            hint="one_hot(idx, num_classes=W.shape[0]) is (B, T, V); times W (V, C) gives (B, T, C)")
        if not out.is_floating_point():
            raise Fail(f"the embeddings are {out.dtype}: turn the one-hot vectors into floats (W's dtype) "
                       "before the product")
        expect_close(out, F.one_hot(idx, V).float() @ W, atol=1e-5, what="the embeddings",
                     hint="row (b, t) should be W[idx[b, t]], the one-hot vector picking one row of W")
    return "one_hot(idx) @ W equals the lookup W[idx] on random tables"
