"""Which columns of a table fit the screen: the least needed ones go first when it is narrow.

Every table of the dashboard declares its columns once with a `drop` rank (0:
always shown; the highest rank is dropped first) and at most one flexible
column that takes the width left over. At 80 columns a trader keeps what they
act on (level, queued, late by, why) and loses the provenance, which the detail
panes still show; at 120 columns nothing a decision rests on is cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FLEX_FLOOR = 8


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # cells; for the flexible column, what it wants at least while others can go
    drop: int = 0  # 0: always shown; when the screen is narrow the highest rank goes first
    flex: bool = False  # takes the width left over
    right: bool = False  # numbers: right-aligned


def fit(columns: Sequence[Column], width: int, *, gap: int = 2) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells (each followed by `gap`), with the width each gets."""
    shown = list(columns)
    while True:
        needed = sum(c.width + gap for c in shown)
        droppable = [c for c in shown if c.drop]
        if needed <= width or not droppable:
            break
        worst = max(droppable, key=lambda c: c.drop)
        shown.remove(worst)
    # Once nothing else can go, the flexible column gives up its own cells (down to a few).
    spare = width - needed
    return [(c, max(FLEX_FLOOR, c.width + spare) if c.flex else c.width) for c in shown]
