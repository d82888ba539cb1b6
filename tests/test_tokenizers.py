import hashlib
import os
from importlib import resources

import pytest
import tiktoken

from gptcourse.tokenizers import CharTokenizer, GPT2Tokenizer, gpt2_encoding, tokenizer_from_dict

SAMPLES = [
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "def f(x):\n    return x ** 2  # square\n\tdone",
    "Café naïve résumé, Ærøskøbing, Straße",
    "日本語のテキストと中文文本",
    "emoji 👋🏽🚀 and ZWJ 👨‍👩‍👧",
    "   many    spaces\n\n\n   and\ttabs  ",
    "Why is the sky blue?<|endoftext|>Because of Rayleigh scattering.",
    "",
    "1234567890 3.14159 -42",
]
R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"


def test_known_ids():
    enc = gpt2_encoding()
    assert enc.n_vocab == 50257 and enc.eot_token == 50256
    assert enc.encode("Hello world") == [15496, 995]
    assert GPT2Tokenizer().encode("Why is the sky blue?") == [5195, 318, 262, 6766, 4171, 30]


def _reference_encoding(tmp_path):
    """tiktoken's own GPT-2 encoding; offline, its r50k_base (same ranks and pattern) from a local cache."""
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception:
        pass
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    ranks = resources.files("gptcourse") / "assets" / "gpt2.tiktoken"
    (cache / hashlib.sha1(R50K_URL.encode()).hexdigest()).write_bytes(ranks.read_bytes())
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        from tiktoken import registry

        registry.ENCODINGS.pop("r50k_base", None)
        return tiktoken.get_encoding("r50k_base")
    finally:
        if old is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


@pytest.mark.parametrize("text", SAMPLES)
def test_encodes_exactly_as_tiktoken(tmp_path, text):
    ref = _reference_encoding(tmp_path)
    ours = gpt2_encoding()
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert ours.decode(ours.encode(text, allowed_special="all")) == text


def test_gpt2_tokenizer_roundtrip_and_special():
    tok = GPT2Tokenizer()
    ids = tok.encode("a<|endoftext|>b")
    assert 50256 in ids and tok.decode(ids) == "a<|endoftext|>b"
    assert "".join(tok.pieces("Why is the sky blue?")) == "Why is the sky blue?"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([50257])


def test_char_tokenizer():
    tok = CharTokenizer.from_text("hello world")
    assert tok.vocab_size == 8 and tok.chars[0] == " "
    assert tok.decode(tok.encode("hello")) == "hello"
    with pytest.raises(ValueError, match="'z' is not in this tokenizer's vocabulary"):
        tok.encode("zebra")
    assert tokenizer_from_dict(tok.to_dict()) == tok
    assert tokenizer_from_dict(GPT2Tokenizer().to_dict()) == GPT2Tokenizer()
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "sentencepiece"})
