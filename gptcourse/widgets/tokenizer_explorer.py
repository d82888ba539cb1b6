"""Lesson 01's tokenizer explorer: type text, see how a tokenizer cuts it, each token coloured, with its id.

The logic is `token_spans_html` (a plain function that returns HTML, tested); `tokenizer_explorer` wraps it
in a text box, a tokenizer menu and an HTML view that follows every change.
"""

from __future__ import annotations

import functools
import html

import ipywidgets as widgets

from ..data import load_shakespeare
from ..tokenizers import CharTokenizer, GPT2Tokenizer
from .snapshot import Snapshot

__all__ = ["TOKENIZER_NAMES", "PALETTE", "get_tokenizer", "token_pieces", "token_spans_html", "TokenizerExplorer",
           "tokenizer_explorer"]

GPT2_NAME = "GPT-2 BPE"
CHAR_NAME = "characters (Shakespeare)"
TOKENIZER_NAMES = (GPT2_NAME, CHAR_NAME)

# Light colours that keep black text readable; neighbouring tokens always differ.
PALETTE = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#f5d0fe")

# Each token is a small box: its text on top, its id underneath.
BOX = "display:inline-block;text-align:center;vertical-align:top;padding:1px 3px;margin:2px 1px;border-radius:3px"

# How invisible characters are drawn inside a token, so a leading space or a newline can be seen.
VISIBLE = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}


@functools.cache
def get_tokenizer(name: str) -> CharTokenizer | GPT2Tokenizer:
    """The tokenizer behind a menu entry (the character one is built from Tiny Shakespeare, once)."""
    if name == GPT2_NAME:
        return GPT2Tokenizer()
    if name == CHAR_NAME:
        return CharTokenizer.from_text(load_shakespeare())
    raise ValueError(f"unknown tokenizer {name!r}; choose one of: {', '.join(map(repr, TOKENIZER_NAMES))}")


def token_pieces(text: str, tokenizer: CharTokenizer | GPT2Tokenizer) -> list[tuple[str, int | None]]:
    """The text cut into (piece, id) pairs; id None marks a character the character tokenizer lacks.

    A BPE token that holds only part of a character's UTF-8 bytes shows as those bytes, e.g. `\\xe6\\x97`.
    """
    if isinstance(tokenizer, GPT2Tokenizer):
        ids = tokenizer.encode(text)
        return [(tokenizer.encoding.decode_single_token_bytes(i).decode("utf-8", "backslashreplace"), i) for i in ids]
    return [(ch, tokenizer.stoi.get(ch)) for ch in text]


def _show(piece: str) -> str:
    return html.escape("".join(VISIBLE.get(ch, ch) for ch in piece))


def token_spans_html(text: str, tokenizer: str | CharTokenizer | GPT2Tokenizer = GPT2_NAME) -> str:
    """HTML showing `text` cut into tokens: one coloured `<span class="gptcourse-token">` each, its id under it.

    `tokenizer` is a menu name from TOKENIZER_NAMES or a tokenizer object. Characters the character
    tokenizer does not know are marked in red with a message, never an exception.
    """
    tok = get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    pieces = token_pieces(text, tok)
    spans, ids, unknown = [], [], []
    for i, (piece, token_id) in enumerate(pieces):
        if token_id is None:
            unknown.append(piece)
            spans.append(
                f'<span class="gptcourse-unknown" title="not in the vocabulary" style="background:#ef4444;'
                f'color:white;{BOX}">{_show(piece)}<br><small style="font-size:70%">?</small></span>'
            )
            continue
        ids.append(token_id)
        colour = PALETTE[i % len(PALETTE)]
        spans.append(
            f'<span class="gptcourse-token" data-id="{token_id}" title="id {token_id}" style="background:{colour};'
            f'color:black;{BOX}">{_show(piece)}<br><small style="font-size:70%;color:#444">{token_id}</small></span>'
        )
    n = len(ids)
    count = f"{n} token{'' if n == 1 else 's'}"
    summary = f"{count} from {len(text)} characters, vocabulary of {tok.vocab_size:,}"
    parts = [
        '<div class="gptcourse-token-view" style="font-family:monospace;white-space:pre-wrap">',
        f'<div style="line-height:1.4">{"".join(spans) if spans else "<i>(empty text: type something)</i>"}</div>',
        f'<div class="gptcourse-token-count">{summary}</div>',
        f'<div class="gptcourse-token-ids">ids: {html.escape(str(ids))}</div>',
    ]
    if unknown:
        shown = ", ".join(html.escape(repr(ch)) for ch in dict.fromkeys(unknown))
        parts.append(
            f'<div class="gptcourse-token-warning" style="color:#b91c1c">{len(unknown)} character'
            f"{'' if len(unknown) == 1 else 's'} not in the vocabulary ({shown}): the character tokenizer knows "
            f"only the {tok.vocab_size} characters of its training text; GPT-2's BPE can encode any text.</div>"
        )
    parts.append("</div>")
    return "".join(parts)


class TokenizerExplorer(Snapshot, widgets.VBox):
    """A text box and a tokenizer menu above the coloured tokens; `.text`, `.choice`, `.html` are the parts."""

    snapshot_name = "tokenizer explorer"
    snapshot_invite = "type your own text"

    def __init__(self, initial_text: str = "Why is the sky blue?", tokenizer: str = GPT2_NAME):
        if tokenizer not in TOKENIZER_NAMES:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of: {', '.join(TOKENIZER_NAMES)}")
        self.text = widgets.Textarea(value=initial_text, description="Text", continuous_update=True,
                                     layout=widgets.Layout(width="95%"))
        self.choice = widgets.Dropdown(options=list(TOKENIZER_NAMES), value=tokenizer, description="Tokenizer")
        self.html = widgets.HTML()
        super().__init__(children=[self.text, self.choice, self.html])
        self.add_class("gptcourse-tokenizer-explorer")
        self.text.observe(self._update, names="value")
        self.choice.observe(self._update, names="value")
        self._update()

    def snapshot(self) -> tuple[str, str]:
        return self.choice.value, f"<p>Text: {html.escape(self.text.value)}</p>{self.html.value}"

    def _update(self, change: dict | None = None) -> None:
        try:
            self.html.value = token_spans_html(self.text.value, self.choice.value)
        except (OSError, RuntimeError, ValueError) as err:  # e.g. no Shakespeare offline: say so, keep going
            message = html.escape(str(err))
            self.html.value = f'<div class="gptcourse-token-warning" style="color:#b91c1c">{message}</div>'


def tokenizer_explorer(initial_text: str = "Why is the sky blue?", tokenizer: str = GPT2_NAME) -> TokenizerExplorer:
    """The explorer widget; display it as a notebook cell's last expression."""
    return TokenizerExplorer(initial_text, tokenizer)
