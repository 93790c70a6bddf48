"""The SLA view: breached and at-risk jobs, how late, and why (phase, source, retries, error).

Breaches come from two places: `sla.breached` events as they happen, and the
daemon's record (`GET /v1/sla`, polled every few seconds while the view is
shown, so breaches from before the dashboard attached are listed too).
"""

from __future__ import annotations

import time
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
from gextui.views.base import DeskView
from gextui.views.jobs import short_id
from gextui.views.table import LiveTable

POLL_S = 5.0

BREACH_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("level", "LEVEL", 8),
    ("symbol", "SYM", 5),
    ("type", "TYPE", 10),
    ("status", "STATUS", 12),
    ("late", "LATE BY", 20),
    ("deadline", "DEADLINE ET", 11),
    ("phase", "PHASE", 13),
    ("retries", "RTY", 3),
    ("source", "SOURCE", 22),
    ("why", "WHY", None),
)
RISK_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("level", "LEVEL", 8),
    ("symbol", "SYM", 5),
    ("type", "TYPE", 10),
    ("status", "STATUS", 12),
    ("left", "DEADLINE", 12),
    ("estimate", "EST. RUN", 8),
    ("waiting", "WAITING", 8),
    ("phase", "PHASE", 13),
    ("retries", "RTY", 3),
    ("source", "SOURCE", 22),
    ("job", "JOB", 8),
)


def lateness(job: Mapping[str, Any], now: datetime) -> Text:
    """How late the job is (running) or was (finished); a job that failed for good early says so."""
    deadline = readout.parse_instant(job.get("deadline"))
    if deadline is None:
        return Text("-", style="dim")
    end = readout.parse_instant(job.get("completed_at")) or now
    late = (end - deadline).total_seconds()
    if late < 0:
        return Text(f"failed {readout.span(-late)} early", style="#ff5f5f")
    still = "" if job.get("completed_at") else " and counting"
    return Text(f"{readout.span(late)}{still}", style="bold #ff5f5f")


def why(job: Mapping[str, Any]) -> Text:
    if job.get("error_message"):
        return Text(str(job["error_message"]), style="#ff5f5f")
    status = str(job.get("status"))
    if status == "queued":
        return Text(
            f"still queued after {job.get('retry_count', 0)} retries"
            if job.get("retry_count")
            else "still queued: not dispatched in time"
        )
    if status == "processing":
        return Text("still running past the deadline (slow source or a big chain)")
    if status == "completed":
        return Text("finished after the deadline")
    return Text(status)


def breach_row(job: Mapping[str, Any], now: datetime) -> tuple[str, list[Text]]:
    return str(job.get("job_id")), [
        readout.level_text(job.get("priority_level")),
        Text(str(job.get("market_symbol") or "?"), style="bold"),
        Text(str(job.get("data_type") or "").replace("_", "-")),
        readout.status_text(dict(job)),
        lateness(job, now),
        Text(readout.clock_time(job.get("deadline"))),
        Text(str(job.get("dispatch_phase") or "-"), style="dim"),
        Text(str(job.get("retry_count") or 0)),
        Text(readout.source_host(job.get("source_url") or job.get("source"))),
        why(job),
    ]


def risk_row(job: Mapping[str, Any], now: datetime) -> tuple[str, list[Text]]:
    estimate = job.get("estimated_processing_time_s")
    return str(job.get("job_id")), [
        readout.level_text(job.get("priority_level")),
        Text(str(job.get("market_symbol") or "?"), style="bold"),
        Text(str(job.get("data_type") or "").replace("_", "-")),
        readout.status_text(dict(job)),
        readout.countdown(now, job.get("deadline")),
        Text(readout.span(float(estimate)) if isinstance(estimate, int | float) else "-"),
        Text(readout.age(now, job.get("queued_at"))),
        Text(str(job.get("dispatch_phase") or "-"), style="dim"),
        Text(str(job.get("retry_count") or 0)),
        Text(readout.source_host(job.get("source_url") or job.get("source"))),
        Text(short_id(job.get("job_id")), style="dim"),
    ]


def level_line(desk: DeskState) -> Text:
    text = Text()
    for row in desk.level_rows():
        level = str(row.get("level"))
        if row.get("sla_s") is None:
            continue
        text.append_text(readout.level_text(level))
        text.append(f" < {readout.span(float(row['sla_s']))}: ", style="dim")
        text.append(f"met {readout.percent(row.get('sla_met_ratio'))} ")
        breaches = int(row.get("breaches_last_hour") or 0)
        text.append(f"{breaches} breached in 1h", style="bold #ff5f5f" if breaches else "dim")
        text.append(
            f" ({row.get('met_total', 0)} met / {row.get('breached_total', 0)} breached since start)",
            style="dim",
        )
        precision = row.get("at_risk_precision")
        if precision is not None:
            text.append(
                f"; of the jobs flagged at risk, {readout.percent(precision)} then missed",
                style="dim",
            )
        text.append("\n")
    return text


class SlaView(DeskView):
    VIEW_ID = "sla"
    BINDINGS = bindings_for("sla")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._polled_at: float | None = None  # monotonic
        self._drawn: tuple[int, int, int] | None = None
        self._drawn_second: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="sla-levels")
        yield Static(id="sla-breached-title", classes="section-title")
        yield LiveTable(BREACH_COLUMNS, id="sla-breached")
        yield Static(id="sla-risk-title", classes="section-title")
        yield LiveTable(RISK_COLUMNS, id="sla-risk")

    def focus_main(self) -> None:
        self.query_one("#sla-breached", LiveTable).focus()

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        if self._polled_at is None or time.monotonic() - self._polled_at >= POLL_S:
            self._polled_at = time.monotonic()
            self.run_worker(self._poll(), exclusive=True, group="sla-poll", exit_on_error=False)
        revision = (desk.rev.sla, desk.rev.jobs, desk.rev.queues)
        second = int(now.timestamp())
        if revision == self._drawn and second == self._drawn_second:
            return
        self._drawn, self._drawn_second = revision, second
        self.query_one("#sla-levels", Static).update(level_line(desk))
        breaches = desk.breach_rows()
        risky = desk.at_risk_jobs()
        self.query_one("#sla-breached-title", Static).update(
            Text.assemble(
                ("BREACHED ", "bold #ff5f5f"),
                (
                    f"{len(breaches)} jobs missed their deadline (latest deadline first within each level)",
                    "dim",
                ),
            )
        )
        self.query_one("#sla-risk-title", Static).update(
            Text.assemble(
                ("AT RISK ", "bold #ffaf00"),
                (f"{len(risky)} live jobs flagged as likely to miss their deadline", "dim"),
            )
        )
        self.query_one("#sla-breached", LiveTable).sync(
            [breach_row(j, now) for j in breaches[:300]]
        )
        self.query_one("#sla-risk", LiveTable).sync([risk_row(j, now) for j in risky[:300]])

    async def _poll(self) -> None:
        answer = await self.host.ask_daemon("SLA report", self.host.calls.sla(), quiet=True)
        if answer.ok and isinstance(answer.value, dict):
            self.host.desk.apply_sla(answer.value)

    def action_open_job(self) -> None:
        focused = self.screen.focused
        table = (
            focused
            if isinstance(focused, LiveTable)
            else self.query_one("#sla-breached", LiveTable)
        )
        key = table.key_at_cursor()
        if key is None:
            self.host.notify("No job selected.", severity="warning")
            return
        self.host.open_job(key)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_job()
