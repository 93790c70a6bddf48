"""The GEX strike ladder as lines of text: bands of strikes around a centre, levels and walls marked.

Reads like a price ladder: highest strike at the top, negative net GEX as red
bars left of the axis, positive as green bars right of it. Spot and zero gamma
are dashed lines where they fall between strikes; the call and put walls are
tagged on their strike. A level or wall outside the strikes shown is named on
the top or bottom edge, with the key that jumps to it, so scrolling never hides
where the walls are. Zoomed out, each row is a band of strikes with their net
GEX summed. Plain functions (no Textual): the view keeps the centre and zoom.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from gexdaemon.core.vocab import GexUnit
from gexdaemon.protocol import shapes as s
from gextui import readout

POSITIVE = "#5fd75f"
NEGATIVE = "#ff5f5f"
EIGHTHS = " ▏▎▍▌▋▊▉"
ZOOMS = (1, 2, 5, 10, 25)  # strikes per row


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    net_gex: float

    def holds(self, price: float | None) -> bool:
        return price is not None and self.low - 1e-6 <= price <= self.high + 1e-6


@dataclass(frozen=True)
class Level:
    """A price the desk watches: drawn as a line (spot, zero γ) or a tag on its band (walls)."""

    name: str
    price: float
    key: str  # the key that centres the ladder on it
    style: str
    line: bool  # a line between bands, or a tag on the band that holds it


def bands(strikes: Sequence[s.StrikeRow], per_row: int) -> list[Band]:
    """Strikes ascending, `per_row` to a band, net GEX summed."""
    ordered = sorted(strikes, key=lambda k: k.strike_price)
    out = []
    for i in range(0, len(ordered), per_row):
        group = ordered[i : i + per_row]
        out.append(
            Band(
                group[0].strike_price,
                group[-1].strike_price,
                sum(k.net_gex or 0.0 for k in group),
            )
        )
    return out


def levels_of(snap: s.SnapshotSummary) -> list[Level]:
    found = [
        Level("spot", snap.spot_price, ".", "bold #ffd75f", line=True),
        Level("zero γ", snap.zero_gamma, "z", "bold #d787ff", line=True)
        if snap.zero_gamma is not None
        else None,
        Level("CALL WALL", snap.call_wall, "c", f"bold {POSITIVE}", line=False)
        if snap.call_wall is not None
        else None,
        Level("PUT WALL", snap.put_wall, "p", f"bold {NEGATIVE}", line=False)
        if snap.put_wall is not None
        else None,
    ]
    return [level for level in found if level is not None]


def band_window(rows: Sequence[Band], centre: float, count: int) -> tuple[int, int]:
    """Indexes [lo, hi) of the `count` bands nearest `centre` (bands ascending)."""
    if count <= 0 or not rows:
        return 0, 0
    mid = bisect.bisect_left([b.high for b in rows], centre)
    lo = max(0, mid - count // 2)
    hi = min(len(rows), lo + count)
    return max(0, hi - count), hi


def _right_bar(cells: float) -> str:
    whole = int(cells)
    part = EIGHTHS[int((cells - whole) * 8)] if whole < cells else ""
    return ("█" * whole + part).rstrip()


def _left_bar(cells: float) -> str:
    whole = int(cells)
    return ("▐" if cells - whole >= 0.5 else "") + "█" * whole


def _label(band: Band) -> str:
    if band.low == band.high:
        return readout.price(band.low)
    return f"{band.low:,.0f}–{band.high:,.0f}"


@dataclass(frozen=True)
class Ladder:
    """What was drawn: the lines, and which bands and levels are on screen (tests read it)."""

    lines: list[Text]
    shown: tuple[int, int]
    above: list[Level]
    below: list[Level]


def gex_ladder(
    snap: s.SnapshotView,
    width: int,
    height: int,
    *,
    centre: float | None = None,
    per_row: int = 1,
) -> Ladder:
    """The ladder's lines, `height` at most and `width` wide, centred on `centre` (default spot)."""
    rows = bands(snap.strikes, per_row)
    if not rows:
        return Ladder([Text("This snapshot has no strikes.", style="dim")], (0, 0), [], [])
    levels = levels_of(snap)
    middle = snap.spot_price if centre is None else centre
    room = max(1, height - 1)  # the header
    count = room
    for _ in range(4):  # the edge and level lines depend on the window; settle in a few rounds
        lo, hi = band_window(rows, middle, count)
        top, bottom = rows[hi - 1].high, rows[lo].low
        above = [lv for lv in levels if lv.price > top + 1e-6]
        below = [lv for lv in levels if lv.price < bottom - 1e-6]
        inside = [lv for lv in levels if lv.line and lv not in above and lv not in below]
        edges = (edge_lines("▲", above, width) if above else []) + (
            edge_lines("▼", below, width) if below else []
        )
        if count + len(inside) + len(edges) <= room:
            break
        count = max(1, room - len(inside) - len(edges))
    shown = rows[lo:hi]
    label_w = max(9, *(len(_label(b)) for b in shown))
    value_w = 11
    half = max(4, (width - label_w - value_w - 14) // 2)
    biggest = max((abs(b.net_gex) for b in shown), default=0.0) or 1.0
    unit = snap.gex_unit
    lines = [_header(label_w, half, value_w, per_row)]
    if above:
        lines.extend(edge_lines("▲", above, width))
    pending = sorted((lv for lv in inside), key=lambda lv: -lv.price)
    for band in reversed(shown):
        while pending and pending[0].price > band.high + 1e-6:
            lines.append(_level_line(pending.pop(0), label_w, half))
        lines.append(
            _band_line(
                band,
                snap=snap,
                levels=levels,
                label_w=label_w,
                half=half,
                value_w=value_w,
                biggest=biggest,
                unit=unit,
            )
        )
    lines.extend(_level_line(lv, label_w, half) for lv in pending)
    if below:
        lines.extend(edge_lines("▼", below, width))
    return Ladder(lines[:height], (lo, hi), above, below)


def _header(label_w: int, half: int, value_w: int, per_row: int) -> Text:
    title = "STRIKE" if per_row == 1 else f"{per_row} STRIKES"
    header = Text(f"{title:>{label_w}} ", style="bold dim", no_wrap=True)
    header.append(f"{'◀ negative net GEX':<{half}}", style=NEGATIVE)
    header.append("│", style="dim")
    header.append(f"{'positive net GEX ▶':>{half}}", style=POSITIVE)
    header.append(f" {'NET':>{value_w}}", style="bold dim")
    if per_row > 1:
        header.append(f"  {per_row} per row, summed", style="dim")
    return header


def _band_line(
    band: Band,
    *,
    snap: s.SnapshotView,
    levels: Sequence[Level],
    label_w: int,
    half: int,
    value_w: int,
    biggest: float,
    unit: GexUnit,
) -> Text:
    net = band.net_gex
    cells = abs(net) / biggest * half
    row = Text(f"{_label(band):>{label_w}} ", style="bold" if band.holds(snap.spot_price) else "")
    if net < 0:
        row.append(f"{_left_bar(cells):>{half}}", style=NEGATIVE)
        row.append("│", style="dim")
        row.append(" " * half)
    else:
        row.append(" " * half)
        row.append("│", style="dim")
        row.append(f"{_right_bar(cells):<{half}}", style=POSITIVE)
    row.append(f" {readout.gex(net, unit):>{value_w}} ", style=POSITIVE if net >= 0 else NEGATIVE)
    tags = [lv for lv in levels if not lv.line and band.holds(lv.price)]
    for level in tags:
        row.append(f"{level.name} ", style=level.style)
    if not tags and band.holds(snap.abs_gamma_strike):
        row.append("abs γ", style="dim")
    return row


def _level_line(level: Level, label_w: int, half: int) -> Text:
    """A level between strikes: a dashed line across the ladder, named on its left half."""
    words = f" {level.name} {readout.price(level.price)} "
    line = Text(" " * (label_w + 1), style=level.style, no_wrap=True)
    line.append(("╌╌" + words).ljust(half, "╌"), style=level.style)
    line.append("┼" + "╌" * half, style=level.style)
    return line


def edge_lines(where: str, levels: Sequence[Level], width: int) -> list[Text]:
    """The levels beyond this edge, nearest first, each with the key that jumps to it.

    As many lines as the width needs: a wall must never be cut off the edge that
    is there to say where it is.
    """
    nearest = sorted(levels, key=lambda lv: lv.price, reverse=where == "▼")
    lines: list[Text] = []
    line = Text(f"{where} ", style="bold dim", no_wrap=True)
    for level in nearest:
        item = Text.assemble(
            (f"{level.name} {readout.price(level.price)}", level.style),
            (f" ({level.key})  ", "dim"),
        )
        if line.cell_len + item.cell_len > width and len(line.plain) > 2:
            lines.append(line)
            line = Text("  ", no_wrap=True)
        line.append_text(item)
    lines.append(line)
    return lines
