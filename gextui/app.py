"""gextui's App: the views, the flush loop, the link worker, and the messages the views post.

Threading rule: everything runs on the app's event loop. The link is an async
worker that writes plain state (`DeskState`) and never touches a widget; a timer
copies that state to the top bar and to the visible view only, 2 to 4 times a
second, inside `batch_update()` (hidden views, frozen screens and views under a
modal are not redrawn). Calls to the daemon run in async workers and report
through toasts; none of them can close the app, whatever the daemon does.

The views never import this module: each is given a `DeskContext` (the desk,
the daemon's calls, the clock, read-only or not) and posts `gextui.messages`
for what only the App may do (confirm and make a change, open a dialog, switch
to a job, redraw now).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from gexdaemon.core.timeutil import utc_now
from gextui import messages
from gextui.actions import VIEWS, WRITING_ACTIONS, DeskAction, bindings_for
from gextui.commands import DeskCommands
from gextui.desk import DeskState
from gextui.link import Backoff, DaemonCalls, DaemonLink, ask
from gextui.screens.confirm import ConfirmScreen
from gextui.screens.help import HelpScreen
from gextui.screens.rule_editor import RuleEditor
from gextui.screens.submit import SubmitScreen
from gextui.statusbar import Banner, LinkBar
from gextui.views.base import DeskContext, DeskView
from gextui.views.gex import GexView
from gextui.views.jobs.view import JobsView
from gextui.views.nodes import NodesView
from gextui.views.overview import OverviewView
from gextui.views.rules import RulesView
from gextui.views.sla import SlaView
from gextui.views.sources import SourcesView

VIEW_CLASSES: dict[str, type[DeskView]] = {
    "overview": OverviewView,
    "jobs": JobsView,
    "sla": SlaView,
    "gex": GexView,
    "sources": SourcesView,
    "rules": RulesView,
    "nodes": NodesView,
}


class GexTui(App[None]):
    CSS_PATH = Path(__file__).with_name("gextui.tcss")  # absolute: subclasses live elsewhere
    TITLE = "gextui"
    COMMANDS: ClassVar = App.COMMANDS | {DeskCommands}
    BINDINGS = bindings_for("app")
    # Focus is placed by hand: the first focusable widget may sit in a hidden pane, and
    # TabbedContent switches to the pane of whatever takes focus.
    AUTO_FOCUS = None
    # The screen carries -short below 30 rows and -narrow below 100 columns: the CSS
    # drops borders and shrinks panels there, so 80x24 keeps every view usable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - as Textual types it
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # noqa: RUF012 - as Textual types it

    def __init__(
        self,
        calls: DaemonCalls,
        *,
        read_only: bool = False,
        clock: Callable[[], datetime] = utc_now,
        flush_hz: float = 4.0,
        poll_s: float = 1.0,
        backoff: Backoff | None = None,
        initial_view: str = "overview",
    ) -> None:
        super().__init__()
        if not 2.0 <= flush_hz <= 4.0:
            raise ValueError(f"flush_hz must be between 2 and 4 (got {flush_hz})")
        if initial_view not in VIEW_CLASSES:
            raise ValueError(f"initial_view must be one of {', '.join(VIEW_CLASSES)}")
        self.initial_view = initial_view
        self.calls = calls
        self.read_only = read_only
        self.clock = clock
        self.flush_hz = flush_hz
        self.desk = DeskState(clock)
        self.context = DeskContext(self.desk, calls, clock, read_only)
        # A fresh snapshot is drawn at once, not at the next tick: attaching should feel instant.
        self.link = DaemonLink(
            calls,
            self.desk,
            backoff=backoff,
            poll_s=poll_s,
            on_attach=lambda: self.call_next(self.flush),
        )
        self.frozen_at: int | None = None
        self.flush_seconds: deque[float] = deque(maxlen=10_000)
        self.flushes = 0
        self._views: dict[str, DeskView] = {}
        self._link_bar: LinkBar | None = None
        self._banner: Banner | None = None
        self._tabs: TabbedContent | None = None

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LinkBar(id="link-bar")
        yield Banner(id="banner")
        with TabbedContent(initial=self.initial_view, id="views"):
            for view_id, title, keys in VIEWS:
                with TabPane(f"{keys.split(',')[0]} {title}", id=view_id):
                    yield VIEW_CLASSES[view_id](self.context, id=f"view-{view_id}")
        yield Footer()

    def on_mount(self) -> None:
        self._link_bar = self.query_one(LinkBar)
        self._banner = self.query_one(Banner)
        self._tabs = self.query_one(TabbedContent)
        self._views = {
            view_id: self.query_one(f"#view-{view_id}", DeskView) for view_id in VIEW_CLASSES
        }
        self.query_one(Tabs).can_focus = False
        self.set_interval(1.0 / self.flush_hz, self.flush, name="flush")
        self.run_link()
        self.flush()
        self.active_view.focus_main()

    async def on_unmount(self) -> None:
        await self.calls.close()

    @work(exclusive=True, group="daemon-link", exit_on_error=False)
    async def run_link(self) -> None:
        await self.link.run()

    # -- the flush loop -------------------------------------------------------------

    @property
    def active_view(self) -> DeskView:
        assert self._tabs is not None
        return self._views[str(self._tabs.active or "overview")]

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def flush(self) -> None:
        """Copy the desk to the screen: the top bar always, the visible view unless frozen."""
        if self._link_bar is None or self._banner is None or self._tabs is None:
            return
        if not self.is_running:
            return  # shutting down: the widgets are being taken down
        started = time.perf_counter()
        now = self.clock()
        with self.batch_update():
            frozen_events = (
                None if self.frozen_at is None else self.desk.events_seen - self.frozen_at
            )
            state = self._link_bar.show(
                self.desk,
                now,
                socket=self.calls.socket_path,
                frozen_events=frozen_events,
                read_only=self.read_only,
            )
            self._tabs.set_class(state in ("stale", "reconnecting"), "-stale")
            self._banner.show(self.desk, now)
            if not self.frozen and not self.screen.is_modal:
                self.active_view.show_desk(self.desk, now)
        self.flushes += 1
        self.flush_seconds.append(time.perf_counter() - started)

    # -- what the views ask for -------------------------------------------------------

    @on(messages.Redraw)
    def _redraw(self) -> None:
        self.flush()

    @on(messages.OpenJob)
    def _open_job(self, message: messages.OpenJob) -> None:
        jobs = self._views["jobs"]
        assert isinstance(jobs, JobsView)
        self.action_view("jobs")
        jobs.open_job(message.job_id)

    @on(messages.Change)
    def _change(self, change: messages.Change) -> None:
        if self.read_only:
            self.notify("Read-only: this dashboard changes nothing.", severity="warning")
            return
        if change.confirm is None:
            self._perform(change)
            return
        question = change.confirm

        def answered(yes: bool | None) -> None:
            if yes:
                self._perform(change)

        self.push_screen(
            ConfirmScreen(question.title, question.body, confirm=question.confirm), answered
        )

    def _perform(self, change: messages.Change) -> None:
        """Make the change in a worker; say `done` when the daemon accepted it, else why not."""

        async def run() -> None:
            answer = await ask(change.call(self.calls))
            if answer.error is None:
                self.notify(change.done, title=change.what.capitalize())
            else:
                self.notify(
                    answer.error, title=f"{change.what}: refused", severity="error", timeout=10
                )

        self.run_worker(run(), group="actions", exit_on_error=False)

    @on(messages.EditRule)
    def _edit_rule(self, message: messages.EditRule) -> None:
        test_only = message.test_only or self.read_only
        self.push_screen(RuleEditor(message.rule, self.calls, test_only=test_only))

    # -- actions -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and ("app", action) in WRITING_ACTIONS)

    def action_available(self, action: DeskAction) -> bool:
        """Whether the palette should offer `action` now (its view is on screen, not read-only)."""
        if action.scope == "app":
            target: Any = self
        elif self._tabs is not None and self._tabs.active == action.scope:
            target = self.active_view
        else:
            return False
        _, name, params = parse_action(action.action)
        return bool(target.check_action(name, params))

    async def run_desk_action(self, action: DeskAction) -> None:
        target = self if action.scope == "app" else self.active_view
        await self.run_action(action.action, target)

    def action_view(self, view_id: str) -> None:
        assert self._tabs is not None
        self._tabs.active = view_id
        self._show_view()

    @on(TabbedContent.TabActivated, "#views")
    def _tab_activated(self) -> None:
        self._show_view()

    def _show_view(self) -> None:
        self.flush()
        self.active_view.focus_main()
        self.refresh_bindings()

    def action_freeze(self) -> None:
        if self.frozen:
            self.frozen_at = None
            self.notify("Live again.", timeout=2)
        else:
            self.frozen_at = self.desk.events_seen
            self.notify("Frozen: the screen holds still, data keeps flowing. f resumes.", timeout=3)
        self.flush()

    def action_dismiss_banner(self) -> None:
        self.desk.dismiss_banner()
        self.flush()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(read_only=self.read_only))

    def action_submit(self) -> None:
        self.push_screen(SubmitScreen(self.calls))
