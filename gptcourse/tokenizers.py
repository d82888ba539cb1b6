"""Text to token ids and back: a character tokenizer and GPT-2's byte-pair encoding, one interface.

GPT-2's BPE comes from tiktoken, built from the ranks file bundled in `gptcourse/assets`, so it needs
no network; it encodes exactly as `tiktoken.get_encoding("gpt2")` does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources

import tiktoken

__all__ = ["CharTokenizer", "GPT2Tokenizer", "gpt2_encoding", "tokenizer_from_dict"]

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256


class CharTokenizer:
    """One token per character: the vocabulary is the sorted set of characters seen in a text."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.chars = sorted(set(chars))
        if not self.chars or any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer needs a non-empty collection of single characters")
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in this tokenizer's vocabulary of {self.vocab_size} "
                "characters (it was built from the training text)"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding built offline from the bundled ranks (checked against their sha256)."""
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    path = resources.files("gptcourse") / "assets" / "gpt2.tiktoken"
    with resources.as_file(path) as ranks_file:
        ranks = load_tiktoken_bpe(str(ranks_file), expected_hash=GPT2_RANKS_SHA256)
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: ENDOFTEXT_ID},
        explicit_n_vocab=50257,
    )


class GPT2Tokenizer:
    """GPT-2's byte-pair encoding: 50,257 tokens; any text, any language, no unknown characters."""

    kind = "gpt2"
    vocab_size = 50257

    def __init__(self) -> None:
        self.encoding = gpt2_encoding()

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special={ENDOFTEXT})

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})")
        return self.encoding.decode(ids)

    def pieces(self, text: str) -> list[str]:
        """The text cut at token boundaries (a token that splits a character shows as its bytes)."""
        return [self.encoding.decode_single_token_bytes(t).decode("utf-8", "replace") for t in self.encode(text)]

    def to_dict(self) -> dict:
        return {"kind": self.kind}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GPT2Tokenizer)

    def __repr__(self) -> str:
        return "GPT2Tokenizer(vocab_size=50257)"


def tokenizer_from_dict(d: dict) -> CharTokenizer | GPT2Tokenizer:
    """Rebuild a tokenizer from its `to_dict()` (as stored in a checkpoint)."""
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["chars"])
    if kind == "gpt2":
        return GPT2Tokenizer()
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'char' or 'gpt2'")
