"""The Jobs view: a capped, keyed live table of jobs with sorting, filtering and a detail pane.

The desk may hold 10,000 live jobs; the table shows the `ROW_CAP` first ones
in the chosen order. Rows are keyed by job id and a flush writes only the cells
that changed (a job whose summary is the same object as last time is skipped
outright; sort keys are cached the same way). The clock-driven cells (age,
deadline countdown) are rewritten only for the rows on screen. Finished jobs are
in the "recent" scope (this session's) and the "history" scope (paged from the
daemon's record), never in the live table.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input, Static

from gexdaemon.core.explain import describe
from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import LEVELS, DeskState
from gextui.screens.confirm import ConfirmScreen
from gextui.views.base import DeskView
from gextui.views.jobgrid import GridColumn, RowGrid

ROW_CAP = 300
STATUSES = ("queued", "processing", "completed", "failed", "cancelled")
DATA_TYPES = ("real_time", "snapshot", "historical")
SCOPES = ("live", "recent", "history")
HISTORY_PAGE = 100

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("job", "JOB", 8),
    ("level", "LEVEL", 8),
    ("symbol", "SYM", 5),
    ("type", "TYPE", 10),
    ("status", "STATUS", 12),
    ("age", "AGE/RAN", 7),  # queued jobs: since queued; finished ones: how long they ran
    ("deadline", "DEADLINE", 11),
    ("retries", "RTY", 3),
    ("score", "SCORE", 5),
    ("phase", "PHASE", 13),
    ("source", "SOURCE", 22),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
TIME_COLUMNS = ("age", "deadline")


def short_id(job_id: Any) -> str:
    """The random tail of a job id (the head of a time-ordered id is its timestamp)."""
    return str(job_id or "")[-8:]


# ---------------------------------------------------------------------------
# Filtering and ordering (plain functions over job summaries)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """`/` text: `level:critical status:queued sym:SPX source:cboe type:real_time` and free words.

    A bare level or status name filters on it; other words must all appear in the
    job's symbol, type, source URL, origin, phase or id.
    """

    levels: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> JobFilter:
        levels: set[str] = set()
        statuses: set[str] = set()
        symbols: set[str] = set()
        types: set[str] = set()
        words: list[str] = []
        for token in text.lower().split():
            key, _, value = token.partition(":")
            if value and key in ("level", "lvl", "l"):
                levels.update(_expand(value, LEVELS))
            elif value and key in ("status", "st"):
                statuses.update(_expand(value, STATUSES))
            elif value and key in ("sym", "symbol"):
                symbols.add(value.upper())
            elif value and key == "type":
                types.update(_expand(value, DATA_TYPES))
            elif value and key in ("source", "src"):
                words.append(value)
            elif token in LEVELS:
                levels.add(token)
            elif token in STATUSES:
                statuses.add(token)
            else:
                words.append(token)
        return cls(
            frozenset(levels),
            frozenset(statuses),
            frozenset(symbols),
            frozenset(types),
            tuple(words),
            text.strip(),
        )

    def matches(self, job: Mapping[str, Any]) -> bool:
        if self.levels and job.get("priority_level") not in self.levels:
            return False
        if self.statuses and job.get("status") not in self.statuses:
            return False
        if self.symbols and job.get("market_symbol") not in self.symbols:
            return False
        if self.types and job.get("data_type") not in self.types:
            return False
        if self.words:
            haystack = " ".join(
                str(job.get(k) or "")
                for k in (
                    "market_symbol",
                    "data_type",
                    "source_url",
                    "origin",
                    "dispatch_phase",
                    "job_id",
                )
            ).lower()
            return all(word in haystack for word in self.words)
        return True

    @property
    def is_empty(self) -> bool:
        return not self.text


def _expand(value: str, names: Iterable[str]) -> set[str]:
    """`c`, `crit` or `critical,high`: prefixes of the allowed names.

    A part naming nothing is kept as typed, so `level:urgent` matches no job
    (rather than silently matching every job).
    """
    out: set[str] = set()
    for part in value.split(","):
        found = {n for n in names if part and n.startswith(part)}
        out |= found or {part}
    return out


def _rank(value: Any, order: tuple[str, ...]) -> int:
    try:
        return order.index(str(value))
    except ValueError:
        return len(order)


STATUS_URGENCY = ("processing", "queued", "failed", "cancelled", "completed")
FAR = "~"  # sorts after every ISO instant


def _urgency(job: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        _rank(job.get("status"), STATUS_URGENCY),
        _rank(job.get("priority_level"), LEVELS),
        job.get("deadline") or FAR,
        job.get("queued_at") or FAR,
    )


SORTS: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {
    # name: (what ascending means, key)
    "urgency": ("running first, then level, then deadline", _urgency),
    "level": (
        "most urgent level first",
        lambda j: (_rank(j.get("priority_level"), LEVELS), j.get("queued_at") or FAR),
    ),
    "deadline": (
        "nearest deadline first",
        lambda j: (j.get("deadline") or FAR, _rank(j.get("priority_level"), LEVELS)),
    ),
    "age": ("oldest first", lambda j: j.get("queued_at") or FAR),
    "symbol": ("A to Z", lambda j: (str(j.get("market_symbol") or ""), _urgency(j))),
    "status": (
        "running, queued, failed, done",
        lambda j: (_rank(j.get("status"), STATUS_URGENCY), _urgency(j)),
    ),
    "retries": ("fewest retries first", lambda j: (int(j.get("retry_count") or 0), _urgency(j))),
    "score": ("lowest score first", lambda j: float(j.get("priority_score") or 0.0)),
    "type": (
        "real-time, snapshot, historical",
        lambda j: (_rank(j.get("data_type"), DATA_TYPES), _urgency(j)),
    ),
    "phase": ("A to Z", lambda j: (str(j.get("dispatch_phase") or "~"), _urgency(j))),
    "source": (
        "A to Z",
        lambda j: (str(j.get("source") or j.get("source_url") or ""), _urgency(j)),
    ),
}
SORT_NAMES = tuple(SORTS)
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
}


class SortKeys:
    """Sort keys per job, computed again only for jobs that changed.

    The desk replaces a job's dict whenever the job changes, so a key cached with
    the dict it came from stays right for as long as that very dict is current.
    """

    def __init__(self) -> None:
        self.sort = ""
        self._keys: dict[str, tuple[Mapping[str, Any], Any]] = {}

    def for_sort(self, sort: str, live: int) -> Callable[[Mapping[str, Any]], Any]:
        if sort != self.sort or len(self._keys) > 2 * live + 1000:
            self._keys.clear()
            self.sort = sort
        compute = SORTS[sort][1]
        keys = self._keys

        def key(job: Mapping[str, Any]) -> Any:
            job_id = job["job_id"]
            hit = keys.get(job_id)
            if hit is not None and hit[0] is job:
                return hit[1]
            value = compute(job)
            keys[job_id] = (job, value)
            return value

        return key


def top_jobs(
    jobs: Iterable[Mapping[str, Any]],
    flt: JobFilter,
    sort: str,
    *,
    reverse: bool = False,
    cap: int = ROW_CAP,
    keys: SortKeys | None = None,
) -> tuple[list[Mapping[str, Any]], int]:
    """The first `cap` jobs passing `flt` in the chosen order, and how many passed."""
    passed = [j for j in jobs if flt.matches(j)] if not flt.is_empty else list(jobs)
    key = keys.for_sort(sort, len(passed)) if keys is not None else SORTS[sort][1]
    pick = heapq.nlargest if reverse else heapq.nsmallest
    return pick(cap, passed, key=key), len(passed)


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


def static_cells(job: Mapping[str, Any]) -> dict[str, Text]:
    score = job.get("priority_score")
    retries = int(job.get("retry_count") or 0)
    return {
        "level": readout.level_text(job.get("priority_level")),
        "symbol": Text(str(job.get("market_symbol") or "?"), style="bold"),
        "type": Text(str(job.get("data_type") or "").replace("_", "-")),
        "status": readout.status_text(dict(job)),
        "retries": Text(str(retries), style="bold #ffaf00" if retries else "dim"),
        "score": Text(f"{float(score):.3f}" if isinstance(score, int | float) else "-"),
        "phase": Text(str(job.get("dispatch_phase") or "-"), style="dim"),
        "source": Text(readout.source_host(job.get("source_url") or job.get("source"))),
    }


def time_cells(job: Mapping[str, Any], now: datetime) -> dict[str, Text]:
    finished = job.get("completed_at")
    if finished:
        took = readout.seconds_between(
            readout.parse_instant(finished) or now, job.get("started_at")
        )
        age = Text(readout.span(took) if took is not None else "-", style="dim")
        deadline: Text = Text(
            "met" if job.get("sla_status") == "met" else str(job.get("sla_status") or "-"),
            style="dim",
        )
        if job.get("sla_status") == "breached":
            deadline = Text("BREACHED", style="bold #ff5f5f")
        return {"age": age, "deadline": deadline}
    return {
        "age": Text(readout.age(now, job.get("queued_at") or job.get("requested_at"))),
        "deadline": readout.countdown(now, job.get("deadline")),
    }


# ---------------------------------------------------------------------------
# The live table
# ---------------------------------------------------------------------------


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
        super().__init__([GridColumn(k, label, width) for k, label, width in COLUMNS], **kwargs)
        self._jobs: dict[str, Mapping[str, Any]] = {}
        self._times: dict[str, tuple[str, ...]] = {}

    def job_at_cursor(self) -> Mapping[str, Any] | None:
        key = self.key_at_cursor()
        return None if key is None else self._jobs.get(key)

    def sync(self, jobs: list[Mapping[str, Any]], now: datetime) -> SyncReport:
        """Make the rows show `jobs`, in that order, writing only what changed."""
        report = SyncReport()
        previous = self.order
        wanted = [str(j["job_id"]) for j in jobs]
        wanted_set = set(wanted)
        report.removed = sum(1 for k in previous if k not in wanted_set)
        for job in jobs:
            key = str(job["job_id"])
            if self._jobs.get(key) is job:
                continue  # the same summary as last flush: nothing in its row changed
            self._jobs[key] = job
            cells = static_cells(job)
            new = key not in self._times
            if new:
                times = time_cells(job, now)
                cells |= times | {"job": Text(short_id(key), style="dim")}
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


# ---------------------------------------------------------------------------
# The detail pane
# ---------------------------------------------------------------------------


def request_panel(job: Mapping[str, Any], detail: Mapping[str, Any] | None, now: datetime) -> Group:
    request = (detail or {}).get("request") or {}
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("job", Text(str(job.get("job_id", ""))))
    table.add_row(
        "what",
        Text.assemble(
            (str(job.get("market_symbol") or "?"), "bold"),
            " ",
            str(job.get("data_type") or "").replace("_", "-"),
            "  ",
            readout.level_text(job.get("priority_level")),
            "  ",
            readout.status_text(dict(job)),
        ),
    )
    table.add_row("source", Text(str(job.get("source_url") or request.get("source_url") or "-")))
    asked = job.get("requested_at") or request.get("requested_at")
    table.add_row(
        "asked",
        Text(
            f"{readout.clock_time(asked)} ET ({readout.ago(now, asked)}), origin {job.get('origin') or request.get('origin') or '-'}"
        ),
    )
    deadline = job.get("deadline")
    if deadline:
        table.add_row(
            "deadline",
            Text.assemble(
                f"{readout.clock_time(deadline)} ET  ",
                readout.countdown(now, deadline)
                if not job.get("completed_at")
                else Text(str(job.get("sla_status"))),
            ),
        )
    else:
        table.add_row("deadline", Text("none (LOW is best effort)", style="dim"))
    table.add_row(
        "retries", Text(f"{job.get('retry_count', 0)}  phase {job.get('dispatch_phase') or '-'}")
    )
    metadata = request.get("metadata") or {}
    if metadata:
        table.add_row("metadata", Text(", ".join(f"{k}={v}" for k, v in metadata.items())))
    if job.get("error_message"):
        table.add_row("error", Text(str(job.get("error_message")), style="#ff5f5f"))
    return Group(Text("REQUEST", style="bold underline"), table)


def score_panel(job: Mapping[str, Any], detail: Mapping[str, Any] | None) -> Group:
    explanation = ((detail or {}).get("request") or {}).get("explanation") or {}
    title = Text("SCORE", style="bold underline")
    if not explanation:
        score = job.get("priority_score")
        words = f"{float(score):.3f}" if isinstance(score, int | float) else "-"
        return Group(
            title,
            Text(f"{str(job.get('priority_level', '?')).upper()} {words}"),
            Text(
                "loading the explanation…" if detail is None else "no explanation recorded",
                style="dim",
            ),
        )
    lines: list[Any] = [title, Text(describe(explanation), style="bold")]
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
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
                f"{float(reliability.get('score') or 0):.2f} × weight {float(reliability.get('weight') or 0):.2f} → {float(reliability.get('adjustment') or 0):+.3f}"
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
        table.add_row(
            "rules",
            Text(
                f"{rules.get('active', '?')} active (fingerprint {str(rules.get('fingerprint', ''))[:8]})"
            ),
        )
    lines.append(table)
    return Group(*lines)


def history_panel(detail: Mapping[str, Any] | None, error: str | None) -> Group:
    title = Text("HISTORY", style="bold underline")
    if error:
        return Group(title, Text(error, style="#ff5f5f"))
    if detail is None:
        return Group(title, Text("loading…", style="dim"))
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for change in detail.get("history") or ():
        before = change.get("from_status")
        after = str(change.get("to_status") or "?")
        arrow = Text.assemble(
            Text(str(before).upper(), style=readout.STATUS_STYLE.get(str(before), ""))
            if before
            else Text(""),
            " → " if before else "→ ",
            Text(after.upper(), style=readout.STATUS_STYLE.get(after, "")),
        )
        if change.get("reason"):
            arrow.append(f"  {change['reason']}", style="dim")
        table.add_row(readout.clock_time(change.get("occurred_at"), millis=True), arrow)
    if detail.get("snapshot_id"):
        table.add_row("snapshot", Text(str(detail["snapshot_id"])))
    return Group(title, table)


class JobDetail(Horizontal):
    """The request, the score explanation and the state history of the selected job."""

    def compose(self) -> ComposeResult:
        yield Static(id="job-request", classes="detail-part")
        yield Static(id="job-score", classes="detail-part")
        yield Static(id="job-history", classes="detail-part")

    _shown: tuple[Any, ...] | None = None

    def show_job(
        self,
        job: Mapping[str, Any] | None,
        detail: Mapping[str, Any] | None,
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


class FilterInput(Input):
    BINDINGS: ClassVar = [("escape", "clear_filter", "Clear filter")]

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, ""))


# ---------------------------------------------------------------------------
# The view
# ---------------------------------------------------------------------------


class JobsView(DeskView):
    VIEW_ID = "jobs"
    BINDINGS = bindings_for("jobs")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scope = "live"
        self.job_filter = JobFilter()
        self.sort = "urgency"
        self.reverse = False
        self.row_cap = ROW_CAP
        self._sort_keys = SortKeys()
        self.last_sync: SyncReport | None = None
        self._drawn_rev: tuple[int, str] | None = None
        self._dirty = True
        self._drawn_second: int | None = None
        self._shown: int = 0
        self._passed: int = 0
        self._history: list[dict[str, Any]] = []
        self._history_cursors: list[str | None] = [None]
        self._history_next: str | None = None
        self._history_error: str | None = None
        self._detail_job_id: str | None = None
        self._detail: dict[str, Any] | None = None
        self._detail_error: str | None = None
        self._detail_status: tuple[Any, ...] | None = None
        self._detail_timer: Timer | None = None
        self._pinned_job: dict[str, Any] | None = None
        self._summary = Text()

    def compose(self) -> ComposeResult:
        yield FilterInput(
            placeholder="filter: level:critical status:queued sym:SPX type:real_time or any words (Enter keeps, Esc clears)",
            id="job-filter",
        )
        yield Static(id="jobs-summary")
        yield JobTable(id="job-table")
        yield JobDetail(id="job-detail")

    def on_mount(self) -> None:
        self.query_one("#job-filter", FilterInput).display = False

    @property
    def table(self) -> JobTable:
        return self.query_one(JobTable)

    def focus_main(self) -> None:
        self.table.focus()

    # -- drawing ------------------------------------------------------------------

    def _jobs_in_scope(self, desk: DeskState) -> Iterable[Mapping[str, Any]]:
        if self.scope == "live":
            return desk.jobs.values()
        if self.scope == "recent":
            return desk.recent.values()
        return self._history

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        revision = (desk.rev.jobs, self.scope)
        if self._dirty or revision != self._drawn_rev:
            ordered, self._passed = top_jobs(
                self._jobs_in_scope(desk),
                self.job_filter,
                self.sort,
                reverse=self.reverse,
                cap=self.row_cap,
                keys=self._sort_keys,
            )
            self._shown = len(ordered)
            column = self.sort if self.sort in COLUMN_KEYS else None
            self.table.header_marks = {column: " ▼" if self.reverse else " ▲"} if column else {}
            self.last_sync = self.table.sync(ordered, now)
            self._drawn_rev = revision
            self._dirty = False
            self._drawn_second = int(now.timestamp())
            self._show_summary(desk)
            self._follow_cursor(desk, now)
        elif self._drawn_second != int(now.timestamp()):
            self._drawn_second = int(now.timestamp())
            self.table.refresh_clock(now)
            self._show_summary(desk)
            self._refresh_detail(desk, now)

    def _show_summary(self, desk: DeskState) -> None:
        text = Text()
        text.append(f" {self.scope.upper()} ", style="bold reverse")
        if self.scope == "live":
            held = desk.daemon_live_total()
            text.append(f"  {readout.count(len(desk.jobs))} live jobs here")
            if held > len(desk.jobs):
                text.append(
                    f" of {readout.count(held)} the daemon holds (it sends the most urgent 2,000 on attach)",
                    style="#ffaf00",
                )
        elif self.scope == "recent":
            text.append(f"  {readout.count(len(desk.recent))} finished since attach")
        else:
            page = len(self._history_cursors)
            text.append(f"  page {page} of the daemon's record, {len(self._history)} jobs")
            text.append(
                "  ] next  [ newest" if self._history_next else "  (last page)  [ newest",
                style="dim",
            )
            if self._history_error:
                text.append(f"  {self._history_error}", style="#ff5f5f")
        if self._passed > self._shown:
            text.append(f"  · showing {self._shown:,} of {self._passed:,}", style="dim")
        elif not self.job_filter.is_empty:
            text.append(f"  · {self._passed:,} match", style="dim")
        words, _ = SORTS[self.sort]
        arrow = "▼" if self.reverse else "▲"
        text.append(
            f"  · sort {self.sort} {arrow} ({'reversed: ' if self.reverse else ''}{words})",
            style="dim",
        )
        if not self.job_filter.is_empty:
            text.append(f"  · filter: {self.job_filter.text}", style="bold #5fd7ff")
        if text != self._summary:
            self._summary = text
            self.query_one("#jobs-summary", Static).update(text)

    # -- the detail pane --------------------------------------------------------------

    def _selected(self) -> Mapping[str, Any] | None:
        return self.table.job_at_cursor() or self._pinned_job

    def _follow_cursor(self, desk: DeskState, now: datetime) -> None:
        job = self._selected()
        job_id = str(job["job_id"]) if job else None
        if job_id != self._detail_job_id:
            self._schedule_detail(job_id)
        self._refresh_detail(desk, now)

    def _refresh_detail(self, desk: DeskState, now: datetime) -> None:
        pane = self.query_one(JobDetail)
        if not pane.display:
            return
        job = self._selected()
        if job is not None and self._detail_job_id == str(job.get("job_id")):
            status = (job.get("status"), job.get("retry_count"), job.get("priority_level"))
            if self._detail_status is not None and status != self._detail_status:
                self._schedule_detail(self._detail_job_id, force=True)
        pane.show_job(job, self._detail, self._detail_error, now)

    def _schedule_detail(self, job_id: str | None, *, force: bool = False) -> None:
        if job_id == self._detail_job_id and not force:
            return
        if job_id != self._detail_job_id:
            self._detail = None
            self._detail_error = None
            self._detail_status = None
        self._detail_job_id = job_id
        if self._detail_timer is not None:
            self._detail_timer.stop()
        if job_id is not None:
            # Arrow keys held down move through many rows; load only where the cursor rests.
            self._detail_timer = self.set_timer(0.15, lambda: self._start_detail_load(job_id))

    def _start_detail_load(self, job_id: str) -> None:
        self.run_worker(
            self._load_detail(job_id), exclusive=True, group="job-detail", exit_on_error=False
        )

    async def _load_detail(self, job_id: str) -> None:
        answer = await self.host.ask_daemon("job detail", self.host.calls.job(job_id), quiet=True)
        if job_id != self._detail_job_id:
            return
        if answer.ok and isinstance(answer.value, dict):
            detail: dict[str, Any] = answer.value
            self._detail = detail
            self._detail_error = None
            job = detail.get("job") or {}
            self._detail_status = (
                job.get("status"),
                job.get("retry_count"),
                job.get("priority_level"),
            )
        else:
            self._detail_error = answer.error or "the daemon sent no detail"
        selected = self._selected()
        if selected is None and self._detail is not None:
            self._pinned_job = (self._detail.get("live") or self._detail.get("job") or {}) | {
                k: v
                for k, v in (self._detail.get("request") or {}).items()
                if k in ("market_symbol", "data_type", "source_url", "origin", "priority_score")
            }
        self.query_one(JobDetail).show_job(
            self._selected(), self._detail, self._detail_error, self.host.now()
        )

    @on(RowGrid.Highlighted, "#job-table")
    def _highlighted(self, event: RowGrid.Highlighted) -> None:
        if event.key is not None:
            self._pinned_job = None
        self._schedule_detail(event.key)

    @on(RowGrid.Selected, "#job-table")
    def _selected_row(self) -> None:
        self.action_toggle_detail()

    @on(RowGrid.HeaderClicked, "#job-table")
    def _header(self, event: RowGrid.HeaderClicked) -> None:
        sort = COLUMN_SORT.get(event.column, "urgency")
        if sort == self.sort:
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = sort, False
        self._redraw()

    def open_job(self, job_id: str, desk: DeskState) -> None:
        """Show one job (from the SLA view): its scope, filtered to its id, detail open."""
        self.scope = (
            "live" if job_id in desk.jobs else "recent" if job_id in desk.recent else "live"
        )
        self._set_filter(short_id(job_id))
        self._pinned_job = (
            desk.jobs.get(job_id) or desk.recent.get(job_id) or desk.breaches.get(job_id)
        )
        self.query_one(JobDetail).display = True
        self._schedule_detail(job_id)

    # -- filtering, sorting, scopes ------------------------------------------------

    def _redraw(self) -> None:
        self._dirty = True
        self.host.flush()

    def _set_filter(self, text: str) -> None:
        box = self.query_one("#job-filter", FilterInput)
        if box.value != text:
            box.value = text
        box.display = bool(text)
        self.job_filter = JobFilter.parse(text)
        self._redraw()

    def action_filter(self) -> None:
        box = self.query_one("#job-filter", FilterInput)
        box.display = True
        box.focus()

    @on(Input.Changed, "#job-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.job_filter = JobFilter.parse(event.value)
        if self.scope == "history":
            self._load_history(reset=True)
        self._redraw()

    @on(Input.Submitted, "#job-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self._set_filter(event.value)
        self.table.focus()

    def action_sort_next(self) -> None:
        self.sort = SORT_NAMES[(SORT_NAMES.index(self.sort) + 1) % len(SORT_NAMES)]
        self.reverse = False
        self._redraw()

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self._redraw()

    def action_next_scope(self) -> None:
        self.scope = SCOPES[(SCOPES.index(self.scope) + 1) % len(SCOPES)]
        if self.scope == "history":
            self._load_history(reset=True)
        self.refresh_bindings()
        self._redraw()

    def action_toggle_detail(self) -> None:
        pane = self.query_one(JobDetail)
        pane.display = not pane.display
        if pane.display:
            self._follow_cursor(self.host.desk, self.host.now())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_page", "first_page") and self.scope != "history":
            return False
        return super().check_action(action, parameters)

    def action_next_page(self) -> None:
        if self._history_next:
            self._history_cursors.append(self._history_next)
            self._load_history(reset=False)

    def action_first_page(self) -> None:
        self._load_history(reset=True)

    def _load_history(self, *, reset: bool) -> None:
        if reset:
            self._history_cursors = [None]
        self.run_worker(
            self._fetch_history(self._history_cursors[-1]),
            exclusive=True,
            group="job-history",
            exit_on_error=False,
        )

    async def _fetch_history(self, cursor: str | None) -> None:
        flt = self.job_filter
        answer = await self.host.ask_daemon(
            "job history",
            self.host.calls.jobs(
                status=next(iter(flt.statuses)) if len(flt.statuses) == 1 else None,
                level=next(iter(flt.levels)) if len(flt.levels) == 1 else None,
                symbol=next(iter(flt.symbols)) if len(flt.symbols) == 1 else None,
                limit=HISTORY_PAGE,
                cursor=cursor,
            ),
            quiet=True,
        )
        if answer.ok and isinstance(answer.value, dict):
            self._history = [dict(j) for j in answer.value.get("jobs") or ()]
            self._history_next = answer.value.get("next_cursor")
            self._history_error = None
        else:
            self._history_error = answer.error
        self._redraw()

    # -- actions on the selected job --------------------------------------------------

    def _job_or_say(self) -> Mapping[str, Any] | None:
        job = self._selected()
        if job is None:
            self.host.notify(
                "Select a job first (arrow keys), or filter with /.", severity="warning"
            )
        return job

    def action_cancel_job(self) -> None:
        job = self._job_or_say()
        if job is None:
            return
        status = str(job.get("status"))
        if status not in ("queued", "processing"):
            self.host.notify(
                f"Job {short_id(job['job_id'])} is {status.upper()}: only QUEUED or PROCESSING jobs can be cancelled.",
                severity="warning",
            )
            return
        job_id = str(job["job_id"])
        body = (
            f"{str(job.get('priority_level', '')).upper()} {job.get('market_symbol')} "
            f"{job.get('data_type')} job {short_id(job_id)} is {status.upper()}"
            + (" (running now: the fetch is abandoned)" if status == "processing" else "")
            + f".\nSource: {job.get('source_url')}\n\nCancelling is final; the request would have to be submitted again."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.host.perform(
                    "cancel",
                    self.host.calls.cancel(job_id),
                    done=f"Cancelled job {short_id(job_id)}.",
                )

        self.host.push_screen(
            ConfirmScreen("Cancel this job?", body, confirm="Cancel job"), answered
        )

    def action_retry_job(self) -> None:
        job = self._job_or_say()
        if job is None:
            return
        if job.get("status") != "failed":
            self.host.notify(
                f"Job {short_id(job['job_id'])} is {str(job.get('status')).upper()}: only FAILED jobs can be retried.",
                severity="warning",
            )
            return
        job_id = str(job["job_id"])
        self.host.perform(
            "retry", self.host.calls.retry(job_id), done=f"Job {short_id(job_id)} is queued again."
        )

    def action_bump_job(self, steps: int) -> None:
        job = self._job_or_say()
        if job is None:
            return
        if job.get("status") != "queued":
            self.host.notify(
                f"Job {short_id(job['job_id'])} is {str(job.get('status')).upper()}: only a QUEUED job can change level.",
                severity="warning",
            )
            return
        current = LEVELS.index(str(job.get("priority_level")))
        target = current + steps
        if not 0 <= target < len(LEVELS):
            edge = "the most urgent" if steps < 0 else "the least urgent"
            self.host.notify(
                f"{LEVELS[current].upper()} is already {edge} level.", severity="warning"
            )
            return
        job_id = str(job["job_id"])
        level = LEVELS[target]
        self.host.perform(
            "change level",
            self.host.calls.set_level(job_id, level),
            done=f"Job {short_id(job_id)}: {LEVELS[current].upper()} → {level.upper()} (its deadline follows the level).",
        )
