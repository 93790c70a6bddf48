"""A keyed DataTable that takes the rows it should show and writes only the cells that changed.

The first cell of every row is a `KeyedCell`: it draws like text but carries the
row's key, so the rows can be put in our order with `DataTable.sort` (moving the
cursor with its row) instead of being cleared and re-added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable


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
    """`sync(rows)` makes the table show `rows` (key, cells) in that order."""

    def __init__(self, columns: Sequence[tuple[str, str, int | None]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = tuple(columns)
        self._order: list[str] = []
        self._cells: dict[str, list[tuple[str, str]]] = {}

    def on_mount(self) -> None:
        for key, label, width in self._columns:
            self.add_column(label, key=key, width=width)

    @property
    def order(self) -> list[str]:
        return self._order

    def key_at_cursor(self) -> str | None:
        if 0 <= self.cursor_row < len(self._order):
            return self._order[self.cursor_row]
        return None

    def sync(self, rows: Sequence[tuple[str, Sequence[Text]]]) -> None:
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
        added: list[str] = []
        column_keys = [key for key, _, _ in self._columns]
        for key, cells in rows:
            signature = [cell_signature(c) for c in cells]
            known = self._cells.get(key)
            if known is None:
                self.add_row(KeyedCell(key, cells[0]), *cells[1:], key=key)
                added.append(key)
            elif known != signature:
                for index, (old, new) in enumerate(zip(known, signature, strict=True)):
                    if old != new:
                        value: Any = KeyedCell(key, cells[0]) if index == 0 else cells[index]
                        auto_width = self._columns[index][2] is None
                        self.update_cell(key, column_keys[index], value, update_width=auto_width)
            self._cells[key] = signature
        if kept + added != wanted:
            rank = {key: i for i, key in enumerate(wanted)}
            self.sort(column_keys[0], key=lambda cell: rank[cell.key])
        self._order = wanted
        if selected is not None and selected in wanted_set:
            index = wanted.index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)
