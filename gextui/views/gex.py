"""The GEX view: per-strike net GEX as diverging bars around spot, the levels, the history.

The strike ladder reads like a price ladder: highest strike at the top, negative
net GEX as red bars to the left of the axis, positive as green to the right,
with the spot and zero-gamma levels drawn as lines where they fall between
strikes and the call and put walls tagged on their strikes. The strikes shown
are the ones nearest spot that fit the screen. The snapshot's strikes are
fetched when a new snapshot of the symbol lands (the event carries levels only),
at most once a second.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.widget import Widget
from textual.widgets import Static

from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import DeskState
from gextui.views.base import DeskView
from gextui.views.overview import LabelledSpark

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
POSITIVE = "#5fd75f"
NEGATIVE = "#ff5f5f"
EIGHTHS = " ▏▎▍▌▋▊▉"


def _close(a: Any, b: Any) -> bool:
    return (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and math.isclose(a, b, abs_tol=1e-6)
    )


def _right_bar(cells: float) -> str:
    whole = int(cells)
    part = EIGHTHS[int((cells - whole) * 8)] if whole < cells else ""
    return ("█" * whole + part).rstrip()


def _left_bar(cells: float) -> str:
    whole = int(cells)
    half = "▐" if cells - whole >= 0.5 else ""
    return half + "█" * whole


def strike_window(strikes: Sequence[float], spot: float | None, rows: int) -> tuple[int, int]:
    """Indexes [lo, hi) of the `rows` strikes nearest spot (strikes ascending)."""
    if rows <= 0 or not strikes:
        return 0, 0
    centre = bisect.bisect_left(strikes, spot) if spot is not None else len(strikes) // 2
    lo = max(0, centre - rows // 2)
    hi = min(len(strikes), lo + rows)
    return max(0, hi - rows), hi


def gex_ladder(snapshot: Mapping[str, Any], width: int, height: int) -> list[Text]:
    """The chart's lines, `height` at most and `width` wide."""
    strikes = sorted(
        (
            s
            for s in snapshot.get("strikes") or ()
            if isinstance(s.get("strike_price"), int | float)
        ),
        key=lambda s: float(s["strike_price"]),
    )
    unit = snapshot.get("gex_unit")
    if not strikes:
        return [Text("This snapshot has no strikes.", style="dim")]
    spot = snapshot.get("spot_price")
    zero = snapshot.get("zero_gamma")
    markers = [
        (float(v), name)
        for v, name in ((spot, "spot"), (zero, "zero γ"))
        if isinstance(v, int | float)
    ]
    prices = [float(s["strike_price"]) for s in strikes]
    lo, hi = strike_window(
        prices, float(spot) if isinstance(spot, int | float) else None, height - len(markers) - 1
    )
    shown = strikes[lo:hi]
    label_w, value_w, tag_w = 9, 11, 10
    half = max(4, (width - label_w - value_w - tag_w - 4) // 2)
    biggest = max((abs(float(s.get("net_gex") or 0.0)) for s in shown), default=0.0) or 1.0
    lines: list[Text] = []
    header = Text(f"{'STRIKE':>{label_w}} ", style="bold dim")
    header.append(f"{'◀ negative net GEX':<{half}}", style=NEGATIVE)
    header.append("│", style="dim")
    header.append(f"{'positive net GEX ▶':>{half}}", style=POSITIVE)
    header.append(f" {'NET':>{value_w}} ", style="bold dim")
    lines.append(header)
    pending = sorted(markers, reverse=True)
    top_price = float(shown[-1]["strike_price"]) if shown else 0.0
    bottom_price = float(shown[0]["strike_price"]) if shown else 0.0
    for strike in reversed(shown):
        price = float(strike["strike_price"])
        while pending and pending[0][0] > price:
            value, name = pending.pop(0)
            lines.append(
                _marker(value, name, top=top_price, bottom=bottom_price, label_w=label_w, half=half)
            )
        net = float(strike.get("net_gex") or 0.0)
        cells = abs(net) / biggest * half
        row = Text(
            f"{readout.price(price):>{label_w}} ", style="bold" if _close(price, spot) else ""
        )
        if net < 0:
            row.append(f"{_left_bar(cells):>{half}}", style=NEGATIVE)
            row.append("│", style="dim")
            row.append(" " * half)
        else:
            row.append(" " * half)
            row.append("│", style="dim")
            row.append(f"{_right_bar(cells):<{half}}", style=POSITIVE)
        row.append(
            f" {readout.gex_money(net, unit):>{value_w}} ", style=POSITIVE if net >= 0 else NEGATIVE
        )
        tags = []
        if _close(price, snapshot.get("call_wall")):
            tags.append(("CALL WALL", f"bold {POSITIVE}"))
        if _close(price, snapshot.get("put_wall")):
            tags.append(("PUT WALL", f"bold {NEGATIVE}"))
        if _close(price, snapshot.get("abs_gamma_strike")) and not tags:
            tags.append(("abs γ", "dim"))
        for word, style in tags:
            row.append(f"{word} ", style=style)
        lines.append(row)
    for value, name in pending:
        lines.append(
            _marker(value, name, top=top_price, bottom=bottom_price, label_w=label_w, half=half)
        )
    return lines[:height]


def _marker(value: float, name: str, *, top: float, bottom: float, label_w: int, half: int) -> Text:
    """A level between strikes: a dashed line across the ladder, named on its left half."""
    style = "bold #ffd75f" if name == "spot" else "bold #d787ff"
    where = (
        " ▲ above the strikes shown"
        if value > top
        else " ▼ below the strikes shown"
        if value < bottom
        else ""
    )
    words = f" {name} {readout.price(value)}{where} "
    left = ("╌╌" + words).ljust(half, "╌")
    line = Text(" " * (label_w + 1), style=style)
    line.append(left, style=style)
    line.append("┼" + "╌" * half, style=style)
    return line


class GexChart(Widget):
    """The strike ladder of one snapshot, sized to the widget."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot: Mapping[str, Any] | None = None
        self.note = "Waiting for a snapshot…"

    def show(self, snapshot: Mapping[str, Any] | None, note: str = "") -> None:
        self.snapshot = snapshot
        self.note = note
        self.refresh()

    def render(self) -> RenderResult:
        if self.snapshot is None:
            return Text(self.note, style="dim")
        lines = gex_ladder(self.snapshot, self.size.width, self.size.height)
        return Text("\n").join(lines)


def levels_text(snap: Mapping[str, Any], now: datetime) -> Text:
    unit = snap.get("gex_unit")
    total = snap.get("total_gex")
    text = Text()
    text.append("total GEX ", style="dim")
    text.append(
        f"{readout.gex_money(total, unit)} {readout.unit_words(unit)}",
        style=f"bold {POSITIVE}"
        if isinstance(total, int | float) and total >= 0
        else f"bold {NEGATIVE}",
    )
    for label, key in (
        ("spot", "spot_price"),
        ("zero γ", "zero_gamma"),
        ("call wall", "call_wall"),
        ("put wall", "put_wall"),
        ("abs γ strike", "abs_gamma_strike"),
    ):
        text.append(f"   {label} ", style="dim")
        text.append(readout.price(snap.get(key)), style="bold")
    crossings = snap.get("zero_gamma_crossings") or []
    if len(crossings) > 1:
        text.append(f" ({len(crossings)} crossings)", style="dim")
    text.append("\nquality ", style="dim")
    quality = float(snap.get("data_quality_score") or 0.0)
    text.append(f"{quality:.3f}", style="bold" if quality >= 0.9 else "bold #ffaf00")
    text.append("   snapshot ", style="dim")
    text.append(readout.market_time(snap.get("snapshot_at")))
    if snap.get("processed_at"):
        text.append(f" (processed {readout.ago(now, snap.get('processed_at'))})", style="dim")
    text.append("   expiries ", style="dim")
    text.append(str(snap.get("expiry_filter") or "-"))
    text.append(
        f"   gamma {snap.get('gamma_source') or '-'}, {str(snap.get('sign_model') or '-').replace('_', ' ')}",
        style="dim",
    )
    if snap.get("total_open_interest") is not None:
        text.append(
            f"   OI {readout.count(snap.get('total_open_interest'))}  volume {readout.count(snap.get('total_volume'))}",
            style="dim",
        )
    return text


class GexView(DeskView, can_focus=True):
    VIEW_ID = "gex"
    BINDINGS = bindings_for("gex")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbol: str | None = None
        self.expiry: str | None = None
        self.shown: dict[str, Any] | None = None
        self.fetch_error: str | None = None
        self._fetching = False
        self._fetched_at: float | None = None  # monotonic: throttling is not market time
        self._wanted_key: tuple[Any, ...] | None = None
        self._history_symbol: str | None = None
        self._drawn: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="gex-symbols")
        yield Static(id="gex-levels")
        yield LabelledSpark("total GEX, last snapshots", id="gex-history")
        yield GexChart(id="gex-chart")

    def focus_main(self) -> None:
        self.focus()

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        symbols = desk.symbols()
        if self.symbol not in symbols:
            self.symbol = symbols[0] if symbols else None
        self._maybe_fetch(desk, now)
        revision = (
            self.symbol,
            self.expiry,
            id(self.shown),
            self.fetch_error,
            desk.rev.snapshots,
            int(now.timestamp()),
        )
        if revision == self._drawn:
            return
        self._drawn = revision
        self.query_one("#gex-symbols", Static).update(self._symbol_strip(symbols))
        chart = self.query_one(GexChart)
        if self.symbol is None:
            self.query_one("#gex-levels", Static).update(
                Text("No snapshot yet: submit a request (n) or drop a chain file.", style="dim")
            )
            chart.show(None, "Waiting for the first snapshot…")
            return
        shown = self.shown
        if shown is None:
            note = self.fetch_error or f"Loading the latest {self.symbol} snapshot…"
            summary = desk.snapshots.get(self.symbol) or {}
            self.query_one("#gex-levels", Static).update(
                levels_text(summary, now)
                if self.expiry is None and summary
                else Text(note, style="dim")
            )
            chart.show(None, note)
        else:
            self.query_one("#gex-levels", Static).update(levels_text(shown, now))
            chart.show(shown)
        points = [total for _, total in desk.gex_points.get(self.symbol, ())]
        unit = (shown or desk.snapshots.get(self.symbol) or {}).get("gex_unit")
        latest = (
            f"{readout.gex_money(points[-1], unit)}   range {readout.gex_money(min(points), unit)} … {readout.gex_money(max(points), unit)}   {len(points)} snapshots"
            if points
            else "no history yet"
        )
        self.query_one("#gex-history", LabelledSpark).show(points, latest)

    def _symbol_strip(self, symbols: list[str]) -> Text:
        text = Text()
        for symbol in symbols:
            if symbol == self.symbol:
                text.append(f" {symbol} ", style="bold reverse")
            else:
                text.append(f" {symbol} ", style="dim")
        text.append("   expiries: ", style="dim")
        text.append(EXPIRY_WORDS[self.expiry], style="bold")
        text.append("   (←/→ symbol, e expiry filter)", style="dim")
        return text

    # -- fetching ------------------------------------------------------------------

    def _target(self, desk: DeskState) -> tuple[Any, ...] | None:
        """What the chart should show: a snapshot id, or the latest of a filter."""
        if self.symbol is None:
            return None
        latest = desk.snapshots.get(self.symbol) or {}
        if self.expiry is None or latest.get("expiry_filter") == self.expiry:
            snapshot_id = latest.get("snapshot_id")
            return ("id", self.symbol, self.expiry, snapshot_id) if snapshot_id else None
        return ("latest", self.symbol, self.expiry, latest.get("snapshot_id"))

    def _maybe_fetch(self, desk: DeskState, now: datetime) -> None:
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
            and self.shown.get("market_symbol") == self.symbol
        ):
            return
        self._wanted_key = target
        self._fetching = True
        self._fetched_at = time.monotonic()
        self.run_worker(self._fetch(target), group="gex-fetch", exclusive=True, exit_on_error=False)

    async def _fetch(self, target: tuple[Any, ...]) -> None:
        kind, symbol, expiry, snapshot_id = target
        calls = self.host.calls
        call = (
            calls.snapshot(snapshot_id)
            if kind == "id"
            else calls.latest_snapshot(symbol, expiry_filter=expiry)
        )
        try:
            answer = await self.host.ask_daemon("GEX snapshot", call, quiet=True)
        finally:
            self._fetching = False
        if (symbol, expiry) != (self.symbol, self.expiry):
            return
        if answer.ok and isinstance(answer.value, dict):
            self.shown = answer.value
            self.fetch_error = None
        else:
            self.shown = None
            self.fetch_error = (
                f"No {symbol} snapshot with {EXPIRY_WORDS[expiry]} yet ({answer.error})."
                if expiry is not None
                else f"Could not load the {symbol} snapshot: {answer.error}"
            )
        self.host.flush()

    async def _fetch_history(self, symbol: str) -> None:
        answer = await self.host.ask_daemon(
            "GEX history", self.host.calls.gex_history(symbol, limit=HISTORY_POINTS), quiet=True
        )
        if answer.ok and isinstance(answer.value, dict):
            self.host.desk.apply_gex_history(symbol, answer.value.get("points") or ())

    # -- keys --------------------------------------------------------------------------

    def _switch(self, symbol: str | None, expiry: str | None) -> None:
        self.symbol, self.expiry = symbol, expiry
        self.shown = None
        self.fetch_error = None
        self._wanted_key = None
        self._fetched_at = None
        self.host.flush()

    def action_next_symbol(self, step: int = 1) -> None:
        symbols = self.host.desk.symbols()
        if not symbols:
            return
        index = symbols.index(self.symbol) if self.symbol in symbols else -step
        self._switch(symbols[(index + step) % len(symbols)], self.expiry)

    def action_previous_symbol(self) -> None:
        self.action_next_symbol(-1)

    def action_next_expiry(self) -> None:
        index = EXPIRY_CHOICES.index(self.expiry)
        self._switch(self.symbol, EXPIRY_CHOICES[(index + 1) % len(EXPIRY_CHOICES)])
