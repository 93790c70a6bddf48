"""The SLA view: breached and at-risk jobs, how late, and why (the reason first, then the facts).

Breaches come from two places: `sla.breached` events as they happen, and the
daemon's record (`GET /v1/sla`, polled every few seconds while the view is
shown, so breaches from before the dashboard attached are listed too). The WHY
column is the one a trader acts on, so it is kept at any width, with the whole
sentence of the selected row under the tables.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from gexdaemon.core.vocab import JobStatus
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.columns import Column
from gextui.desk import Breach, DeskState
from gextui.link import ask
from gextui.messages import OpenJob
from gextui.views.base import DeskContext, DeskView
from gextui.widgets.livetable import LiveTable, Row

POLL_S = 5.0
ROWS = 300

JOB = Column("job", "JOB", 8, drop=3)
LEVEL = Column("level", "LEVEL", 8)
SYMBOL = Column("symbol", "SYM", 5)
TYPE = Column("type", "TYPE", 9, drop=8)
STATUS = Column("status", "STATUS", 12, drop=4)
PHASE = Column("phase", "PHASE", 13, drop=7)
RETRIES = Column("retries", "RTY", 3, drop=5, right=True)
SOURCE = Column("source", "SOURCE", 22, drop=6)
WHY = Column("why", "WHY", 16, flex=True)
BREACH_COLUMNS = (
    JOB,
    LEVEL,
    SYMBOL,
    TYPE,
    STATUS,
    Column("late", "LATE BY", 19),
    Column("deadline", "DEADLINE", 11, drop=5),
    PHASE,
    RETRIES,
    SOURCE,
    WHY,
)
RISK_COLUMNS = (
    JOB,
    LEVEL,
    SYMBOL,
    TYPE,
    STATUS,
    Column("left", "DEADLINE", 12),
    Column("estimate", "EST. RUN", 8, drop=6, right=True),
    Column("waiting", "WAITING", 8, drop=5, right=True),
    PHASE,
    RETRIES,
    SOURCE,
    WHY,
)


def lateness(job: s.JobRow, now: datetime) -> Text:
    """How late the job is (live) or was (finished); a job that failed for good early says so."""
    if job.deadline is None:
        return Text("-", style="dim")
    late = ((job.completed_at or now) - job.deadline).total_seconds()
    if late < 0:
        return Text(f"failed {readout.span(-late)} early", style=readout.RED)
    still = "" if job.completed_at else " and counting"
    return Text(f"{readout.span(late)}{still}", style=f"bold {readout.RED}")


def why(job: s.JobRow) -> Text:
    """The reason in the daemon's words (error, forecast), else what the job's state says."""
    if job.error_message:
        return Text(job.error_message, style=readout.RED)
    if job.at_risk_reason:
        return Text(job.at_risk_reason, style=readout.AMBER)
    if job.status is JobStatus.QUEUED:
        return Text(
            f"still queued after {job.retry_count} retries"
            if job.retry_count
            else "still queued: not dispatched in time"
        )
    if job.status is JobStatus.PROCESSING:
        return Text("still running past the deadline (slow source or a big chain)")
    if job.status is JobStatus.COMPLETED:
        return Text("finished after the deadline")
    return Text(readout.words(job.status))


def job_cells(job: s.JobRow) -> dict[str, Text]:
    """The cells both tables share."""
    return {
        "job": readout.job_id_text(job.job_id),
        "level": readout.level_text(job.priority_level),
        "symbol": Text(job.market_symbol, style="bold"),
        "type": Text(job.data_type.value.replace("_", "-")),
        "status": readout.status_text(job),
        "phase": Text(job.dispatch_phase.value if job.dispatch_phase else "-", style="dim"),
        "retries": Text(str(job.retry_count)),
        "source": Text(readout.source_host(job.source or job.source_url)),
        "why": why(job),
    }


def breach_row(breach: Breach, now: datetime) -> Row:
    job = breach.job
    return job.job_id, job_cells(job) | {
        "late": lateness(job, now),
        "deadline": Text(readout.clock_time(job.deadline)),
    }


def risk_row(job: s.JobRow, now: datetime) -> Row:
    return job.job_id, job_cells(job) | {
        "left": readout.countdown(now, job.deadline),
        "estimate": Text(readout.span(job.estimated_processing_time_s)),
        "waiting": Text(readout.age(now, job.queued_at)),
    }


def level_line(desk: DeskState) -> Text:
    text = Text()
    for row in desk.level_rows():
        if row.sla_s is None:
            continue
        text.append_text(readout.level_text(row.level))
        text.append(f" < {readout.span(row.sla_s)}: ", style="dim")
        text.append(f"met {readout.percent(row.sla_met_ratio)} ")
        breaches = row.breaches_last_hour
        text.append(
            f"{breaches} breached in 1h", style=f"bold {readout.RED}" if breaches else "dim"
        )
        text.append(
            f" ({row.met_total} met / {row.breached_total} breached since the first job",
            style="dim",
        )
        if row.at_risk_precision is not None:
            text.append(
                f"; {readout.percent(row.at_risk_precision)} of those flagged at risk missed",
                style="dim",
            )
        text.append(")\n", style="dim")
    return text


class SlaView(DeskView):
    VIEW_ID = "sla"
    BINDINGS = bindings_for("sla")

    def __init__(self, context: DeskContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self._polled_at: float | None = None  # monotonic
        self._drawn: tuple[int, int, int] | None = None
        self._drawn_second: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="sla-levels")
        yield Static(id="sla-breached-title", classes="section-title")
        yield LiveTable(BREACH_COLUMNS, id="sla-breached")
        yield Static(id="sla-risk-title", classes="section-title")
        yield LiveTable(RISK_COLUMNS, id="sla-risk")
        yield Static(id="sla-why", classes="hint")

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
                ("BREACHED ", f"bold {readout.RED}"),
                (f"{len(breaches)} jobs missed their deadline (latest first per level)", "dim"),
            )
        )
        self.query_one("#sla-risk-title", Static).update(
            Text.assemble(
                ("AT RISK ", f"bold {readout.AMBER}"),
                (f"{len(risky)} live jobs likely to miss their deadline", "dim"),
            )
        )
        self.query_one("#sla-breached", LiveTable).sync(
            [breach_row(b, now) for b in breaches[:ROWS]]
        )
        self.query_one("#sla-risk", LiveTable).sync([risk_row(j, now) for j in risky[:ROWS]])
        self._show_why()

    async def _poll(self) -> None:
        answer = await ask(self.context.calls.sla())
        if answer.value is not None:
            self.desk.apply_sla(answer.value)

    def _table(self) -> LiveTable:
        focused = self.screen.focused
        return (
            focused
            if isinstance(focused, LiveTable)
            else self.query_one("#sla-breached", LiveTable)
        )

    @on(DataTable.RowHighlighted)
    def _show_why(self) -> None:
        key = self._table().key_at_cursor()
        job = self.desk.job(key) if key else None
        line = Text(no_wrap=True, overflow="ellipsis")
        if job is not None:
            line.append(f"{readout.short_id(job.job_id)} why: ", style="bold")
            line.append_text(why(job))
            line.append("  (enter opens the job)", style="dim")
        self.query_one("#sla-why", Static).update(line)

    def action_open_job(self) -> None:
        key = self._table().key_at_cursor()
        if key is None:
            self.notify("No job selected.", severity="warning")
            return
        self.post_message(OpenJob(key))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_job()
