"""gptcourse.data: the split, the token cache and batches drawn from an explicit generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptcourse.data import Dataset, encode_cached, find_shakespeare, get_batch, load_dataset
from gptcourse.tokenizers import CharTokenizer, GPT2Tokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))


def test_get_batch_draws_exactly_the_documented_windows():
    data = torch.arange(100)
    x, y = get_batch(data, block_size=8, batch_size=5, generator=torch.Generator().manual_seed(3))
    starts = torch.randint(100 - 8, (5,), generator=torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (5, 8) and x.dtype == y.dtype == torch.int64
    for b, s in enumerate(starts.tolist()):
        assert x[b].tolist() == list(range(s, s + 8))
        assert y[b].tolist() == list(range(s + 1, s + 9))  # the next token at every position


def test_get_batch_is_reproducible_and_follows_the_generator():
    data = torch.randint(65, (1000,))
    a = get_batch(data, 16, 4, torch.Generator().manual_seed(0))
    b = get_batch(data, 16, 4, torch.Generator().manual_seed(0))
    c = get_batch(data, 16, 4, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_get_batch_accepts_compact_dtypes_and_a_device():
    data = torch.arange(50, dtype=torch.int16)
    x, y = get_batch(data, 4, 3, torch.Generator().manual_seed(0), device="cpu")
    assert x.dtype == torch.int64 and x.device.type == "cpu"
    assert torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("length", [0, 5, 8])
def test_get_batch_refuses_data_not_longer_than_the_block(length):
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(length), block_size=8, batch_size=2)


def test_get_batch_refuses_a_matrix():
    with pytest.raises(ValueError, match="1-D"):
        get_batch(torch.zeros(4, 40, dtype=torch.long), 8, 2)


def test_load_dataset_char_split_and_round_trip():
    ds = load_dataset("char", text=TEXT)
    assert isinstance(ds, Dataset) and isinstance(ds.tokenizer, CharTokenizer)
    assert ds.train.dtype == ds.val.dtype == torch.int64
    assert len(ds.train) == int(len(TEXT) * 0.9) and len(ds.train) + len(ds.val) == len(TEXT)
    assert ds.tokenizer.decode(ds.train.tolist()) + ds.tokenizer.decode(ds.val.tolist()) == TEXT


def test_load_dataset_gpt2():
    ds = load_dataset("gpt2", val_fraction=0.25, text=TEXT)
    assert isinstance(ds.tokenizer, GPT2Tokenizer)
    ids = GPT2Tokenizer().encode(TEXT)
    assert torch.cat([ds.train, ds.val]).tolist() == ids
    assert len(ds.train) == int(len(ids) * 0.75)


def test_token_cache_is_compact_keyed_and_reused(tmp_path, monkeypatch):
    tok = CharTokenizer.from_text(TEXT)
    ids = encode_cached(TEXT, tok)
    files = list((tmp_path / "cache").glob("tokens-*.npy"))
    assert len(files) == 1 and ids.dtype == np.uint16
    assert np.load(files[0]).tolist() == tok.encode(TEXT)
    calls = []
    monkeypatch.setattr(tok, "encode", lambda text: calls.append(text) or [])
    assert encode_cached(TEXT, tok).tolist() == ids.tolist() and not calls  # read back, not re-encoded
    encode_cached(TEXT + "!", CharTokenizer.from_text(TEXT + "!"))  # another text: another file
    assert len(list((tmp_path / "cache").glob("tokens-*.npy"))) == 2


def test_damaged_cache_file_is_replaced(tmp_path):
    tok = CharTokenizer.from_text(TEXT)
    encode_cached(TEXT, tok)
    (path,) = (tmp_path / "cache").glob("tokens-*.npy")
    path.write_bytes(b"not numpy")
    assert encode_cached(TEXT, tok).tolist() == tok.encode(TEXT)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_load_dataset_refuses_bad_fraction(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("char", val_fraction=bad, text=TEXT)


def test_load_dataset_refuses_unknown_tokenizer():
    with pytest.raises(ValueError, match="'char' or 'gpt2'"):
        load_dataset("bpe", text=TEXT)


@pytest.mark.skipif(find_shakespeare() is None, reason="Tiny Shakespeare is not available offline here")
def test_shakespeare_char_dataset():
    ds = load_dataset("char")
    assert ds.tokenizer.vocab_size == 65
    assert len(ds.train) == 1_003_854 and len(ds.val) == 111_540  # 90% / 10% of 1,115,394 characters
    assert ds.tokenizer.decode(ds.train[:14].tolist()) == "First Citizen:"
