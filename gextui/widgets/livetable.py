"""A keyed DataTable that takes the rows it should show and writes only the cells that changed.

The first cell of every row is a `KeyedCell`: it draws like text but carries the
row's key, so the rows can be put in our order with `DataTable.sort` (moving the
cursor with its row) instead of being cleared and re-added. The columns that
fit the width are shown (`gextui.columns.fit`); when a resize changes which,
the table is rebuilt from the cells it holds (these tables hold a few hundred
rows at most).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from gextui.columns import Column, fit

Row = tuple[str, Mapping[str, Text]]  # key, cells by column key


class KeyedCell:
    __slots__ = ("key", "text")

    def __init__(self, key: str, text: Text) -> None:
        self.key = key
        self.text = text

    def __rich__(self) -> Text:
        return self.text


def cell_signature(cell: Text) -> tuple[str, str]:
    return cell.plain, str(cell.style)


class LiveTable(DataTable[Any]):
    """`sync(rows)` makes the table show `rows` (key, cells by column) in that order."""

    def __init__(self, columns: Sequence[Column], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._all_columns = tuple(columns)
        self._shown: list[tuple[Column, int]] = []
        self._order: list[str] = []
        self._rows: dict[str, Mapping[str, Text]] = {}
        self._cells: dict[str, list[tuple[str, str]]] = {}

    @property
    def order(self) -> list[str]:
        return self._order

    @property
    def shown_keys(self) -> list[str]:
        """The keys of the columns on screen, left to right."""
        return [column.key for column, _ in self._shown]

    def key_at_cursor(self) -> str | None:
        if 0 <= self.cursor_row < len(self._order):
            return self._order[self.cursor_row]
        return None

    def on_resize(self, event: events.Resize) -> None:
        self._fit_columns(event.size.width)

    def _fit_columns(self, width: int) -> None:
        # DataTable pads each cell by one on both sides; the scrollbar takes two.
        shown = fit(self._all_columns, max(0, width - 2), gap=2)
        if [c.key for c, _ in shown] == self.shown_keys and shown == self._shown:
            return
        selected = self.key_at_cursor()
        self._shown = shown
        self.clear(columns=True)
        self._cells.clear()
        for column, col_width in shown:
            self.add_column(column.label, key=column.key, width=col_width)
        rows = [(key, self._rows[key]) for key in self._order]
        self._order = []
        self.sync(rows)
        if selected in self._order:
            self.move_cursor(row=self._order.index(selected), animate=False, scroll=False)

    def sync(self, rows: Sequence[Row]) -> None:
        if not self._shown:
            self._fit_columns(self.size.width or 80)
        wanted = [key for key, _ in rows]
        wanted_set = set(wanted)
        selected = self.key_at_cursor()
        stale = [k for k in self._order if k not in wanted_set]
        if self._order and len(stale) > max(20, len(self._order) // 2):
            self.clear()
            self._cells.clear()
            kept: list[str] = []
        else:
            for key in stale:
                self.remove_row(key)
                self._cells.pop(key, None)
            kept = [k for k in self._order if k in wanted_set]
        self._rows = dict(rows)
        added: list[str] = []
        keys = self.shown_keys
        for key, all_cells in rows:
            cells = [self._aligned(all_cells.get(k) or Text(""), k) for k in keys]
            signature = [cell_signature(c) for c in cells]
            known = self._cells.get(key)
            if known is None:
                self.add_row(KeyedCell(key, cells[0]), *cells[1:], key=key)
                added.append(key)
            elif known != signature:
                for index, (old, new) in enumerate(zip(known, signature, strict=True)):
                    if old != new:
                        value: Any = KeyedCell(key, cells[0]) if index == 0 else cells[index]
                        self.update_cell(key, keys[index], value)
            self._cells[key] = signature
        if kept + added != wanted:
            rank = {key: i for i, key in enumerate(wanted)}
            self.sort(keys[0], key=lambda cell: rank[cell.key])
        self._order = wanted
        if selected is not None and selected in wanted_set:
            index = wanted.index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _aligned(self, cell: Text, key: str) -> Text:
        column = next(c for c, _ in self._shown if c.key == key)
        if column.right:
            cell = cell.copy()
            cell.justify = "right"
        return cell
