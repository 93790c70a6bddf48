"""The Sources view: each feed's reliability, response time, last success and circuit; enable/disable."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.widgets import DataTable, Static

from gexdaemon.core.vocab import CircuitState
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.columns import Column
from gextui.desk import DeskState
from gextui.messages import Change, Confirmation
from gextui.views.base import TableView
from gextui.widgets.livetable import LiveTable, Row

COLUMNS = (
    Column("name", "SOURCE", 27, flex=True),
    Column("reliability", "RELIABILITY", 11, right=True),
    Column("circuit", "CIRCUIT", 9),
    Column("switch", "SWITCH", 8),
    Column("last", "LAST SUCCESS", 13),
    Column("failures", "FAILS IN ROW", 12, drop=2, right=True),
    Column("requests", "OK / ALL", 13, drop=5, right=True),
    Column("ema", "EMA RESP.", 9, drop=6, right=True),
    Column("access", "SCHEDULER", 9, drop=4),
    Column("queue", "QUEUED/RUN/CAP", 14, drop=3, right=True),
)


def source_row(source: s.SourceView, lane: s.SourceLane | None, now: datetime) -> Row:
    reliability = source.reliability_score
    return source.base_url, {
        "name": Text(source.name, style="bold"),
        "reliability": Text(
            readout.percent(reliability),
            style=readout.GREEN
            if reliability >= 0.95
            else readout.AMBER
            if reliability >= 0.8
            else f"bold {readout.RED}",
        ),
        "requests": Text(
            f"{readout.count(source.successful_requests)} / {readout.count(source.total_requests)}"
        ),
        "ema": Text(readout.span(source.average_response_time_s)),
        "last": Text(readout.ago(now, source.last_successful_fetch)),
        "circuit": readout.circuit_text(source.circuit_state),
        "failures": Text(
            str(source.consecutive_failures),
            style=f"bold {readout.RED}" if source.consecutive_failures else "dim",
        ),
        "switch": Text("DISABLED", style=f"bold {readout.AMBER}")
        if source.manually_disabled
        else Text("enabled", style="dim"),
        "access": Text(source.access.value),
        "queue": Text(f"{lane.queued} / {lane.in_flight} / {lane.cap}" if lane else "-"),
    }


class SourcesView(TableView):
    VIEW_ID = "sources"
    BINDINGS = bindings_for("sources")
    COLUMNS = COLUMNS

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        revision = (desk.rev.sources, desk.rev.queues, int(now.timestamp()))
        if revision == self._drawn:
            return
        self._drawn = revision
        lanes = {lane.source: lane for lane in desk.queues.sources} if desk.queues else {}
        sources = sorted(desk.sources.values(), key=lambda src: src.name)
        self.query_one(LiveTable).sync(
            [source_row(src, lanes.get(src.base_url), now) for src in sources]
        )
        broken = sum(1 for src in sources if src.circuit_state is not CircuitState.CLOSED)
        off = sum(1 for src in sources if src.manually_disabled)
        summary = Text(f"{len(sources)} sources", style="bold", no_wrap=True, overflow="ellipsis")
        if broken:
            summary.append(
                f"  {broken} circuit(s) not closed: their jobs wait", style=f"bold {readout.RED}"
            )
        if off:
            summary.append(f"  {off} disabled", style=f"bold {readout.AMBER}")
        summary.append(
            "  reliability = ok / all fetches, EMA = moving average response", style="dim"
        )
        self.query_one("#sources-summary", Static).update(summary)
        self._show_hint()

    def _selected(self) -> s.SourceView | None:
        return self.desk.sources.get(self.query_one(LiveTable).key_at_cursor() or "")

    @on(DataTable.RowHighlighted, "#sources-table")
    def _show_hint(self) -> None:
        selected = self._selected()
        hint = Text(no_wrap=True, overflow="ellipsis")
        if selected is not None:
            hint.append(selected.base_url, style="bold")
            if selected.circuit_opened_at is not None:
                opened = readout.clock_time(selected.circuit_opened_at)
                hint.append(f"  circuit opened {opened}", style=readout.RED)
        if not self.context.read_only:
            hint.append("  d disables or enables it (its queued jobs wait while off)", style="dim")
        self.query_one("#sources-help", Static).update(hint)

    def action_toggle_source(self) -> None:
        source = self._selected()
        if source is None:
            self.notify("Select a source first.", severity="warning")
            return
        base_url, name = source.base_url, source.name
        if source.manually_disabled:
            self.post_message(
                Change(
                    "enable source",
                    lambda calls: calls.set_source_active(base_url, True),
                    done=f"{name} is enabled again.",
                )
            )
            return
        waiting = sum(1 for j in self.desk.jobs.values() if j.source == base_url)
        self.post_message(
            Change(
                "disable source",
                lambda calls: calls.set_source_active(base_url, False),
                done=f"{name} is disabled: its jobs wait until it is enabled.",
                confirm=Confirmation(
                    f"Disable {name}?",
                    f"No fetch goes to {base_url} until it is enabled again; its {waiting} live "
                    "job(s) here, and any new ones, wait in the queue and may breach their SLA.",
                    confirm="Disable",
                ),
            )
        )
