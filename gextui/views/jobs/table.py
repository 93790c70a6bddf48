"""The live jobs table: one keyed row per job, a flush rewriting only the cells that changed.

The desk may hold 10,000 live jobs; the table shows the `ROW_CAP` first ones
in the chosen order. A job whose row is the same object as last flush is
skipped outright. The clock-driven cells (age, deadline countdown) are
rewritten only for the rows on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

from gexdaemon.core.vocab import SlaStatus
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.columns import Column
from gextui.widgets.rowgrid import RowGrid

COLUMNS: tuple[Column, ...] = (
    Column("job", "JOB", 8),
    Column("level", "LEVEL", 8),
    Column("symbol", "SYM", 5),
    Column("type", "TYPE", 9, drop=5),
    Column("status", "STATUS", 12),
    Column(
        "age", "AGE/RAN", 7, right=True
    ),  # queued jobs: since queued; finished: how long they ran
    Column("deadline", "DEADLINE", 11),
    Column("retries", "RTY", 3, drop=4, right=True),
    Column("score", "SCORE", 5, drop=7, right=True),
    Column("phase", "PHASE", 13, drop=6),
    Column("source", "SOURCE", 16, drop=3),
    Column("why", "WHY", 20, flex=True),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
TIME_COLUMNS = ("age", "deadline")
COLUMN_SORT = {
    "job": "age",
    "level": "level",
    "symbol": "symbol",
    "type": "type",
    "status": "status",
    "age": "age",
    "deadline": "deadline",
    "retries": "retries",
    "score": "score",
    "phase": "phase",
    "source": "source",
    "why": "status",
}


def why_text(job: s.JobRow) -> Text:
    """Why a job needs a look: its error, or the forecast's reason it may miss its deadline."""
    if job.error_message:
        return Text(job.error_message, style=readout.RED)
    if job.at_risk and job.status.is_live:
        return Text(job.at_risk_reason or "forecast past its deadline", style=readout.AMBER)
    return Text("")


def static_cells(job: s.JobRow) -> dict[str, Text]:
    retries = job.retry_count
    return {
        "level": readout.level_text(job.priority_level),
        "symbol": Text(job.market_symbol, style="bold"),
        "type": Text(job.data_type.value.replace("_", "-")),
        "status": readout.status_text(job),
        "retries": Text(str(retries), style=f"bold {readout.AMBER}" if retries else "dim"),
        "score": Text(f"{job.priority_score:.3f}"),
        "phase": Text(job.dispatch_phase.value if job.dispatch_phase else "-", style="dim"),
        "source": Text(readout.source_host(job.source or job.source_url)),
        "why": why_text(job),
    }


def time_cells(job: s.JobRow, now: datetime) -> dict[str, Text]:
    if job.completed_at is not None:
        took = readout.seconds_between(job.completed_at, job.started_at)
        age = Text(readout.span(took), style="dim")
        if job.sla_status is SlaStatus.BREACHED:
            deadline = Text("BREACHED", style=f"bold {readout.RED}")
        else:
            deadline = Text(job.sla_status.value, style="dim")
        return {"age": age, "deadline": deadline}
    return {
        "age": Text(readout.age(now, job.queued_at)),
        "deadline": readout.countdown(now, job.deadline),
    }


@dataclass
class SyncReport:
    """What one `JobTable.sync` did (the benchmark and tests read it)."""

    added: int = 0
    removed: int = 0
    updated_cells: int = 0
    reordered: bool = False


class JobTable(RowGrid):
    """One row per job, keyed by job id; a flush rewrites only the cells that changed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, **kwargs)
        self._jobs: dict[str, s.JobRow] = {}
        self._times: dict[str, tuple[str, ...]] = {}

    def job_at_cursor(self) -> s.JobRow | None:
        key = self.key_at_cursor()
        return None if key is None else self._jobs.get(key)

    def sync(self, jobs: list[s.JobRow], now: datetime) -> SyncReport:
        """Make the rows show `jobs`, in that order, writing only what changed."""
        report = SyncReport()
        previous = self.order
        wanted = [j.job_id for j in jobs]
        wanted_set = set(wanted)
        report.removed = sum(1 for k in previous if k not in wanted_set)
        for job in jobs:
            key = job.job_id
            if self._jobs.get(key) is job:
                continue  # the same row as last flush: nothing in it changed
            self._jobs[key] = job
            cells = static_cells(job)
            new = key not in self._times
            if new:
                times = time_cells(job, now)
                cells |= times | {"job": readout.job_id_text(key)}
                self._times[key] = tuple(times[c].plain for c in TIME_COLUMNS)
                report.added += 1
            changed = self.set_cells(key, cells)
            if not new and changed:
                report.updated_cells += changed
                self.refresh_row(key)
        before = set(previous)
        report.reordered = [k for k in previous if k in wanted_set] != [
            k for k in wanted if k in before
        ]
        for key in [k for k in self._jobs if k not in wanted_set]:
            del self._jobs[key]
            self._times.pop(key, None)
        self.show(wanted)
        report.updated_cells += self.refresh_clock(now)
        return report

    def refresh_clock(self, now: datetime) -> int:
        """Rewrite the age and countdown cells of the rows on screen; returns cells written."""
        written = 0
        for key in self.visible_keys():
            job = self._jobs.get(key)
            if job is None:
                continue
            cells = time_cells(job, now)
            plain = tuple(cells[c].plain for c in TIME_COLUMNS)
            if plain != self._times.get(key):
                written += self.set_cells(key, cells)
                self._times[key] = plain
                self.refresh_row(key)
        return written
