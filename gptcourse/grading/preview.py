"""Preview cells in the exercises: `with preview():` shows what your function gives, or TODO while it is a stub.

A cell that only prints an example (`print(causal_mask(4).int())`) would raise NotImplementedError until
the exercise is written, and stop Run All before the later exercises and their checks. Inside `preview()`
the stub prints one TODO line instead; any other error is raised as usual, since it comes from your code
and its traceback is what you need.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .core import _todo_message

__all__ = ["preview"]


@contextlib.contextmanager
def preview() -> Iterator[None]:
    """Run the block; if a stub raises NotImplementedError, print `TODO <function>: not done yet: ...`."""
    try:
        yield
    except NotImplementedError as err:
        print(f"TODO {_stub_name(err)}: {_todo_message(err)}", flush=True)


def _stub_name(err: BaseException) -> str:
    """The function whose stub raised (`CharTok.__init__`, `causal_mask`), or 'this cell'."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    if code is None or code.co_name == "<module>":
        return "this cell"
    return getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
