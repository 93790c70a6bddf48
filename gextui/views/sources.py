"""The Sources view: each feed's reliability, response time, last success and circuit; enable/disable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import DeskState
from gextui.screens.confirm import ConfirmScreen
from gextui.views.base import DeskView
from gextui.views.table import LiveTable

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("name", "SOURCE", 30),
    ("reliability", "RELIABILITY", 11),
    ("requests", "OK / ALL", 13),
    ("ema", "EMA RESP.", 9),
    ("last", "LAST SUCCESS", 13),
    ("circuit", "CIRCUIT", 9),
    ("failures", "FAILS IN ROW", 12),
    ("switch", "TRADER SWITCH", 13),
    ("access", "SCHEDULER", 9),
    ("queue", "QUEUED/RUN/CAP", 14),
)


def source_row(
    source: Mapping[str, Any], stats: Mapping[str, Any], now: datetime
) -> tuple[str, list[Text]]:
    reliability = float(source.get("reliability_score") or 0.0)
    ema = source.get("average_response_time_s")
    disabled = bool(source.get("manually_disabled"))
    return str(source.get("base_url")), [
        Text(str(source.get("name") or source.get("base_url")), style="bold"),
        Text(
            readout.percent(reliability),
            style="#5fff87"
            if reliability >= 0.95
            else "#ffaf00"
            if reliability >= 0.8
            else "bold #ff5f5f",
        ),
        Text(
            f"{readout.count(source.get('successful_requests'))} / {readout.count(source.get('total_requests'))}"
        ),
        Text(readout.span(float(ema)) if isinstance(ema, int | float) else "-"),
        Text(readout.ago(now, source.get("last_successful_fetch"))),
        readout.circuit_text(source.get("circuit_state")),
        Text(
            str(source.get("consecutive_failures") or 0),
            style="bold #ff5f5f" if source.get("consecutive_failures") else "dim",
        ),
        Text("DISABLED", style="bold #ffaf00") if disabled else Text("enabled", style="dim"),
        Text(str(source.get("access") or "-")),
        Text(
            f"{stats.get('queued', 0)} / {stats.get('in_flight', 0)} / {stats.get('cap', '-')}"
            if stats
            else "-",
        ),
    ]


class SourcesView(DeskView):
    VIEW_ID = "sources"
    BINDINGS = bindings_for("sources")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple[int, int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="sources-summary")
        yield LiveTable(COLUMNS, id="sources-table")
        yield Static(id="sources-help", classes="hint")

    def focus_main(self) -> None:
        self.query_one(LiveTable).focus()

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        revision = (desk.rev.sources, desk.rev.queues, int(now.timestamp()))
        if revision == self._drawn:
            return
        self._drawn = revision
        stats = {str(s.get("source")): s for s in desk.queues.get("sources") or ()}
        sources = sorted(
            desk.sources.values(), key=lambda s: str(s.get("name") or s.get("base_url"))
        )
        self.query_one(LiveTable).sync(
            [source_row(s, stats.get(str(s.get("base_url")), {}), now) for s in sources]
        )
        broken = sum(1 for s in sources if s.get("circuit_state") != "closed")
        off = sum(1 for s in sources if s.get("manually_disabled"))
        summary = Text(f"{len(sources)} sources", style="bold")
        summary.append(
            "   reliability = ok / all fetches, EMA = moving average response",
            style="dim",
        )
        if broken:
            summary.append(
                f"   {broken} circuit(s) not closed: their jobs wait", style="bold #ff5f5f"
            )
        if off:
            summary.append(f"   {off} disabled", style="bold #ffaf00")
        self.query_one("#sources-summary", Static).update(summary)
        self._show_hint()

    @on(DataTable.RowHighlighted, "#sources-table")
    def _show_hint(self) -> None:
        selected = self.host.desk.sources.get(self.query_one(LiveTable).key_at_cursor() or "")
        hint = Text()
        if selected is not None:
            hint.append(str(selected.get("base_url")), style="bold")
            if selected.get("circuit_opened_at"):
                opened = readout.clock_time(selected.get("circuit_opened_at"))
                hint.append(f"  circuit opened {opened} ET", style="#ff5f5f")
        if not self.host.read_only:
            hint.append(
                "   d disables or enables it (its queued jobs wait while it is off)", style="dim"
            )
        self.query_one("#sources-help", Static).update(hint)

    def action_toggle_source(self) -> None:
        key = self.query_one(LiveTable).key_at_cursor()
        source = self.host.desk.sources.get(key or "")
        if source is None:
            self.host.notify("Select a source first.", severity="warning")
            return
        base_url = str(source["base_url"])
        name = str(source.get("name") or base_url)
        if source.get("manually_disabled"):
            self.host.perform(
                "enable source",
                self.host.calls.set_source_active(base_url, True),
                done=f"{name} is enabled again.",
            )
            return
        waiting = sum(1 for j in self.host.desk.jobs.values() if j.get("source") == base_url)

        def answered(yes: bool | None) -> None:
            if yes:
                self.host.perform(
                    "disable source",
                    self.host.calls.set_source_active(base_url, False),
                    done=f"{name} is disabled: its jobs wait until it is enabled.",
                )

        self.host.push_screen(
            ConfirmScreen(
                f"Disable {name}?",
                f"No fetch goes to {base_url} until it is enabled again; its {waiting} live "
                "job(s) here, and any new ones, wait in the queue and may breach their SLA.",
                confirm="Disable",
            ),
            answered,
        )
