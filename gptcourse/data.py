"""Tiny Shakespeare: found locally, or downloaded once, verified and cached."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

__all__ = ["SHAKESPEARE_URL", "SHAKESPEARE_SHA256", "find_shakespeare", "load_shakespeare", "cache_dir"]

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
