"""The Overview: queues per level, workers, SLA, throughput, the GEX levels now, what just happened.

Its tables keep the columns a trader acts on at any width (`gextui.columns`):
at 80 columns the QUEUED, AT RISK and NEXT DUE figures stay and the provenance
goes first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from gexdaemon.core.vocab import CircuitState
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.columns import Column, fit
from gextui.desk import DEADLINE_LEVELS, DeskState, QueueSample
from gextui.views.base import DeskView
from gextui.widgets.spark import LabelledSpark

Cell = Text | str


def rich_table(columns: Sequence[tuple[Column, int]]) -> Table:
    """A borderless table of the fitted columns."""
    table = Table(box=None, padding=(0, 1), header_style="bold dim", expand=False)
    for column, width in columns:
        table.add_column(
            column.label,
            justify="right" if column.right else "left",
            no_wrap=True,
            width=width,
            overflow="ellipsis",
        )
    return table


def add_row(table: Table, columns: Sequence[tuple[Column, int]], cells: dict[str, Cell]) -> None:
    table.add_row(*(cells.get(column.key, "") for column, _ in columns))


def queue_columns(samples: Sequence[QueueSample]) -> tuple[Column, ...]:
    first, last = (samples[0].at, samples[-1].at) if samples else (None, None)
    return (
        Column("level", "LEVEL", 8),
        Column("depth", "QUEUED", 6, right=True),
        Column("delayed", "DELAYED", 7, drop=4, right=True),
        Column("in_flight", "RUNNING", 7, right=True),
        Column("at_risk", "AT RISK", 7, right=True),
        Column("oldest", "OLDEST", 6, right=True),
        Column("next", "NEXT DUE", 10, right=True),
        Column("sla", "SLA", 11, drop=7, right=True),
        Column("met", "MET 1H", 6, right=True),
        Column("done", "DONE/MIN", 8, drop=5, right=True),
        Column("breaches", "BREACH 1H", 9, right=True),
        Column("spark", f"QUEUED, {readout.window_words(first, last)}", 12, drop=6, flex=True),
    )


def next_due(seconds: float | None) -> Text:
    if seconds is None:
        return Text("-", style="dim")
    if seconds < 0:
        return Text(f"LATE {readout.span(-seconds)}", style=f"bold {readout.RED}")
    return Text(
        f"in {readout.span(seconds)}", style=f"bold {readout.AMBER}" if seconds < 30 else ""
    )


def met_text(ratio: float | None) -> Text:
    style = (
        ""
        if ratio is None
        else readout.GREEN
        if ratio >= 0.99
        else readout.AMBER
        if ratio >= 0.9
        else f"bold {readout.RED}"
    )
    return Text(readout.percent(ratio), style=style)


def queue_table(desk: DeskState, width: int) -> Table:
    samples = list(desk.samples)
    columns = fit(queue_columns(samples), width)
    spark_width = next((w for c, w in columns if c.key == "spark"), 0)
    table = rich_table(columns)
    rows = desk.level_rows()
    for row in rows:
        breaches = row.breaches_last_hour
        add_row(
            table,
            columns,
            {
                "level": readout.level_text(row.level),
                "depth": readout.count(row.depth),
                "delayed": readout.count(row.delayed),
                "in_flight": readout.count(row.in_flight),
                "at_risk": Text(
                    readout.count(row.at_risk), style=f"bold {readout.AMBER}" if row.at_risk else ""
                ),
                "oldest": readout.span(row.oldest_wait_s),
                "next": next_due(row.next_deadline_in_s),
                "sla": "best effort" if row.sla_s is None else f"< {readout.span(row.sla_s)}",
                "met": met_text(row.sla_met_ratio),
                "done": f"{row.throughput_per_min:.1f}",
                "breaches": Text(str(breaches), style=f"bold {readout.RED}" if breaches else "dim"),
                "spark": Text(
                    readout.spark(
                        [sample.depth.get(row.level, 0.0) for sample in samples], spark_width
                    ),
                    style=readout.LEVEL_STYLE[row.level],
                ),
            },
        )
    breaches = sum(r.breaches_last_hour for r in rows)
    add_row(
        table,
        columns,
        {
            "level": Text("ALL", style="bold"),
            "depth": readout.count(sum(r.depth for r in rows)),
            "delayed": readout.count(sum(r.delayed for r in rows)),
            "in_flight": readout.count(sum(r.in_flight for r in rows)),
            "at_risk": readout.count(sum(r.at_risk for r in rows)),
            "done": f"{sum(r.throughput_per_min for r in rows):.1f}",
            "breaches": Text(str(breaches), style=f"bold {readout.RED}" if breaches else "dim"),
        },
    )
    return table


def desk_line(desk: DeskState) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if desk.queues is not None:
        busy, total = desk.queues.workers.busy, desk.queues.workers.total
        text.append("workers ", style="dim")
        text.append(f"{busy}/{total} busy ", style="bold")
        text.append("▮" * busy + "▯" * max(0, total - busy), style=readout.GREEN)
    sources = list(desk.sources.values())
    broken = [src for src in sources if src.circuit_state is not CircuitState.CLOSED]
    disabled = [src for src in sources if src.manually_disabled]
    text.append("  sources ", style="dim")
    text.append(f"{len(sources)}")
    if broken:
        text.append(f"  {len(broken)} circuit(s) not closed", style=f"bold {readout.RED}")
    if disabled:
        text.append(f"  {len(disabled)} disabled", style=f"bold {readout.AMBER}")
    if desk.queues is not None and desk.queues.phases:
        text.append("  dispatched by phase ", style="dim")
        phases = desk.queues.phases.items()
        text.append("  ".join(f"{name.value} {n}" for name, n in phases), style="dim")
    return text


def gex_columns(snapshots: Sequence[s.SnapshotSummary]) -> tuple[Column, ...]:
    units = {snap.gex_unit for snap in snapshots}
    unit = readout.UNIT_SHORT[units.pop()] if len(units) == 1 else ""
    return (
        Column("symbol", "SYMBOL", 6),
        Column("spot", "SPOT", 9, right=True),
        Column("total", f"GEX {unit}".strip(), 8, right=True),
        Column("zero", "ZERO γ", 9, right=True),
        Column("call", "CALL WALL", 9, right=True),
        Column("put", "PUT WALL", 9, right=True),
        Column("quality", "QUALITY", 7, drop=3, right=True),
        Column("expiries", "EXPIRIES", 8, drop=2),
        Column("at", "MARKET TIME", 14),  # another day's chain reads "11-24 15:45 ET"
        Column("processed", "PROCESSED", 9, drop=4),
    )


def gex_table(desk: DeskState, now: datetime, width: int) -> Table:
    snapshots = [desk.snapshots[symbol] for symbol in desk.symbols()]
    columns = fit(gex_columns(snapshots), width)
    table = rich_table(columns)
    for snap in snapshots:
        total = snap.total_gex
        add_row(
            table,
            columns,
            {
                "symbol": Text(snap.market_symbol, style="bold"),
                "spot": readout.price(snap.spot_price),
                "total": Text(
                    readout.gex(total, snap.gex_unit),
                    style=readout.GREEN if total >= 0 else readout.RED,
                ),
                "zero": readout.price(snap.zero_gamma),
                "call": readout.price(snap.call_wall),
                "put": readout.price(snap.put_wall),
                "quality": f"{snap.data_quality_score:.3f}",
                "expiries": snap.expiry_filter.value,
                "at": readout.day_time(snap.snapshot_at, now),
                "processed": readout.ago(now, snap.processed_at),
            },
        )
    if not snapshots:
        table.add_row(Text("no snapshot yet", style="dim"))
    return table


def activity_lines(desk: DeskState, limit: int) -> Text:
    text = Text()
    for item in list(desk.activity)[:limit]:
        text.append(f"{readout.clock_time(item.at)} ", style="dim")
        text.append(item.text + "\n", style=readout.SEVERITY_STYLE.get(item.severity, ""))
    if not desk.activity:
        text.append("nothing notable yet", style="dim")
    return text


SPARKS: tuple[
    tuple[str, str, Callable[[QueueSample], float | None], Callable[[float], str], float | None],
    ...,
] = (
    # id, title, the figure of one sample, how its latest value reads, a fixed top
    ("spark-queued", "queued", lambda q: sum(q.depth.values()), readout.count, None),
    (
        "spark-throughput",
        "done/min",
        lambda q: sum(q.throughput.values()),
        lambda v: f"{v:.1f}",
        None,
    ),
    (
        "spark-met",
        "SLA met",
        lambda q: _mean([q.met_ratio[lv] for lv in DEADLINE_LEVELS if lv in q.met_ratio]),
        readout.percent,
        1.0,  # a ratio's top is 100%: a fall from 100% to 90% shows as such
    ),
    ("spark-events", "events/s", lambda q: q.events_per_s, lambda v: f"{v:.1f}", None),
)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class OverviewView(DeskView, can_focus=True):
    VIEW_ID = "overview"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawn: tuple[int, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="overview-queues", classes="panel")
        yield Static(id="overview-desk")
        with Grid(id="overview-sparks"):
            for spark_id, title, _, _, ceiling in SPARKS:
                yield LabelledSpark(title, id=spark_id, ceiling=ceiling)
        yield Static(id="overview-gex", classes="panel")
        yield Static(id="overview-activity", classes="panel")

    def on_resize(self) -> None:
        self._drawn = None  # the tables choose their columns by width

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        rev = desk.rev
        revision = (rev.queues, rev.sources, rev.snapshots, rev.activity, int(now.timestamp()))
        if revision == self._drawn:
            return
        self._drawn = revision
        queues = self.query_one("#overview-queues", Static)
        queues.update(queue_table(desk, queues.content_region.width or self.size.width))
        self.query_one("#overview-desk", Static).update(desk_line(desk))
        self._show_sparks(desk)
        gex = self.query_one("#overview-gex", Static)
        gex.update(gex_table(desk, now, gex.content_region.width or self.size.width))
        activity = self.query_one("#overview-activity", Static)
        activity.update(activity_lines(desk, max(3, activity.content_region.height)))

    def _show_sparks(self, desk: DeskState) -> None:
        samples = list(desk.samples)
        for spark_id, _, figure, words, _ in SPARKS:
            taken = [(q.at, v) for q in samples if (v := figure(q)) is not None]
            axis = readout.time_axis(taken[0][0], taken[-1][0]) if taken else ("no samples yet", "")
            self.query_one(f"#{spark_id}", LabelledSpark).show(
                [v for _, v in taken], axis=axis, latest=words(taken[-1][1]) if taken else "-"
            )
