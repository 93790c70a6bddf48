"""A titled sparkline scaled from zero, over a time axis that says what its samples cover."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from gextui import readout

BAR_STYLE = "#5fafd7"


class LabelledSpark(Widget):
    """A title line (name and latest value), bars from zero to the largest value, a time axis.

    Textual's Sparkline scales from the smallest value to the largest, so a flat
    line reads as empty and 1 next to 2 as nothing next to everything; a trader
    glancing at "queued" must see how much, not only which way it moved. The
    axis under the bars names the instants of the first and last sample shown,
    so the window is the real one, whatever the poll rate did.
    """

    DEFAULT_CSS = """
    LabelledSpark {
        height: 4;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, title: str, *, id: str | None = None, ceiling: float | None = None) -> None:
        super().__init__(id=id, classes="spark-box")
        self.title = title
        self.ceiling = ceiling
        self.values: list[float] = []
        self.cell_styles: Sequence[str] | None = None
        self.axis = ("", "")
        self.latest = "-"

    def show(
        self,
        values: Sequence[float],
        *,
        axis: tuple[str, str],
        latest: str,
        cell_styles: Sequence[str] | None = None,
    ) -> None:
        """`axis`: the words under the first and the last sample; `cell_styles` colour each sample."""
        self.values = list(values)
        self.axis = axis
        self.latest = latest
        self.cell_styles = cell_styles
        self.refresh()

    def render(self) -> RenderResult:
        width = max(1, self.size.width)
        bars = max(1, self.size.height - 2)
        lines = [Text.assemble((self.title, "dim"), "  ", (self.latest, "bold"), no_wrap=True)]
        styles = self._styles(width)
        for row in readout.spark_rows(self.values, width, bars, ceiling=self.ceiling):
            line = Text(no_wrap=True)
            for i, mark in enumerate(row):
                line.append(mark, style=styles[i])
            lines.append(line)
        first, last = self.axis
        gap = max(1, width - len(first) - len(last))
        lines.append(Text(first + " " * gap + last, style="dim", no_wrap=True))
        drawn = Text("\n").join(lines)
        drawn.no_wrap = True
        drawn.overflow = "ellipsis"
        return drawn

    def _styles(self, width: int) -> list[str]:
        """A style per cell, right-aligned like the bars; a run of samples takes its last one's."""
        if self.cell_styles is None or not self.values:
            return [BAR_STYLE] * width
        samples = len(self.values)
        if samples <= width:
            return [BAR_STYLE] * (width - samples) + list(self.cell_styles)
        return [self.cell_styles[round((i + 1) * samples / width) - 1] for i in range(width)]
