"""Pilot tests against a real daemon on a temporary socket: attach, live updates, actions, restarts.

One daemon serves the module (each test makes its own requests); the restart
test has its own, since it stops and starts it. A feed server on 127.0.0.1
serves the sample chains, with `?delay=` and `?status=` to make jobs slow or fail.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import Input, Select, Static

from gexdaemon.client import AsyncClient
from gexdaemon.core.vocab import Origin, PriorityLevel
from gexdaemon.readout import short_id
from gextui.app import GexTui
from gextui.commands import DeskCommands
from gextui.link import Backoff
from gextui.screens.confirm import ConfirmScreen
from gextui.screens.rule_editor import RuleEditor
from gextui.screens.submit import SubmitScreen
from gextui.views.gex import GexView
from gextui.views.jobs.view import JobsView
from gextui.views.sources import SourcesView
from gextui.widgets.livetable import LiveTable
from tests.daemon.harness import FeedServer, RunningDaemon, make_daemon
from tests.tui import recording
from tests.tui.conftest import screen_text, still, until

SIZE = (150, 45)


def live_app(daemon: RunningDaemon, *, read_only: bool = False) -> GexTui:
    return still(
        GexTui(
            AsyncClient(daemon.socket, timeout=15, origin="tui"),
            read_only=read_only,
            backoff=Backoff(first_s=0.1, cap_s=0.5),
        )
    )


def request(feeds: FeedServer, path: str, **fields: Any) -> dict[str, Any]:
    return {
        "source_url": f"{feeds.url}{path}",
        "data_type": "snapshot",
        "market_symbol": "SPX",
    } | fields


async def attached(pilot: Any) -> GexTui:
    app = pilot.app
    assert isinstance(app, GexTui)
    await until(
        pilot, lambda: app.desk.link.connects >= 1 and app.desk.polls >= 1, what="attaching"
    )
    return app


def select_row(table: Any, key: str) -> None:
    table.move_cursor(row=table.order.index(key), animate=False)


async def test_attach_and_follow_a_job_to_its_gex_chart(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    async with live_app(daemon).run_test(size=SIZE) as pilot:
        app = await attached(pilot)
        # The recorded desk (snapshot tests) is decoded into the same shapes as this one.
        assert app.desk.health is not None
        assert set(recording.health()) == set(app.desk.health.keys())

        # Submitted through the form, as a trader would.
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), what="the request form")
        form = app.screen
        form.query_one("#source_url", Input).value = f"{feeds.url}_SPX.json?delay=3"
        form.query_one("#market_symbol", Input).value = "spx"
        form.query_one("#data_type", Select).value = "real_time"
        form.query_one("#metadata", Input).value = "desk=index vol"
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: not isinstance(app.screen, SubmitScreen), what="the form to close"
        )
        job_id = await until(
            pilot,
            lambda: next(
                (k for k, j in (app.desk.recent | app.desk.jobs).items() if j.origin is Origin.TUI),
                None,
            ),
            what="the submitted job on the desk",
        )
        submitted = (app.desk.recent | app.desk.jobs)[job_id]
        assert submitted.priority_level is PriorityLevel.CRITICAL  # the seed rule: real-time SPX
        await pilot.press("2")
        jobs = app.query_one(JobsView)
        await until(
            pilot, lambda: job_id in jobs.table.order, what="the submitted job in the table"
        )
        assert short_id(job_id) in screen_text(app)
        await until(
            pilot,
            lambda: app.desk.recent.get(job_id, {}).get("status") == "completed",
            what="the job to complete",
        )
        assert "SPX" in app.desk.snapshots and app.desk.snapshots["SPX"].job_id == job_id

        await pilot.press("4")
        gex = app.query_one(GexView)
        await until(
            pilot, lambda: gex.shown is not None and gex.shown.get("strikes"), what="the GEX chart"
        )
        app.flush()
        await pilot.pause()
        text = screen_text(app)
        assert "spot" in text and "zero γ" in text and "per 1% move" in text
        assert "CALL WALL" in text or "PUT WALL" in text


async def test_disable_a_source_then_bump_and_cancel_a_queued_job(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    async with live_app(daemon).run_test(size=SIZE) as pilot, AsyncClient(daemon.socket) as gexd:
        app = await attached(pilot)
        first = await gexd.submit(request(feeds, "SPY_quotedata.csv", market_symbol="SPY"))
        await daemon_wait(gexd, first["job_id"])
        base_url = feeds.url.rstrip("/")
        await until(pilot, lambda: base_url in app.desk.sources, what="the feed source")

        await pilot.press("5")
        sources = app.query_one(SourcesView).query_one(LiveTable)
        await until(pilot, lambda: base_url in sources.order, what="the source row")
        select_row(sources, base_url)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await until(
            pilot,
            lambda: app.desk.sources[base_url].get("manually_disabled"),
            what="the source disabled",
        )
        app.flush()
        await pilot.pause()
        assert "DISABLED" in screen_text(app)

        try:
            held = await gexd.submit(
                request(feeds, "SPX_contracts.parquet", data_type="historical")
            )
            job_id = held["job_id"]
            assert held["priority_level"] == "low"
            await pilot.press("2")
            jobs = app.query_one(JobsView)
            await until(pilot, lambda: job_id in jobs.table.order, what="the held job")
            select_row(jobs.table, job_id)
            await pilot.press("plus")
            await until(
                pilot, lambda: app.desk.jobs[job_id]["priority_level"] == "medium", what="the bump"
            )
            # The bump is in the job's history, made by the dashboard (not a uid).
            history = (await gexd.job(job_id))["history"]
            (bump,) = [e for e in history if e["reason"].startswith("bumped")]
            assert "from LOW to MEDIUM" in bump["reason"] and "by tui" in bump["reason"]

            await pilot.press("c")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            await pilot.press("y")
            await until(
                pilot,
                lambda: app.desk.recent.get(job_id, {}).get("status") == "cancelled",
                what="the cancel",
            )
            assert job_id not in app.desk.jobs
        finally:
            await gexd.set_source_active(base_url, True)


async def test_retry_a_failed_job_from_recent(daemon: RunningDaemon, feeds: FeedServer) -> None:
    async with live_app(daemon).run_test(size=SIZE) as pilot, AsyncClient(daemon.socket) as gexd:
        app = await attached(pilot)
        accepted = await gexd.submit(request(feeds, "missing.json"))
        job_id = accepted["job_id"]
        await until(
            pilot,
            lambda: app.desk.recent.get(job_id, {}).get("status") == "failed",
            what="the 404 to fail",
        )
        await pilot.press("2", "h")  # the recent scope: finished jobs
        jobs = app.query_one(JobsView)
        await until(pilot, lambda: job_id in jobs.table.order, what="the failed job in recent")
        select_row(jobs.table, job_id)
        await pilot.press("t")
        detail = await until_async(
            pilot,
            lambda: gexd.job(job_id),
            lambda d: any("retried by tui" in (h.get("reason") or "") for h in d["history"]),
        )
        assert detail["job"]["retry_count"] >= 1


async def test_rule_add_shows_the_error_then_saves_and_shadow_tests(daemon: RunningDaemon) -> None:
    async with live_app(daemon).run_test(size=SIZE) as pilot:
        app = await attached(pilot)
        await pilot.press("6", "a")
        await until(pilot, lambda: isinstance(app.screen, RuleEditor), what="the editor")
        editor = app.screen
        editor.query_one("#rule-name", Input).value = "high volume strikes"  # taken by a seed rule
        editor.query_one("#rule-score", Input).value = "0.95"
        editor.query_one("#rule-condition", Input).value = "market_symbol = 'SPX'"
        await pilot.press("ctrl+s")
        error = editor.query_one("#rule-condition-error", Static)
        await until(pilot, lambda: "column 15" in str(error.content), what="the evaluator's error")
        caret_line = str(error.content).splitlines()[2]
        assert caret_line.index("^") - 2 == "market_symbol = 'SPX'".index("=")
        assert editor.query_one("#rule-condition", Input).cursor_position == 14
        assert not any(r["name"] == "spx at the close" for r in app.desk.rules.values())

        editor.query_one(
            "#rule-condition", Input
        ).value = "market_symbol == 'SPX' and ny_hour >= 15.5"
        await pilot.press("ctrl+s")  # the daemon refuses the name
        name_error = editor.query_one("#rule-name-error", Static)
        await until(
            pilot,
            lambda: "already has this name" in str(name_error.content),
            what="the daemon's name error",
        )
        assert app.screen is editor

        editor.query_one("#rule-name", Input).value = "spx at the close"
        await pilot.press("ctrl+t")
        await until(pilot, lambda: editor.last_shadow is not None, what="the shadow test")
        await pilot.pause()
        assert "SHADOW TEST" in screen_text(app) and "recent requests re-scored" in screen_text(app)
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: any(r["name"] == "spx at the close" for r in app.desk.rules.values()),
            what="the saved rule",
        )
        assert not isinstance(app.screen, RuleEditor)
        app.flush()
        await pilot.pause()
        assert "spx at the close" in screen_text(app)


async def test_read_only_hides_every_action_that_writes(daemon: RunningDaemon) -> None:
    async with live_app(daemon, read_only=True).run_test(size=SIZE) as pilot:
        app = await attached(pilot)
        assert "READ-ONLY" in screen_text(app)
        await pilot.press("n")
        assert app.screen is app.screen_stack[0]  # no request form
        for view, hidden in (
            ("2", {"c", "t", "plus", "minus"}),
            ("5", {"d"}),
            ("6", {"a", "e", "d", "delete"}),
        ):
            await pilot.press(view)
            await pilot.pause()
            shown = {key for key, active in app.screen.active_bindings.items() if active.enabled}
            assert not hidden & shown, (view, hidden & shown)
        await pilot.press("2", "c")
        assert not isinstance(app.screen, ConfirmScreen)
        provider = DeskCommands(app.screen)
        titles = [hit.text async for hit in provider.discover()]
        assert (
            "Cancel the selected job" not in titles and "Submit a new ingest request" not in titles
        )
        assert (
            "Show the GEX view" in titles and "Filter jobs (text, level:, status:, sym:)" in titles
        )


async def test_daemon_restart_is_a_banner_not_a_crash(feeds: FeedServer) -> None:
    own = make_daemon().start()
    try:
        async with live_app(own).run_test(size=SIZE) as pilot:
            app = await attached(pilot)
            first_instance = app.desk.instance
            await asyncio.to_thread(own.stop)
            await until(
                pilot, lambda: app.desk.link.phase.value == "reconnecting", what="the lost link"
            )
            app.flush()
            await pilot.pause()
            text = screen_text(app)
            assert "RECONNECTING" in text and "Lost the daemon" in text
            await asyncio.to_thread(own.start)
            await until(
                pilot,
                lambda: app.desk.link.connects >= 2 and app.desk.link.phase.value == "connected",
                what="the reconnect",
            )
            assert app.desk.instance != first_instance
            app.flush()
            await pilot.pause()
            text = screen_text(app)
            assert "CONNECTED" in text and "The daemon restarted" in text
            assert app.is_running
    finally:
        own.stop()


async def daemon_wait(gexd: AsyncClient, job_id: str) -> dict[str, Any]:
    return await gexd.wait(job_id, timeout_s=60)


async def until_async(pilot: Any, call: Any, check: Any, within_s: float = 30.0) -> Any:
    """Ask the daemon until its answer passes `check`, letting the app run in between."""
    found: dict[str, Any] = {}

    async def probe() -> bool:
        found["value"] = await call()
        return bool(check(found["value"]))

    loop_until = asyncio.get_running_loop().time() + within_s
    while not await probe():
        if asyncio.get_running_loop().time() > loop_until:
            raise AssertionError(f"timed out: last answer {found.get('value')!r}")
        await pilot.pause(0.1)
    return found["value"]


async def test_the_sla_view_shows_the_daemons_own_totals(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    """Item 6 of desk truth: the dashboard's SLA figures are the daemon's (/v1/sla), with
    their window named: the same totals the CLI and /metrics show."""
    async with live_app(daemon).run_test(size=SIZE) as pilot, AsyncClient(daemon.socket) as gexd:
        app = await attached(pilot)
        done = await gexd.submit(request(feeds, "SPY_quotedata.csv", market_symbol="SPY"))
        await daemon_wait(gexd, done["job_id"])
        report = await gexd.sla()
        await pilot.press("3")

        def shows_every_level() -> bool:
            text = screen_text(app)
            return all(
                f"{lv.met_total} met / {lv.breached_total} breached since the first job" in text
                for lv in report.levels
                if lv.level is not PriorityLevel.LOW
            )

        await until(pilot, shows_every_level, what="the daemon's SLA totals on screen")
        assert "breached in 1h" in screen_text(app)
