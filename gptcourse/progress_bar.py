"""How a training run reports as it goes: a progress bar, a few lines of text, and a summary at the end.

In a terminal: tqdm's bar on stderr, with the lines written above it. In a notebook: tqdm's widget shown
through a display handle and the lines printed to stdout; at the end the bar is replaced by a one-line
summary of the run. So a saved notebook shows how the run ended, never a bar frozen part-way, and no
stderr (which notebooks draw as error boxes).
"""

from __future__ import annotations

import sys

__all__ = ["Progress", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where output goes to a notebook), False in a terminal or a plain script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


class Progress:
    """A bar over steps `initial..total`, text lines, and `close(summary)`; all silent when not `enabled`."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
        self.enabled, self.notebook, self.handle = enabled, enabled and in_notebook(), None
        options = dict(total=total, initial=initial, desc=desc, unit="step", disable=not enabled)
        if self.notebook:
            from IPython.display import display
            from tqdm.notebook import tqdm as notebook_tqdm

            self.bar = notebook_tqdm(**options, display=False)
            self.handle = display(self.bar.container, display_id=True)
        else:
            from tqdm import tqdm

            self.bar = tqdm(**options, dynamic_ncols=True, file=sys.stderr)

    def say(self, text: str) -> None:
        """A line of text: to stdout in a notebook, above the bar on stderr in a terminal."""
        if not self.enabled:
            return
        if self.notebook:
            print(text, flush=True)
        else:
            self.bar.write(text, file=sys.stderr)

    def update(self, steps: int = 1, loss: float | None = None) -> None:
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.bar.update(steps)

    def close(self, summary: str = "") -> None:
        """End the bar; in a notebook the widget gives way to `summary` (one line of text)."""
        self.bar.close()
        if self.handle is not None:
            self.handle.update({"text/plain": summary or "training ended"}, raw=True)
            self.bar.container.close()  # the widget is gone from the page: free its state in the kernel
