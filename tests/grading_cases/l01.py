"""Lesson 01: the character tokenizer and the one-hot embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


GOOD = {
    "tokens.char_tokenizer": CharTok,
    "tokens.one_hot_embedding": lambda idx, W: F.one_hot(idx, W.shape[0]).float() @ W,
}

WRONG = [
    ("tokens.char_tokenizer", UnsortedTok, "sort"),
    ("tokens.char_tokenizer", CountsEveryCharTok, "distinct characters"),
    ("tokens.char_tokenizer", TensorTok, "list of Python ints"),
    ("tokens.one_hot_embedding", lambda idx, W: F.one_hot(idx, W.shape[0]).float(), "times W (V, C)"),
    ("tokens.one_hot_embedding", lambda idx, W: F.one_hot(idx, W.shape[0]) @ W.long(), "into floats"),
]
