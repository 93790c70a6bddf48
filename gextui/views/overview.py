"""The Overview: queues per level, workers, SLA, throughput, the GEX levels now, what just happened."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Sparkline, Static

from gextui import readout
from gextui.desk import LEVELS, DeskState
from gextui.views.base import DeskView

SPARK_WIDTH = 24


def queue_table(desk: DeskState, now: datetime) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
    for name, justify in (
        ("LEVEL", "left"),
        ("QUEUED", "right"),
        ("DELAYED", "right"),
        ("RUNNING", "right"),
        ("AT RISK", "right"),
        ("OLDEST WAIT", "right"),
        ("NEXT DEADLINE", "right"),
        ("SLA", "right"),
        ("SLA MET 1H", "right"),
        ("DONE/MIN", "right"),
        ("BREACHES 1H", "right"),
        ("QUEUED, LAST 4 MIN", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    totals = {"depth": 0, "delayed": 0, "in_flight": 0, "at_risk": 0, "breaches": 0}
    throughput = 0.0
    for row in desk.level_rows():
        level = str(row.get("level"))
        series = desk.series[level]
        totals["depth"] += int(row.get("depth") or 0)
        totals["delayed"] += int(row.get("delayed") or 0)
        totals["in_flight"] += int(row.get("in_flight") or 0)
        totals["at_risk"] += int(row.get("at_risk") or 0)
        totals["breaches"] += int(row.get("breaches_last_hour") or 0)
        throughput += float(row.get("throughput_per_min") or 0.0)
        next_deadline = row.get("next_deadline_in_s")
        deadline_text = (
            Text("-", style="dim")
            if next_deadline is None
            else Text(
                f"LATE {readout.span(-next_deadline)}"
                if next_deadline < 0
                else f"in {readout.span(next_deadline)}",
                style="bold #ff5f5f"
                if next_deadline < 0
                else ("bold #ffaf00" if next_deadline < 30 else ""),
            )
        )
        met = row.get("sla_met_ratio")
        met_style = (
            ""
            if met is None
            else ("#5fff87" if met >= 0.99 else "#ffaf00" if met >= 0.9 else "bold #ff5f5f")
        )
        breaches = int(row.get("breaches_last_hour") or 0)
        table.add_row(
            readout.level_text(level),
            readout.count(row.get("depth")),
            readout.count(row.get("delayed")),
            readout.count(row.get("in_flight")),
            Text(
                readout.count(row.get("at_risk")),
                style="bold #ffaf00" if row.get("at_risk") else "",
            ),
            readout.span(row.get("oldest_wait_s")),
            deadline_text,
            "best effort" if row.get("sla_s") is None else f"< {readout.span(float(row['sla_s']))}",
            Text(readout.percent(met), style=met_style),
            f"{float(row.get('throughput_per_min') or 0.0):.1f}",
            Text(str(breaches), style="bold #ff5f5f" if breaches else "dim"),
            Text(
                readout.spark(series.depth, SPARK_WIDTH), style=readout.LEVEL_STYLE.get(level, "")
            ),
        )
    table.add_row(
        Text("ALL", style="bold"),
        readout.count(totals["depth"]),
        readout.count(totals["delayed"]),
        readout.count(totals["in_flight"]),
        readout.count(totals["at_risk"]),
        "",
        "",
        "",
        "",
        f"{throughput:.1f}",
        Text(str(totals["breaches"]), style="bold #ff5f5f" if totals["breaches"] else "dim"),
        "",
        style="bold",
    )
    return table


def desk_line(desk: DeskState) -> Text:
    workers = desk.queues.get("workers") or {}
    busy, total = int(workers.get("busy") or 0), int(workers.get("total") or 0)
    text = Text()
    text.append("workers ", style="dim")
    text.append(f"{busy}/{total} busy ", style="bold")
    text.append("▮" * busy + "▯" * max(0, total - busy), style="#5fff87")
    sources = list(desk.sources.values())
    open_circuits = [s for s in sources if s.get("circuit_state") != "closed"]
    disabled = [s for s in sources if s.get("manually_disabled")]
    text.append("   sources ", style="dim")
    text.append(f"{len(sources)}")
    if open_circuits:
        text.append(
            f"  {len(open_circuits)} circuit{'s' if len(open_circuits) > 1 else ''} not closed",
            style="bold #ff5f5f",
        )
    if disabled:
        text.append(f"  {len(disabled)} disabled", style="bold #ffaf00")
    phases = desk.queues.get("phases") or {}
    if phases:
        text.append("   dispatched by phase ", style="dim")
        text.append("  ".join(f"{name} {count}" for name, count in phases.items()), style="dim")
    return text


def gex_table(desk: DeskState, now: datetime) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
    for name, justify in (
        ("SYMBOL", "left"),
        ("SPOT", "right"),
        ("TOTAL GEX", "right"),
        ("ZERO γ", "right"),
        ("CALL WALL", "right"),
        ("PUT WALL", "right"),
        ("QUALITY", "right"),
        ("EXPIRIES", "left"),
        ("MARKET TIME", "left"),
        ("PROCESSED", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for symbol in desk.symbols():
        snap = desk.snapshots[symbol]
        total = snap.get("total_gex")
        table.add_row(
            Text(symbol, style="bold"),
            readout.price(snap.get("spot_price")),
            Text(
                f"{readout.gex_money(total, snap.get('gex_unit'))} {readout.unit_words(snap.get('gex_unit'))}",
                style="#5fff87" if isinstance(total, int | float) and total >= 0 else "#ff5f5f",
            ),
            readout.price(snap.get("zero_gamma")),
            readout.price(snap.get("call_wall")),
            readout.price(snap.get("put_wall")),
            f"{float(snap.get('data_quality_score') or 0.0):.3f}",
            str(snap.get("expiry_filter") or "-"),
            readout.market_time(snap.get("snapshot_at")),
            readout.ago(now, snap.get("processed_at")) if snap.get("processed_at") else "-",
        )
    if not desk.snapshots:
        table.add_row(Text("no snapshot yet", style="dim"), *[""] * 9)
    return table


def activity_lines(desk: DeskState, limit: int) -> Text:
    text = Text()
    for item in list(desk.activity)[:limit]:
        text.append(f"{readout.clock_time(item.at)}  ", style="dim")
        text.append(item.text + "\n", style=readout.SEVERITY_STYLE.get(item.severity, ""))
    if not desk.activity:
        text.append("nothing notable yet", style="dim")
    return text


class LabelledSpark(Vertical):
    """A sparkline with a title that carries the latest value."""

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id, classes="spark-box")
        self._title = title

    def compose(self) -> ComposeResult:
        yield Static(self._title, classes="spark-title", markup=False)
        yield Sparkline([], classes="spark")

    def show(self, values: list[float], latest: str) -> None:
        self.query_one(".spark-title", Static).update(
            Text.assemble((self._title, "dim"), "  ", (latest, "bold"))
        )
        self.query_one(Sparkline).data = values


class OverviewView(DeskView, can_focus=True):
    VIEW_ID = "overview"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple[int, ...] | None = None
        self._drawn_second: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="overview-queues", classes="panel")
        yield Static(id="overview-desk")
        with Grid(id="overview-sparks"):
            yield LabelledSpark("queued, all levels", id="spark-queued")
            yield LabelledSpark("done per minute", id="spark-throughput")
            yield LabelledSpark("SLA met, deadline levels", id="spark-met")
            yield LabelledSpark("events per second", id="spark-events")
        yield Static(id="overview-gex", classes="panel")
        yield Static(id="overview-activity", classes="panel")

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        revision = (desk.rev.queues, desk.rev.sources, desk.rev.snapshots, desk.rev.activity)
        second = int(now.timestamp())
        if revision == self._drawn and second == self._drawn_second:
            return
        self._drawn, self._drawn_second = revision, second
        self.query_one("#overview-queues", Static).update(queue_table(desk, now))
        self.query_one("#overview-desk", Static).update(desk_line(desk))
        self._show_sparks(desk)
        self.query_one("#overview-gex", Static).update(gex_table(desk, now))
        height = max(3, self.query_one("#overview-activity", Static).size.height)
        self.query_one("#overview-activity", Static).update(activity_lines(desk, height))

    def _show_sparks(self, desk: DeskState) -> None:
        queued = _sum_series([desk.series[lv].depth for lv in LEVELS])
        self.query_one("#spark-queued", LabelledSpark).show(
            queued, readout.count(queued[-1]) if queued else "-"
        )
        done = _sum_series([desk.series[lv].throughput for lv in LEVELS])
        self.query_one("#spark-throughput", LabelledSpark).show(
            done, f"{done[-1]:.1f}/min" if done else "-"
        )
        met = _mean_series([desk.series[lv].met_ratio for lv in LEVELS[:-1]])
        self.query_one("#spark-met", LabelledSpark).show(
            met, readout.percent(met[-1]) if met else "-"
        )
        events = list(desk.events_per_s)
        self.query_one("#spark-events", LabelledSpark).show(
            events, f"{events[-1]:.1f}/s" if events else "-"
        )


def _sum_series(series: list[Any]) -> list[float]:
    """Point-wise sum of the series' common tail."""
    lists = [list(s) for s in series]
    length = min((len(s) for s in lists), default=0)
    return [sum(s[len(s) - length + i] for s in lists) for i in range(length)]


def _mean_series(series: list[Any]) -> list[float]:
    present = [list(s) for s in series if len(s)]
    if not present:
        return []
    length = min(len(s) for s in present)
    return [sum(s[len(s) - length + i] for s in present) / len(present) for i in range(length)]
