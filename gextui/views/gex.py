"""The GEX view: one symbol's levels, its total-GEX history, and the strike ladder to scroll and zoom.

The snapshot's strikes are fetched when a newer snapshot of the symbol lands
(the event carries levels only), at most once a second. The ladder follows
spot until the trader scrolls or jumps; `.` goes back to following spot.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.widget import Widget
from textual.widgets import Static

from gexdaemon.core.vocab import GexUnit
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import DeskState
from gextui.link import ask
from gextui.messages import Redraw
from gextui.views.base import DeskContext, DeskView
from gextui.views.ladder import ZOOMS, Ladder, bands, gex_ladder, levels_of
from gextui.widgets.spark import LabelledSpark

EXPIRY_CHOICES: tuple[str | None, ...] = (None, "all", "0dte", "ex_next", "ex_next_monthly")
EXPIRY_WORDS = {
    None: "latest, any expiry filter",
    "all": "all expiries",
    "0dte": "0DTE only",
    "ex_next": "without the next expiry",
    "ex_next_monthly": "without the next monthly",
}
FETCH_EVERY_S = 1.0
HISTORY_POINTS = 120


class GexChart(Widget):
    """The strike ladder of one snapshot, sized to the widget; it keeps the centre and the zoom."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot: s.SnapshotView | None = None
        self.note = "Waiting for a snapshot…"
        self.centre: float | None = None  # None: follow spot
        self.zoom = 0  # index into ZOOMS
        self.drawn: Ladder | None = None

    @property
    def per_row(self) -> int:
        return ZOOMS[self.zoom]

    def show(self, snapshot: s.SnapshotView | None, note: str = "") -> None:
        self.snapshot = snapshot
        self.note = note
        self.refresh()

    def render(self) -> RenderResult:
        if self.snapshot is None:
            self.drawn = None
            return Text(self.note, style="dim")
        self.drawn = gex_ladder(
            self.snapshot,
            self.size.width,
            self.size.height,
            centre=self.centre,
            per_row=self.per_row,
        )
        return Text("\n").join(self.drawn.lines)

    def scroll_rows(self, rows: int) -> None:
        """Move the bands shown `rows` up (positive: higher strikes), from what is on screen."""
        if self.snapshot is None or self.drawn is None:
            return
        ladder = bands(self.snapshot.strikes, self.per_row)
        lo, hi = self.drawn.shown
        if not ladder or hi <= lo:
            return
        middle = max(0, min(len(ladder) - 1, lo + (hi - lo) // 2 + rows))
        self.centre = ladder[middle].high
        self.refresh()

    def page_rows(self) -> int:
        return max(1, self.size.height - 4)

    def jump(self, key: str) -> str | None:
        """Centre on the level whose key is `key`; returns its name, or None if it has none."""
        if self.snapshot is None:
            return None
        for level in levels_of(self.snapshot):
            if level.key == key:
                self.centre = None if key == "." else level.price
                self.refresh()
                return level.name
        return None

    def set_zoom(self, step: int) -> None:
        self.zoom = max(0, min(len(ZOOMS) - 1, self.zoom + step))
        self.refresh()


def levels_text(snap: s.SnapshotSummary, now: datetime) -> Text:
    """Three lines, most needed first: the total and the levels, the walls, the provenance."""
    unit = snap.gex_unit
    total = readout.gex_unit_text(snap.total_gex, unit)
    total.stylize("bold")
    lines = [Text.assemble(("total GEX ", "dim"), total), Text(), Text()]
    for line, label, value in (
        (0, "spot", snap.spot_price),
        (0, "zero γ", snap.zero_gamma),
        (1, "call wall", snap.call_wall),
        (1, "put wall", snap.put_wall),
        (1, "abs γ", snap.abs_gamma_strike),
    ):
        lines[line].append(f"  {label} " if lines[line] else f"{label} ", style="dim")
        lines[line].append(readout.price(value), style="bold")
    if len(snap.zero_gamma_crossings) > 1:
        lines[0].append(f" ({len(snap.zero_gamma_crossings)} crossings)", style="dim")
    quality = snap.data_quality_score
    lines[1].append("  quality ", style="dim")
    lines[1].append(f"{quality:.3f}", style="bold" if quality >= 0.9 else f"bold {readout.AMBER}")
    lines[2].append("chain at ", style="dim")
    lines[2].append(readout.market_time(snap.snapshot_at))
    lines[2].append(
        f" (processed {readout.ago(now, snap.processed_at)})  expiries "
        f"{snap.expiry_filter.value}  gamma {snap.gamma_source.value}, "
        f"{snap.sign_model.value.replace('_', ' ')}  OI {readout.count(snap.total_open_interest)}"
        f"  volume {readout.count(snap.total_volume)}",
        style="dim",
    )
    text = Text("\n").join(lines)
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


class GexView(DeskView, can_focus=True):
    VIEW_ID = "gex"
    BINDINGS = bindings_for("gex")

    def __init__(self, context: DeskContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.symbol: str | None = None
        self.expiry: str | None = None
        self.shown: s.SnapshotView | None = None
        self.fetch_error: str | None = None
        self._fetching = False
        self._fetched_at: float | None = None  # monotonic: throttling is not market time
        self._wanted_key: tuple[Any, ...] | None = None
        self._history_symbol: str | None = None
        self._drawn: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="gex-symbols")
        yield Static(id="gex-levels")
        yield LabelledSpark("total GEX by snapshot", id="gex-history")
        yield GexChart(id="gex-chart")

    @property
    def chart(self) -> GexChart:
        return self.query_one(GexChart)

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        symbols = desk.symbols()
        if self.symbol not in symbols:
            self.symbol = symbols[0] if symbols else None
        self._maybe_fetch(desk)
        chart = self.chart
        revision = (
            self.symbol,
            self.expiry,
            id(self.shown),
            self.fetch_error,
            desk.rev.snapshots,
            int(now.timestamp()),
            chart.zoom,
            chart.centre,
        )
        if revision == self._drawn:
            return
        self._drawn = revision
        self.query_one("#gex-symbols", Static).update(self._symbol_strip(symbols))
        levels = self.query_one("#gex-levels", Static)
        if self.symbol is None:
            levels.update(
                Text("No snapshot yet: submit a request (n) or drop a chain file.", style="dim")
            )
            chart.show(None, "Waiting for the first snapshot…")
            return
        shown = self.shown
        summary = desk.snapshots.get(self.symbol)
        if shown is None:
            note = self.fetch_error or f"Loading the latest {self.symbol} snapshot…"
            if self.expiry is None and summary is not None:
                levels.update(levels_text(summary, now))
            else:
                levels.update(Text(note, style="dim"))
            chart.show(None, note)
        else:
            levels.update(levels_text(shown, now))
            chart.show(shown)
        self._show_history(desk, shown or summary)

    def _show_history(self, desk: DeskState, snap: s.SnapshotSummary | None) -> None:
        points = desk.gex_points.get(self.symbol or "", [])
        unit = snap.gex_unit if snap is not None else GexUnit.USD_PER_1PCT
        values = [p.total_gex for p in points]
        latest = (
            f"{readout.gex(values[-1], unit)}  (range {readout.gex(min(values), unit)} to "
            f"{readout.gex(max(values), unit)}, {len(values)} snapshot{'s' if len(values) != 1 else ''}; bars: size, colour: sign)"
            if values
            else "no history yet"
        )
        axis = (
            (readout.clock_time(points[0].snapshot_at), readout.clock_time(points[-1].snapshot_at))
            if points
            else ("", "")
        )
        self.query_one("#gex-history", LabelledSpark).show(
            values,
            axis=axis,
            latest=latest,
            cell_styles=[readout.GREEN if v >= 0 else readout.RED for v in values],
        )

    def _symbol_strip(self, symbols: list[str]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for symbol in symbols:
            style = "bold reverse" if symbol == self.symbol else "dim"
            text.append(f" {symbol} ", style=style)
        chart = self.chart
        text.append(f"  zoom {chart.per_row}/row", style="bold" if chart.per_row > 1 else "dim")
        text.append(
            "  following spot" if chart.centre is None else "  scrolled (. back)", style="dim"
        )
        text.append("  expiries: ", style="dim")
        text.append(EXPIRY_WORDS[self.expiry], style="bold")
        return text

    # -- fetching ------------------------------------------------------------------

    def _target(self, desk: DeskState) -> tuple[Any, ...] | None:
        """What the chart should show: a snapshot id, or the latest of a filter."""
        if self.symbol is None:
            return None
        latest = desk.snapshots.get(self.symbol)
        if latest is None:
            return None
        if self.expiry is None or latest.expiry_filter.value == self.expiry:
            return ("id", self.symbol, self.expiry, latest.snapshot_id)
        return ("latest", self.symbol, self.expiry, latest.snapshot_id)

    def _maybe_fetch(self, desk: DeskState) -> None:
        if self.symbol is not None and self._history_symbol != self.symbol:
            self._history_symbol = self.symbol
            self.run_worker(
                self._fetch_history(self.symbol),
                group="gex-history",
                exclusive=True,
                exit_on_error=False,
            )
        target = self._target(desk)
        if target is None or target == self._wanted_key or self._fetching:
            return
        if (
            self._fetched_at is not None
            and time.monotonic() - self._fetched_at < FETCH_EVERY_S
            and self.shown is not None
            and self.shown.market_symbol == self.symbol
        ):
            return
        self._wanted_key = target
        self._fetching = True
        self._fetched_at = time.monotonic()
        self.run_worker(self._fetch(target), group="gex-fetch", exclusive=True, exit_on_error=False)

    async def _fetch(self, target: tuple[Any, ...]) -> None:
        kind, symbol, expiry, snapshot_id = target
        calls = self.context.calls
        try:
            answer = await ask(
                calls.snapshot(snapshot_id)
                if kind == "id"
                else calls.latest_snapshot(symbol, expiry_filter=expiry)
            )
        finally:
            self._fetching = False
        if (symbol, expiry) != (self.symbol, self.expiry):
            return
        if answer.value is not None:
            self.shown = answer.value
            self.fetch_error = None
        else:
            self.shown = None
            self.fetch_error = (
                f"No {symbol} snapshot with {EXPIRY_WORDS[expiry]} yet ({answer.error})."
                if expiry is not None
                else f"Could not load the {symbol} snapshot: {answer.error}"
            )
        self.post_message(Redraw())

    async def _fetch_history(self, symbol: str) -> None:
        answer = await ask(self.context.calls.gex_history(symbol, limit=HISTORY_POINTS))
        if answer.value is not None:
            self.desk.apply_gex_history(answer.value)
            self.post_message(Redraw())

    # -- keys --------------------------------------------------------------------------

    def _switch(self, symbol: str | None, expiry: str | None) -> None:
        self.symbol, self.expiry = symbol, expiry
        self.shown = None
        self.fetch_error = None
        self._wanted_key = None
        self._fetched_at = None
        self.chart.centre = None
        self.post_message(Redraw())

    def action_next_symbol(self, step: int = 1) -> None:
        symbols = self.desk.symbols()
        if not symbols:
            return
        index = symbols.index(self.symbol) if self.symbol in symbols else -step
        self._switch(symbols[(index + step) % len(symbols)], self.expiry)

    def action_previous_symbol(self) -> None:
        self.action_next_symbol(-1)

    def action_next_expiry(self) -> None:
        index = EXPIRY_CHOICES.index(self.expiry)
        self._switch(self.symbol, EXPIRY_CHOICES[(index + 1) % len(EXPIRY_CHOICES)])

    def action_scroll_ladder(self, rows: int) -> None:
        self.chart.scroll_rows(rows)
        self.post_message(Redraw())

    def action_page_ladder(self, pages: int) -> None:
        self.chart.scroll_rows(pages * self.chart.page_rows())
        self.post_message(Redraw())

    def action_zoom(self, step: int) -> None:
        self.chart.set_zoom(step)
        self.post_message(Redraw())

    def action_jump(self, key: str) -> None:
        if self.chart.jump(key) is None:
            self.notify("This snapshot has no such level.", severity="warning")
        self.post_message(Redraw())
