"""Tiny Shakespeare: found locally, or downloaded once, verified and cached; tokenised, split and batched."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .tokenizers import CharTokenizer, GPT2Tokenizer

__all__ = [
    "SHAKESPEARE_URL",
    "SHAKESPEARE_SHA256",
    "find_shakespeare",
    "load_shakespeare",
    "cache_dir",
    "Dataset",
    "load_dataset",
    "encode_cached",
    "get_batch",
]

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
FILENAME = "tinyshakespeare.txt"


def cache_dir() -> Path:
    """Where downloads and tokenised arrays live: $GPTCOURSE_CACHE, else ~/.cache/gptcourse."""
    base = os.environ.get("GPTCOURSE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gptcourse"
    )
    return Path(base)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_shakespeare() -> Path | None:
    """The local copy: $GPTCOURSE_DATA_DIR/tinyshakespeare.txt first, then the cache. None if neither."""
    data_dir = os.environ.get("GPTCOURSE_DATA_DIR")
    candidates = [Path(data_dir) / FILENAME] if data_dir else []
    candidates.append(cache_dir() / FILENAME)
    return next((p for p in candidates if p.is_file()), None)


def _download(dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(SHAKESPEARE_URL, timeout=60) as resp:
            out.write(resp.read())
        digest = _sha256(Path(tmp))
        if digest != SHAKESPEARE_SHA256:
            raise ValueError(f"the download's sha256 is {digest}, expected {SHAKESPEARE_SHA256}")
        os.replace(tmp, dest)  # only a verified file ever appears under the real name
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download Tiny Shakespeare from {SHAKESPEARE_URL} ({err}). Download it by hand "
            f"and set GPTCOURSE_DATA_DIR to the folder holding {FILENAME}"
        ) from err


def load_shakespeare() -> str:
    """The whole text (1,115,394 characters), checked against its sha256."""
    path = find_shakespeare()
    if path is None:
        path = cache_dir() / FILENAME
        _download(path)
    if _sha256(path) != SHAKESPEARE_SHA256:
        raise ValueError(
            f"{path} does not match Tiny Shakespeare's sha256 ({SHAKESPEARE_SHA256}); "
            "delete it (it will be downloaded again) or point GPTCOURSE_DATA_DIR at a good copy"
        )
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Dataset:
    """A tokenised text split in two: the model learns from `train` and is judged on `val`."""

    train: torch.Tensor  # (N_train,) int64 token ids: the first part of the text
    val: torch.Tensor  # (N_val,) int64 token ids: the last part, never trained on
    tokenizer: CharTokenizer | GPT2Tokenizer

    def __repr__(self) -> str:
        return f"Dataset(train={len(self.train):,} tokens, val={len(self.val):,} tokens, tokenizer={self.tokenizer!r})"


def _make_tokenizer(kind: str, text: str) -> CharTokenizer | GPT2Tokenizer:
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "gpt2":
        return GPT2Tokenizer()
    raise ValueError(f"tokenizer must be 'char' or 'gpt2', got {kind!r}")


def encode_cached(text: str, tokenizer: CharTokenizer | GPT2Tokenizer) -> np.ndarray:
    """The text's token ids as uint16, from the cache when this text and tokenizer were seen before.

    The cache file's name holds the text's sha256 and the tokenizer (its kind, and for characters the
    vocabulary), so a changed text or tokenizer never reads stale ids. Written atomically.
    """
    if tokenizer.vocab_size > 2**16:
        raise ValueError(f"a vocabulary of {tokenizer.vocab_size} does not fit the uint16 cache")
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    tok_key = tokenizer.kind
    if isinstance(tokenizer, CharTokenizer):
        tok_key += "-" + hashlib.sha256("".join(tokenizer.chars).encode("utf-8")).hexdigest()[:8]
    path = cache_dir() / f"tokens-{key}-{tok_key}.npy"
    if path.is_file():
        try:
            ids = np.load(path, allow_pickle=False)
            if ids.dtype == np.uint16 and ids.ndim == 1:
                return ids
        except (OSError, ValueError):
            pass  # a damaged cache file: encode again and replace it
    ids = np.asarray(tokenizer.encode(text), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, ids, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ids


def load_dataset(tokenizer: str = "char", val_fraction: float = 0.1, *, text: str | None = None) -> Dataset:
    """Tiny Shakespeare (or `text`) tokenised with "char" or "gpt2": first 1 - val_fraction train, rest val."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    text = load_shakespeare() if text is None else text
    if not text:
        raise ValueError("the text is empty: there is nothing to train on")
    tok = _make_tokenizer(tokenizer, text)
    ids = torch.from_numpy(encode_cached(text, tok).astype(np.int64))  # (N,) int64: what embeddings index with
    n_train = int(len(ids) * (1.0 - val_fraction))
    return Dataset(train=ids[:n_train], val=ids[n_train:], tokenizer=tok)


def get_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size random windows of block_size tokens -> inputs x (B, T) and targets y (B, T), y = x shifted by one.

    Each row of y holds, at every position, the token that follows the same position in x: one window
    gives T next-token examples.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size and batch_size must be >= 1, got {block_size} and {batch_size}")
    if len(data) <= block_size:
        raise ValueError(
            f"the data has {len(data)} tokens, not more than block_size={block_size}: a window needs "
            f"block_size + 1 tokens; use a smaller block_size or more text"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size + 1)  # (T + 1,)
    windows = data[starts[:, None] + offsets].long()  # (B, 1) + (T + 1,) -> (B, T + 1)
    x, y = windows[:, :-1], windows[:, 1:]  # (B, T) each
    if device is not None and torch.device(device).type == "cuda":
        # pinned memory lets the copy to the GPU overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    if device is not None:
        return x.to(device), y.to(device)
    return x.contiguous(), y.contiguous()
