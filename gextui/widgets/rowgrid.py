"""The live jobs table: keyed rows, each drawn once per change and then served from a cache.

Textual's DataTable re-renders every visible cell whenever any cell of the table
changes (its render caches are keyed by one table-wide update counter); with a
live queue changing at every flush that made each screen update cost ~100 ms at
10,000 jobs. Here each row keeps its own rendered line, rebuilt only when one of
its cells changed (or the cursor moved onto or off it), so a flush that touches
three rows repaints three lines. It keeps the DataTable's habits: a fixed header
(click to sort), a row cursor moved by the arrow keys, page keys, home/end and
the mouse, Enter to select, zebra stripes. The columns that fit the width are
drawn (`gextui.columns.fit`): a narrow terminal loses the least needed ones
instead of cutting every column short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gextui.actions import BindingList
from gextui.columns import Column, fit

CELL_GAP = 1  # spaces on each side of a cell, as DataTable's cell padding


class _GridMessage(Message):
    """A message about one grid; `control` lets a handler pick the grid with a selector."""

    def __init__(self, grid: RowGrid) -> None:
        super().__init__()
        self.grid = grid

    @property
    def control(self) -> RowGrid:
        return self.grid


class RowGrid(ScrollView, can_focus=True):
    """Rows keyed by id, each a dict of column -> Text; `show(rows)` sets rows and order."""

    BINDINGS: ClassVar[BindingList] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowgrid--header",
        "rowgrid--cursor",
        "rowgrid--zebra",
    }
    DEFAULT_CSS = """
    RowGrid {
        background: $surface;
        scrollbar-gutter: stable;
    }
    RowGrid > .rowgrid--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    RowGrid > .rowgrid--zebra {
        background: $surface-lighten-1;
    }
    RowGrid > .rowgrid--cursor {
        background: $block-cursor-blurred-background;
    }
    RowGrid:focus > .rowgrid--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    """

    cursor_row: reactive[int] = reactive(0)

    class Highlighted(_GridMessage):
        def __init__(self, grid: RowGrid, key: str | None) -> None:
            super().__init__(grid)
            self.key = key

    class Selected(_GridMessage):
        def __init__(self, grid: RowGrid, key: str) -> None:
            super().__init__(grid)
            self.key = key

    class HeaderClicked(_GridMessage):
        def __init__(self, grid: RowGrid, column: str) -> None:
            super().__init__(grid)
            self.column = column

    def __init__(self, columns: Sequence[Column], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = tuple(columns)
        self._fitted: tuple[int, list[tuple[Column, int]]] | None = None
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, dict[str, Text]] = {}
        self._versions: dict[str, int] = {}
        self._lines: dict[str, tuple[tuple[Any, ...], Strip]] = {}
        self._header: tuple[tuple[Any, ...], Strip] | None = None
        self.header_marks: dict[str, str] = {}
        self.rendered_rows = 0  # rows drawn (not served from the cache): the benchmark reads it

    # -- contents ----------------------------------------------------------------

    @property
    def shown_columns(self) -> list[tuple[Column, int]]:
        """The columns drawn at the current width, each with its width."""
        width = self.scrollable_content_region.width
        if self._fitted is None or self._fitted[0] != width:
            self._fitted = (width, fit(self.columns, width, gap=2 * CELL_GAP))
            self._lines.clear()
            self._header = None
        return self._fitted[1]

    @property
    def row_width(self) -> int:
        return sum(width + 2 * CELL_GAP for _, width in self.shown_columns)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.row_width, len(self._order) + 1)
        self.refresh()

    @property
    def order(self) -> list[str]:
        return self._order

    @property
    def row_count(self) -> int:
        return len(self._order)

    def key_at_cursor(self) -> str | None:
        if 0 <= self.cursor_row < len(self._order):
            return self._order[self.cursor_row]
        return None

    def set_cells(self, key: str, cells: Mapping[str, Text]) -> int:
        """Merge `cells` into row `key` (created if new); returns how many cells changed."""
        known = self._cells.get(key)
        if known is None:
            self._cells[key] = dict(cells)
            self._versions[key] = 0
            return len(cells)
        changed = 0
        for column, text in cells.items():
            old = known.get(column)
            if (
                old is None
                or old.plain != text.plain
                or old.style != text.style
                or old.spans != text.spans
            ):
                known[column] = text
                changed += 1
        if changed:
            self._versions[key] += 1
        return changed

    def show(self, order: Sequence[str]) -> None:
        """Show the rows `order` (keys given to `set_cells`), in that order; forget the others."""
        selected = self.key_at_cursor()
        self._order = list(order)
        self._index = {key: i for i, key in enumerate(self._order)}
        for key in [k for k in self._cells if k not in self._index]:
            del self._cells[key]
            self._versions.pop(key, None)
            self._lines.pop(key, None)
        self.virtual_size = Size(self.row_width, len(self._order) + 1)
        if selected is not None and selected in self._index:
            self.set_reactive(RowGrid.cursor_row, self._index[selected])
        elif self._order:
            self.set_reactive(RowGrid.cursor_row, min(self.cursor_row, len(self._order) - 1))
        self.refresh()

    def refresh_row(self, key: str) -> None:
        index = self._index.get(key)
        if index is not None:
            self.refresh_line(index + 1)  # the header is line 0

    def visible_keys(self, margin: int = 2) -> list[str]:
        first = max(0, int(self.scroll_offset.y) - margin)
        return self._order[first : first + self.size.height + 2 * margin]

    # -- drawing -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x = int(self.scroll_offset.x)
        if y == 0:
            return self._header_strip().crop(scroll_x, scroll_x + width)
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._order):
            return Strip.blank(width, self.rich_style)
        return self._row_strip(self._order[index], index).crop(scroll_x, scroll_x + width)

    def _header_strip(self) -> Strip:
        style = self.get_component_rich_style("rowgrid--header")
        cache_key = (style, tuple(sorted(self.header_marks.items())), self.size.width)
        if self._header is not None and self._header[0] == cache_key:
            return self._header[1]
        text = Text(style=style)
        for column, width in self.shown_columns:
            label = (column.label + self.header_marks.get(column.key, ""))[:width]
            label = label.rjust(width) if column.right else label.ljust(width)
            text.append(" " * CELL_GAP + label + " " * CELL_GAP)
        strip = self._to_strip(text)
        self._header = (cache_key, strip)
        return strip

    def _row_strip(self, key: str, index: int) -> Strip:
        cursor = index == self.cursor_row
        if cursor:
            base = self.get_component_rich_style("rowgrid--cursor")
        elif index % 2:
            base = self.get_component_rich_style("rowgrid--zebra")
        else:
            base = self.rich_style
        cache_key = (self._versions.get(key), cursor, index % 2, self.has_focus, base)
        cached = self._lines.get(key)
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        cells = self._cells[key]
        text = Text(style=base, no_wrap=True, overflow="ellipsis")
        pad = " " * CELL_GAP
        for column, width in self.shown_columns:
            cell = cells.get(column.key) or Text("")
            shown = cell.copy()
            if column.right and cell.cell_len < width:
                shown.pad_left(width - cell.cell_len)
            shown.truncate(width, overflow="ellipsis", pad=True)
            text.append(pad)
            text.append_text(shown)
            text.append(pad)
        strip = self._to_strip(text)
        self._lines[key] = (cache_key, strip)
        self.rendered_rows += 1
        return strip

    def _to_strip(self, text: Text) -> Strip:
        segments = list(text.render(self.app.console, end=""))
        length = Segment.get_line_length(segments)
        if length < self.row_width:
            segments.append(
                Segment(
                    " " * (self.row_width - length),
                    text.style if isinstance(text.style, Style) else None,
                )
            )
        return Strip(segments, max(length, self.row_width))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- the cursor -----------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        for index in (old, new):
            if 0 <= index < len(self._order):
                self.refresh_row(self._order[index])
        self._scroll_to_cursor()
        self.post_message(self.Highlighted(self, self.key_at_cursor()))

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self._order) - 1)) if self._order else 0

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        self.cursor_row = row

    def _scroll_to_cursor(self) -> None:
        rows_on_screen = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + rows_on_screen:
            self.scroll_to(y=self.cursor_row - rows_on_screen + 1, animate=False)

    def action_cursor(self, step: int) -> None:
        self.cursor_row += step

    def action_page(self, direction: int) -> None:
        self.cursor_row += direction * max(1, self.size.height - 2)

    def action_jump(self, where: int) -> None:
        self.cursor_row = 0 if where == 0 else len(self._order) - 1

    def action_select(self) -> None:
        key = self.key_at_cursor()
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            x = event.x + int(self.scroll_offset.x)
            edge = 0
            for column, width in self.shown_columns:
                edge += width + 2 * CELL_GAP
                if x < edge:
                    self.post_message(self.HeaderClicked(self, column.key))
                    return
            return
        index = int(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self._order):
            self.cursor_row = index
            if event.chain >= 2:
                self.action_select()
