"""SVG snapshots of every view at 80x24 and 120x35, and of every dialog, from the recorded desk.

The app attaches to a `ReplayDaemon` through the same link a live daemon uses,
so these pictures are the real code path with fixed data and the clock pinned.
80x24 is the smallest terminal a trader may have (every view must stay usable);
120x35 a common split pane (no column a decision rests on may be cut). Beside
the pictures, Pilot checks name the cells that matter at each size. After a
deliberate change of the screens: `pytest tests/tui/test_screens.py
--snapshot-update`, then look at every SVG before committing them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from gextui.app import GexTui
from gextui.link import Backoff
from gextui.screens.rule_editor import RuleEditor
from gextui.screens.submit import SubmitScreen
from gextui.views.gex import GexView
from gextui.views.jobs.view import JobsView
from gextui.views.overview import OverviewView
from gextui.widgets.livetable import LiveTable
from tests.tui import recording
from tests.tui.conftest import recorded_app, screen_text, settled, still, stop_blinking, until
from tests.tui.recording import DESK_NOW, replay_daemon

SIZE = (120, 35)  # the dialogs
SIZES = {"80x24": (80, 24), "120x35": (120, 35)}

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
    return app.query_one(JobsView).detail is not None


def gex_loaded(app: GexTui) -> bool:
    return (
        app.query_one(GexView).shown is not None and len(app.desk.gex_points.get("SPX", ())) == 40
    )


def sla_loaded(app: GexTui) -> bool:
    return len(app.desk.breaches) >= 4


VIEWS: dict[str, tuple[str, Callable[[GexTui], Any]]] = {
    "overview": ("1", lambda app: True),
    "jobs": ("2", jobs_detail_loaded),
    "sla": ("3", sla_loaded),
    "gex": ("4", gex_loaded),
    "sources": ("5", lambda app: True),
    "rules": ("6", lambda app: True),
    "nodes": ("7", lambda app: app.desk.cluster is not None),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", VIEWS)
def test_view(snap_compare: Any, view: str, size: str) -> None:
    key, ready = VIEWS[view]
    assert snap_compare(recorded_app(), terminal_size=SIZES[size], run_before=on_view(key, ready))


async def test_80x24_keeps_what_a_trader_acts_on() -> None:
    app = recorded_app()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await on_view("1")(pilot)
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if line.lstrip().startswith("LEVEL"))
        for column in ("QUEUED", "RUNNING", "AT RISK", "NEXT DUE", "MET 1H"):
            assert column in header, column
        everything = next(line for line in lines if line.lstrip().startswith("ALL "))
        queued_at = header.index("QUEUED") + len("QUEUED")
        assert everything[:queued_at].rstrip().endswith("27")  # the QUEUED figure, whole
        await on_view("3", sla_loaded)(pilot)
        for table_id in ("#sla-breached", "#sla-risk"):
            table = app.query_one(table_id, LiveTable)
            assert {"job", "level", "why"} <= set(table.shown_keys), table_id
        text = screen_text(app)
        assert "WHY" in text and "still queued after 2 retries" in text
        assert "why: source feeds.example-broker.test:8080 circuit open" in text
        await on_view("2", jobs_detail_loaded)(pilot)
        jobs = app.query_one(JobsView)
        assert [c.key for c, _ in jobs.table.shown_columns][-1] == "why"
        assert jobs.table.size.height >= 8  # the detail pane leaves room for the table


async def test_120x35_cuts_no_key_column() -> None:
    app = recorded_app()
    wanted = {
        "2": ["JOB", "LEVEL", "SYM", "STATUS", "AGE/RAN", "DEADLINE", "SOURCE", "WHY"],
        "3": ["JOB", "LEVEL", "SYM", "STATUS", "LATE BY", "DEADLINE", "WHY"],
        "5": ["SOURCE", "RELIABILITY", "CIRCUIT", "SWITCH", "LAST SUCCESS", "FAILS IN ROW"],
        "6": ["RULE", "SCORE", "STATE", "CONDITION"],
        "7": ["NODE", "ROLE", "BUSY/SLOTS", "HEARTBEAT", "HOST", "VERSION"],
        "1": ["QUEUED", "DELAYED", "RUNNING", "AT RISK", "NEXT DUE", "MET 1H", "DONE/MIN"],
    }
    async with app.run_test(size=SIZES["120x35"]) as pilot:
        for key, columns in wanted.items():
            await on_view(key, VIEWS[next(v for v, (k, _) in VIEWS.items() if k == key)][1])(pilot)
            text = screen_text(app)
            for column in columns:
                assert column in text, (key, column)
            if key == "5":
                assert "feeds.example-broker.test:8080 " in text  # the whole name
        assert isinstance(app.active_view, OverviewView)
        gex = recording.snapshots()
        assert all(snap["market_symbol"] in text for snap in gex)


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
