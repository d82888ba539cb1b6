"""What a saved notebook shows of an explorer: its live widget needs a running kernel, so beside it each
explorer leaves a static snapshot of its current view (HTML, figures as PNG) for readers without one.
"""

from __future__ import annotations

import base64
import html
import io

from matplotlib.figure import Figure

__all__ = ["Snapshot", "figure_html"]


class Snapshot:
    """Mixin for an ipywidgets explorer: its display carries a static HTML snapshot and a one-line text.

    Put it before the widget class (`class MyExplorer(Snapshot, widgets.VBox)`), name the explorer in
    `snapshot_name`, say what running it lets the reader do in `snapshot_invite`, and define `snapshot()`.
    """

    snapshot_name = "explorer"
    snapshot_invite = "change the settings"

    def snapshot(self) -> tuple[str, str]:
        """(the current settings in words, the current view as HTML)."""
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs) -> dict:
        data = super()._repr_mimebundle_(**kwargs)
        settings, view = self.snapshot()
        data["text/plain"] = f"{self.snapshot_name.capitalize()}: run the notebook to {self.snapshot_invite}."
        data["text/html"] = (f"<p><i>A snapshot of the {self.snapshot_name} ({html.escape(settings)}); run the "
                             f"notebook to {self.snapshot_invite}.</i></p>{view}")
        return data


def figure_html(fig: Figure, alt: str = "") -> str:
    """A matplotlib Figure as an `<img>` holding its PNG (base64), so the page needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'
