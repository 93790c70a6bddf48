"""The detail pane of the selected job: its request, the score explanation, its state history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from gexdaemon.core.explain import describe
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.views.jobs.table import why_text


def _grid() -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def request_panel(job: s.JobRow, detail: s.JobDetail | None, now: datetime) -> Group:
    request = detail.request if detail is not None else None
    table = _grid()
    table.add_row("job", Text(readout.short_id(job.job_id), style="bold"))
    table.add_row(
        "what",
        Text.assemble(
            (job.market_symbol, "bold"),
            " ",
            job.data_type.value.replace("_", "-"),
            "  ",
            readout.level_text(job.priority_level),
            "  ",
            readout.status_text(job),
        ),
    )
    why = why_text(job)
    if why.plain:
        table.add_row("error" if job.error_message else "at risk", why)
    table.add_row("source", Text(job.source_url))
    table.add_row(
        "asked",
        Text(
            f"{readout.clock_time(job.requested_at)} ({readout.ago(now, job.requested_at)}), "
            f"origin {job.origin.value}"
        ),
    )
    if job.deadline is not None:
        table.add_row(
            "deadline",
            Text.assemble(
                f"{readout.clock_time(job.deadline)}  ",
                readout.countdown(now, job.deadline)
                if job.completed_at is None
                else Text(job.sla_status.value),
            ),
        )
    else:
        table.add_row("deadline", Text("none (LOW is best effort)", style="dim"))
    phase = job.dispatch_phase.value if job.dispatch_phase else "-"
    table.add_row("retries", Text(f"{job.retry_count}  phase {phase}"))
    metadata = request.metadata if request is not None else {}
    if metadata:
        table.add_row("metadata", Text(", ".join(f"{k}={v}" for k, v in metadata.items())))
    return Group(Text("REQUEST", style="bold underline"), table)


def score_panel(job: s.JobRow, detail: s.JobDetail | None) -> Group:
    explanation: dict[str, Any] = detail.request.explanation if detail and detail.request else {}
    title = Text("SCORE", style="bold underline")
    if not explanation:
        return Group(
            title,
            Text(f"{readout.words(job.priority_level)} {job.priority_score:.3f}"),
            Text(
                "loading the explanation…" if detail is None else "no explanation recorded",
                style="dim",
            ),
        )
    table = _grid()
    for rule in explanation.get("matched") or ():
        table.add_row(
            "matched",
            Text(
                f"{rule.get('name')!r} v{rule.get('version')} → {float(rule.get('score') or 0):.2f}"
            ),
        )
    base = explanation.get("base") or {}
    table.add_row("base", Text(f"{float(base.get('score') or 0):.2f} from {base.get('from', '-')}"))
    reliability = explanation.get("reliability") or {}
    if reliability:
        table.add_row(
            "reliability",
            Text(
                f"{float(reliability.get('score') or 0):.2f} × weight "
                f"{float(reliability.get('weight') or 0):.2f} → "
                f"{float(reliability.get('adjustment') or 0):+.3f}"
            ),
        )
    thresholds = explanation.get("thresholds") or {}
    if thresholds:
        table.add_row(
            "thresholds",
            Text("  ".join(f"{k.upper()} ≥{float(v):.2f}" for k, v in thresholds.items())),
        )
    rules = explanation.get("rules") or {}
    if rules:
        fingerprint = str(rules.get("fingerprint", ""))[:8]
        table.add_row("rules", Text(f"{rules.get('active', '?')} active ({fingerprint})"))
    return Group(title, Text(describe(explanation), style="bold"), table)


def history_panel(detail: s.JobDetail | None, error: str | None) -> Group:
    title = Text("HISTORY", style="bold underline")
    if error:
        return Group(title, Text(error, style=readout.RED))
    if detail is None:
        return Group(title, Text("loading…", style="dim"))
    table = _grid()
    for change in detail.history:
        before, after = change.from_status, change.to_status
        arrow = Text.assemble(
            Text(readout.words(before), style=readout.STATUS_STYLE[before]) if before else "",
            " → " if before else "→ ",
            Text(readout.words(after), style=readout.STATUS_STYLE[after]),
        )
        if change.reason:
            arrow.append(f"  {change.reason}", style="dim")
        table.add_row(readout.clock_time(change.occurred_at, millis=True), arrow)
    if detail.snapshot_id:
        table.add_row("snapshot", Text(readout.short_id(detail.snapshot_id)))
    return Group(title, table)


class JobDetailPane(Horizontal):
    """The request, the score explanation and the state history of the selected job."""

    def compose(self) -> ComposeResult:
        yield Static(id="job-request", classes="detail-part")
        yield Static(id="job-score", classes="detail-part")
        yield Static(id="job-history", classes="detail-part")

    _shown: tuple[Any, ...] | None = None

    def show_job(
        self,
        job: s.JobRow | None,
        detail: s.JobDetail | None,
        error: str | None,
        now: datetime,
    ) -> None:
        # Redraw only when something shown changed (a Static update costs a layout pass).
        shown = (job, detail, error, int(now.timestamp()))
        if shown == self._shown:
            return
        self._shown = shown
        if job is None:
            self.query_one("#job-request", Static).update(Text("No job selected.", style="dim"))
            self.query_one("#job-score", Static).update("")
            self.query_one("#job-history", Static).update("")
            return
        self.query_one("#job-request", Static).update(request_panel(job, detail, now))
        self.query_one("#job-score", Static).update(score_panel(job, detail))
        self.query_one("#job-history", Static).update(history_panel(detail, error))
