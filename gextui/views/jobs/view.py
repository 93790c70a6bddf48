"""The Jobs view: the filter box, the summary line, the live table and the detail pane.

Finished jobs are in the "recent" scope (this session's) and the "history" scope
(paged from the daemon's record), never in the live table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Input, Static

from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import DeskState
from gextui.link import ask
from gextui.messages import Change, Redraw
from gextui.views.base import DeskContext, DeskView
from gextui.views.jobs import actions
from gextui.views.jobs.detail import JobDetailPane
from gextui.views.jobs.filters import ROW_CAP, SORT_NAMES, SORTS, JobFilter, SortKeys, top_jobs
from gextui.views.jobs.table import COLUMN_KEYS, COLUMN_SORT, JobTable, SyncReport
from gextui.widgets.rowgrid import RowGrid

SCOPES = ("live", "recent", "history")
HISTORY_PAGE = 100
DETAIL_AFTER_S = 0.15  # arrow keys held down move through many rows: load where the cursor rests


class FilterInput(Input):
    BINDINGS: ClassVar = [("escape", "clear_filter", "Clear filter")]

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, ""))


class JobsView(DeskView):
    VIEW_ID = "jobs"
    BINDINGS = bindings_for("jobs")

    def __init__(self, context: DeskContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
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
        self._history: list[s.JobRow] = []
        self._history_cursors: list[str | None] = [None]
        self._history_next: str | None = None
        self._history_error: str | None = None
        self._detail_job_id: str | None = None
        self.detail: s.JobDetail | None = None
        self._detail_error: str | None = None
        self._detail_status: tuple[Any, ...] | None = None
        self._detail_timer: Timer | None = None
        self._pinned_job: s.JobRow | None = None
        self._summary = Text()

    def compose(self) -> ComposeResult:
        yield FilterInput(
            placeholder="filter: level:critical status:queued sym:SPX type:real_time or words (Enter keeps, Esc clears)",
            id="job-filter",
        )
        yield Static(id="jobs-summary")
        yield JobTable(id="job-table")
        yield JobDetailPane(id="job-detail")

    def on_mount(self) -> None:
        self.query_one("#job-filter", FilterInput).display = False

    @property
    def table(self) -> JobTable:
        return self.query_one(JobTable)

    def focus_main(self) -> None:
        self.table.focus()

    # -- drawing ------------------------------------------------------------------

    def _jobs_in_scope(self, desk: DeskState) -> Iterable[s.JobRow]:
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
            column = next((k for k in COLUMN_KEYS if k == self.sort), None)
            self.table.header_marks = {column: " ▼" if self.reverse else " ▲"} if column else {}
            self.last_sync = self.table.sync(ordered, now)
            self._drawn_rev = revision
            self._dirty = False
            self._drawn_second = int(now.timestamp())
            self._show_summary(desk)
            self._follow_cursor(now)
        elif self._drawn_second != int(now.timestamp()):
            self._drawn_second = int(now.timestamp())
            self.table.refresh_clock(now)
            self._show_summary(desk)
            self._refresh_detail(now)

    def _show_summary(self, desk: DeskState) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {self.scope.upper()} ", style="bold reverse")
        if self.scope == "live":
            held = desk.daemon_live_total()
            text.append(f" {readout.count(len(desk.jobs))} live jobs here")
            if held > len(desk.jobs):
                text.append(
                    f" of {readout.count(held)} the daemon holds (it sends the most urgent 2,000 on attach)",
                    style=readout.AMBER,
                )
        elif self.scope == "recent":
            text.append(f" {readout.count(len(desk.recent))} finished since attach")
        else:
            page = len(self._history_cursors)
            text.append(f" page {page} of the daemon's record, {len(self._history)} jobs")
            text.append(
                "  ] next  [ newest" if self._history_next else "  (last page)  [ newest",
                style="dim",
            )
            if self._history_error:
                text.append(f"  {self._history_error}", style=readout.RED)
        if self._passed > self._shown:
            text.append(f" · showing {self._shown:,} of {self._passed:,}", style="dim")
        elif not self.job_filter.is_empty:
            text.append(f" · {self._passed:,} match", style="dim")
        if not self.job_filter.is_empty:
            text.append(f" · filter: {self.job_filter.text}", style="bold #5fd7ff")
        meaning, _ = SORTS[self.sort]
        arrow = "▼" if self.reverse else "▲"
        text.append(
            f" · sort {self.sort} {arrow} ({'reversed: ' if self.reverse else ''}{meaning})",
            style="dim",
        )
        if text != self._summary:
            self._summary = text
            self.query_one("#jobs-summary", Static).update(text)

    # -- the detail pane --------------------------------------------------------------

    def selected(self) -> s.JobRow | None:
        return self.table.job_at_cursor() or self._pinned_job

    def _follow_cursor(self, now: datetime) -> None:
        job = self.selected()
        job_id = job.job_id if job else None
        if job_id != self._detail_job_id:
            self._schedule_detail(job_id)
        self._refresh_detail(now)

    def _refresh_detail(self, now: datetime) -> None:
        pane = self.query_one(JobDetailPane)
        if not pane.display:
            return
        job = self.selected()
        if job is not None and self._detail_job_id == job.job_id:
            status = (job.status, job.retry_count, job.priority_level)
            if self._detail_status is not None and status != self._detail_status:
                self._schedule_detail(self._detail_job_id, force=True)
        pane.show_job(job, self.detail, self._detail_error, now)

    def _schedule_detail(self, job_id: str | None, *, force: bool = False) -> None:
        if job_id == self._detail_job_id and not force:
            return
        if job_id != self._detail_job_id:
            self.detail = None
            self._detail_error = None
            self._detail_status = None
        self._detail_job_id = job_id
        if self._detail_timer is not None:
            self._detail_timer.stop()
        if job_id is not None:
            self._detail_timer = self.set_timer(
                DETAIL_AFTER_S, lambda: self._start_detail_load(job_id)
            )

    def _start_detail_load(self, job_id: str) -> None:
        self.run_worker(
            self._load_detail(job_id), exclusive=True, group="job-detail", exit_on_error=False
        )

    async def _load_detail(self, job_id: str) -> None:
        answer = await ask(self.context.calls.job(job_id))
        if job_id != self._detail_job_id:
            return
        if answer.value is not None:
            self.detail = answer.value
            self._detail_error = None
            job = answer.value.job
            self._detail_status = (job.status, job.retry_count, job.priority_level)
        else:
            self._detail_error = answer.error or "the daemon sent no detail"
        if self.selected() is None and self.detail is not None and self.detail.live is not None:
            self._pinned_job = self.detail.live
        self.query_one(JobDetailPane).show_job(
            self.selected(), self.detail, self._detail_error, self.now()
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

    def open_job(self, job_id: str) -> None:
        """Show one job (from the SLA view): its scope, filtered to its id, detail open."""
        desk = self.desk
        self.scope = "recent" if job_id in desk.recent else "live"
        self._set_filter(readout.short_id(job_id))
        self._pinned_job = desk.job(job_id)
        self.query_one(JobDetailPane).display = True
        self._schedule_detail(job_id)

    # -- filtering, sorting, scopes ------------------------------------------------

    def _redraw(self) -> None:
        self._dirty = True
        self.post_message(Redraw())

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
        pane = self.query_one(JobDetailPane)
        pane.display = not pane.display
        if pane.display:
            self._follow_cursor(self.now())

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
        answer = await ask(
            self.context.calls.jobs(
                status=flt.only(flt.statuses),
                level=flt.only(flt.levels),
                symbol=flt.only(flt.symbols),
                limit=HISTORY_PAGE,
                cursor=cursor,
            )
        )
        if answer.value is not None:
            self._history = list(answer.value.jobs)
            self._history_next = answer.value.next_cursor
            self._history_error = None
        else:
            self._history_error = answer.error
        self._redraw()

    # -- actions on the selected job --------------------------------------------------

    def _act(self, decide: Any) -> None:
        job = self.selected()
        if job is None:
            self.notify("Select a job first (arrow keys), or filter with /.", severity="warning")
            return
        decided: Change | str = decide(job)
        if isinstance(decided, str):
            self.notify(decided, severity="warning")
        else:
            self.post_message(decided)

    def action_cancel_job(self) -> None:
        self._act(actions.cancel)

    def action_retry_job(self) -> None:
        self._act(actions.retry)

    def action_bump_job(self, steps: int) -> None:
        self._act(lambda job: actions.change_level(job, steps))
