"""SVG snapshots of every view and dialog, drawn from the recorded desk with the clock pinned.

The app attaches to a `ReplayDaemon` through the same link a live daemon uses,
so these pictures are the real code path with fixed data. After a deliberate
change of the screens: `pytest tests/tui/test_screens.py --snapshot-update`,
then look at the SVGs before committing them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Static

from gextui.app import GexTui
from gextui.link import Backoff
from gextui.screens.rule_editor import RuleEditor
from gextui.screens.submit import SubmitScreen
from gextui.views.gex import GexView
from gextui.views.jobs import JobsView
from tests.tui.conftest import SIZE, recorded_app, settled, still, stop_blinking, until
from tests.tui.recording import DESK_NOW, replay_daemon

RunBefore = Callable[[Pilot[Any]], Awaitable[None]]


def app_of(pilot: Pilot[Any]) -> GexTui:
    assert isinstance(pilot.app, GexTui)
    return pilot.app


def on_view(key: str, ready: Callable[[GexTui], Any] = lambda app: True) -> RunBefore:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press(key)
        await until(pilot, lambda: ready(app_of(pilot)), what=f"view {key} to load")
        await settled(pilot)

    return run_before


def jobs_detail_loaded(app: GexTui) -> bool:
    return app.query_one(JobsView)._detail is not None


def gex_loaded(app: GexTui) -> bool:
    return (
        app.query_one(GexView).shown is not None and len(app.desk.gex_points.get("SPX", ())) == 40
    )


def test_overview(snap_compare: Any) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=on_view("1"))


def test_jobs_with_detail(snap_compare: Any) -> None:
    assert snap_compare(
        recorded_app(), terminal_size=SIZE, run_before=on_view("2", jobs_detail_loaded)
    )


def test_sla(snap_compare: Any) -> None:
    assert snap_compare(
        recorded_app(),
        terminal_size=SIZE,
        run_before=on_view("3", lambda app: len(app.desk.breaches) >= 4),
    )


def test_gex(snap_compare: Any) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=on_view("4", gex_loaded))


def test_gex_expiry_filter_without_a_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await on_view("4", gex_loaded)(pilot)
        await pilot.press("e", "e")  # all -> 0dte: the recording has no 0DTE snapshot
        view = app_of(pilot).query_one(GexView)
        await until(
            pilot, lambda: view.expiry == "0dte" and view.fetch_error, what="the 0DTE answer"
        )
        await settled(pilot)

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=run_before)


def test_sources(snap_compare: Any) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=on_view("5"))


def test_rules(snap_compare: Any) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=on_view("6"))


def test_help(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=run_before)


def test_cancel_asks_first(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await on_view("2", jobs_detail_loaded)(pilot)
        await pilot.press("c")
        await pilot.pause()

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=run_before)


def test_read_only_hides_actions(snap_compare: Any) -> None:
    assert snap_compare(
        recorded_app(read_only=True),
        terminal_size=SIZE,
        run_before=on_view("2", jobs_detail_loaded),
    )


def test_request_form_shows_errors_by_field(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("n")
        app = app_of(pilot)
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), what="the form")
        app.screen.query_one("#source_url", Input).value = "ftp://cdn.cboe.com/x.json"
        app.screen.query_one("#metadata", Input).value = "volume"
        await pilot.press("ctrl+s")
        await pilot.pause()
        stop_blinking(app)

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=run_before)


def test_rule_editor_points_at_the_error(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await on_view("6")(pilot)
        await pilot.press("a")
        app = app_of(pilot)
        await until(pilot, lambda: isinstance(app.screen, RuleEditor), what="the editor")
        app.screen.query_one("#rule-name", Input).value = "expiry-day SPX"
        app.screen.query_one("#rule-score", Input).value = "0.95"
        app.screen.query_one(
            "#rule-condition", Input
        ).value = "market_symbol = 'SPX' and ny_hour > 15"
        await until(
            pilot,
            lambda: (
                "column 15" in str(app.screen.query_one("#rule-condition-error", Static).content)
            ),
            what="the caret",
        )
        stop_blinking(app)
        await pilot.pause()

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=run_before)


def test_lost_daemon_banner(snap_compare: Any) -> None:
    daemon = replay_daemon()
    app = still(
        GexTui(
            daemon,
            clock=lambda: DESK_NOW,
            poll_s=3600.0,
            backoff=Backoff(first_s=60.0, cap_s=60.0, rng=random.Random(3)),
        )
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        daemon.end_stream()
        await until(
            pilot, lambda: app.desk.link.phase.value == "reconnecting", what="the lost link"
        )
        await settled(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
