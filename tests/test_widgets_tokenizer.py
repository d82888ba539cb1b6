"""The tokenizer explorer: its HTML follows the text and the menu, counts match encode, nothing crashes."""

from __future__ import annotations

import html
import re

import pytest

from gptcourse import data
from gptcourse.tokenizers import CharTokenizer, GPT2Tokenizer
from gptcourse.widgets.tokenizer_explorer import (
    CHAR_NAME,
    GPT2_NAME,
    TOKENIZER_NAMES,
    get_tokenizer,
    token_pieces,
    token_spans_html,
    tokenizer_explorer,
)

needs_shakespeare = pytest.mark.skipif(
    data.find_shakespeare() is None, reason="Tiny Shakespeare is not available offline (set GPTCOURSE_DATA_DIR)"
)

SPAN = re.compile(r'<span class="gptcourse-token" data-id="(\d+)"[^>]*>(.*?)<br><small[^>]*>(\d+)</small></span>')


def spans(page: str) -> list[tuple[int, str]]:
    """(id, shown text) of every token span in the explorer's HTML; the id printed under it must agree."""
    found = SPAN.findall(page)
    assert all(i == shown_id for i, _, shown_id in found), "the id under a token differs from its data-id"
    assert len(found) == page.count('class="gptcourse-token"'), "a token span the pattern did not read"
    return [(int(i), html.unescape(t)) for i, t, _ in found]


def count_line(page: str) -> int:
    match = re.search(r"(\d+) tokens? from", page)
    assert match, "no 'N tokens' line in the HTML"
    return int(match.group(1))


TEXTS = ["Why is the sky blue?", "", " ", "a", "Hello, world!\nSecond line\twith a tab", "ROMEO: O, she doth teach"]


@pytest.mark.parametrize("text", TEXTS)
def test_gpt2_spans_are_the_encoding(text):
    tok = GPT2Tokenizer()
    page = token_spans_html(text, GPT2_NAME)
    ids = tok.encode(text)
    assert [i for i, _ in spans(page)] == ids
    assert count_line(page) == len(ids)
    assert str(ids) in html.unescape(page)  # the ids are printed
    # the shown pieces, with the visible markers for space/newline/tab undone, give back the text
    shown = "".join(t for _, t in spans(page)).replace("\u00b7", " ").replace("\u21b5", "\n").replace("\u2192", "\t")
    assert shown == text


def test_sky_is_blue_in_six_tokens():
    page = token_spans_html("Why is the sky blue?", GPT2_NAME)
    assert [i for i, _ in spans(page)] == [5195, 318, 262, 6766, 4171, 30]
    assert "6 tokens" in page


def test_html_is_escaped():
    page = token_spans_html("a <b>bold</b> & <script>x</script>", GPT2_NAME)
    assert "<b>" not in page and "<script>" not in page
    assert "&lt;" in page and "&amp;" in page


def test_neighbouring_tokens_get_different_colours():
    page = token_spans_html("one two three four five six seven eight nine ten", GPT2_NAME)
    colours = re.findall(r'class="gptcourse-token"[^>]*background:(#[0-9a-f]{6})', page)
    assert len(colours) == 10
    assert all(a != b for a, b in zip(colours, colours[1:]))


def test_partial_utf8_tokens_show_their_bytes():
    pieces = token_pieces("\u65e5\u672c", GPT2Tokenizer())  # two CJK characters, split across byte tokens
    assert len(pieces) > 2
    assert any("\\x" in piece for piece, _ in pieces)


def test_accepts_a_tokenizer_object():
    tok = CharTokenizer("abc ")
    page = token_spans_html("cab a", tok)
    assert [i for i, _ in spans(page)] == tok.encode("cab a")


def test_unknown_characters_are_reported_not_raised():
    tok = CharTokenizer("abc")
    page = token_spans_html("ab<z>&\u00e9", tok)
    assert [i for i, _ in spans(page)] == [0, 1]
    assert page.count('class="gptcourse-unknown"') == 5  # < z > & é
    assert "5 characters not in the vocabulary" in page
    assert count_line(page) == 2
    assert "<z>" not in page


def test_unknown_tokenizer_name():
    with pytest.raises(ValueError, match="GPT-2 BPE"):
        token_spans_html("x", "word tokenizer")
    with pytest.raises(ValueError, match="choose one of"):
        tokenizer_explorer(tokenizer="nope")


@needs_shakespeare
def test_char_tokenizer_is_shakespeares():
    tok = get_tokenizer(CHAR_NAME)
    assert tok == CharTokenizer.from_text(data.load_shakespeare())
    assert tok.vocab_size == 65
    page = token_spans_html("First Citizen:", CHAR_NAME)
    assert [i for i, _ in spans(page)] == tok.encode("First Citizen:")
    assert "vocabulary of 65" in page


@needs_shakespeare
def test_widget_follows_every_control():
    w = tokenizer_explorer("Why is the sky blue?")
    assert "gptcourse-tokenizer-explorer" in w._dom_classes
    assert w.text.description == "Text"
    assert list(w.choice.options) == list(TOKENIZER_NAMES)
    assert w.html.value == token_spans_html("Why is the sky blue?", GPT2_NAME)
    for name in TOKENIZER_NAMES:  # every menu entry, every kind of text
        w.choice.value = name
        tok = get_tokenizer(name)
        for text in TEXTS + ["To be, or not to be: that is the question."]:
            w.text.value = text
            if name == CHAR_NAME and "\t" in text:  # Shakespeare has no tab: marked unknown, the rest shown
                assert "1 character not in the vocabulary" in w.html.value
                text = text.replace("\t", "")
            assert count_line(w.html.value) == len(tok.encode(text))
            assert [i for i, _ in spans(w.html.value)] == tok.encode(text)
    # typing one character at a time: the view follows each keystroke
    w.choice.value = GPT2_NAME
    w.text.value = ""
    for n, _ in enumerate("hello world", start=1):
        w.text.value = "hello world"[:n]
        assert count_line(w.html.value) == len(GPT2Tokenizer().encode("hello world"[:n]))


@needs_shakespeare
def test_widget_char_tokenizer_with_unknown_text_shows_a_message():
    w = tokenizer_explorer("", CHAR_NAME)
    w.text.value = "caf\u00e9 <tag>"
    assert "not in the vocabulary" in w.html.value
    w.text.value = "cafe"
    assert "not in the vocabulary" not in w.html.value
    assert count_line(w.html.value) == 4


def test_widget_without_the_dataset_shows_the_error(monkeypatch, tmp_path):
    get_tokenizer.cache_clear()
    monkeypatch.setenv("GPTCOURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))

    def no_network(dest):
        raise RuntimeError("could not download Tiny Shakespeare (offline)")

    monkeypatch.setattr(data, "_download", no_network)
    try:
        w = tokenizer_explorer("hello")
        w.choice.value = CHAR_NAME  # must not raise inside the widget callback
        assert "could not download" in w.html.value
        w.choice.value = GPT2_NAME
        assert count_line(w.html.value) == 1
    finally:
        get_tokenizer.cache_clear()


@needs_shakespeare
def test_saved_notebook_gets_a_static_snapshot():
    w = tokenizer_explorer("a <b> & c")
    w.text.value = "Why is the sky blue?"
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget is still there
    assert "Tokenizer explorer" in bundle["text/plain"]
    assert w.html.value in bundle["text/html"]  # the current view, not the initial one
    assert "6 tokens" in bundle["text/html"]
    w.text.value = "<&>"
    assert "Text: &lt;&amp;&gt;" in w._repr_mimebundle_()["text/html"]
