"""App behaviour on the recorded desk: freeze, hidden views, live GEX, the palette, staleness."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual.widgets import Input, Static

from gexdaemon.readout import short_id
from gextui.app import GexTui
from gextui.commands import DeskCommands
from gextui.replay import ReplayDaemon, response_key
from gextui.screens.rule_editor import RuleEditor
from gextui.statusbar import link_state
from gextui.views.gex import GexView
from gextui.views.jobs.view import JobsView
from gextui.widgets.livetable import LiveTable
from tests.tui import recording
from tests.tui.conftest import SIZE, screen_text, settled, still, until
from tests.tui.recording import DESK_NOW


def pushed_job(n: int, seq: int) -> dict[str, Any]:
    job = recording.job_summary(
        n, level="critical", status="queued", symbol="SPY", data_type="real_time", age_s=1.0
    )
    return {"seq": seq, "type": "job.queued", "at": DESK_NOW.isoformat(), "data": job}


def app_on(daemon: ReplayDaemon, **options: Any) -> GexTui:
    return still(GexTui(daemon, clock=lambda: DESK_NOW, poll_s=3600.0, **options))


async def test_freeze_holds_the_screen_while_data_keeps_flowing() -> None:
    daemon = recording.replay_daemon()
    app = app_on(daemon, initial_view="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        jobs = app.query_one(JobsView)
        before = list(jobs.table.order)
        await pilot.press("f")
        daemon.push(pushed_job(900, 1005))
        new_id = recording.ident("job", 900)
        await until(pilot, lambda: new_id in app.desk.jobs, what="the event applied")
        app.flush()
        await pilot.pause()
        assert jobs.table.order == before  # the screen held still
        assert "FROZEN (1 events since" in screen_text(app)
        await pilot.press("f")
        await pilot.pause()
        assert new_id in jobs.table.order
        assert "FROZEN" not in screen_text(app)


async def test_hidden_views_are_not_redrawn() -> None:
    daemon = recording.replay_daemon()
    app = app_on(daemon)  # on the Overview
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        jobs = app.query_one(JobsView)
        assert jobs.last_sync is None  # never drawn while hidden
        daemon.push(pushed_job(901, 1005))
        await until(pilot, lambda: recording.ident("job", 901) in app.desk.jobs, what="the event")
        app.flush()
        assert jobs.last_sync is None
        await pilot.press("2")
        await pilot.pause()
        assert jobs.last_sync is not None and recording.ident("job", 901) in jobs.table.order


async def test_gex_follows_a_new_snapshot() -> None:
    daemon = recording.replay_daemon()
    newer = recording.snapshots()[0] | {
        "snapshot_id": "spx-newer",
        "spot_price": 6871.5,
        "zero_gamma": 6902.0,
    }
    daemon._responses[response_key("snapshot", "spx-newer")] = newer | {
        "strikes": recording.strikes()
    }
    app = app_on(daemon, initial_view="gex")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        gex = app.query_one(GexView)
        await until(pilot, lambda: gex.shown is not None, what="the first chart")
        daemon.push(
            {"seq": 1005, "type": "snapshot.created", "at": DESK_NOW.isoformat(), "data": newer}
        )
        await until(
            pilot,
            lambda: gex.shown is not None and gex.shown.snapshot_id == "spx-newer",
            what="the new chart",
        )
        app.flush()
        await pilot.pause()
        text = screen_text(app)
        assert "spot 6,871.5" in text and "zero γ 6,902" in text
        await pilot.press("right")
        await until(pilot, lambda: gex.symbol == "NDX", what="the next symbol")


async def test_palette_offers_what_applies_here() -> None:
    app = app_on(recording.replay_daemon(), initial_view="rules")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        titles = [hit.text async for hit in DeskCommands(app.screen).discover()]
        assert "Add a priority rule" in titles and "Show the Jobs view" in titles
        assert "Cancel the selected job" not in titles  # a Jobs action: not on this view
        hits = [hit.text async for hit in DeskCommands(app.screen).search("shadow")]
        assert hits == ["Shadow-test the selected rule (nothing is saved)"]


async def test_silence_turns_the_bar_stale() -> None:
    clock = {"now": DESK_NOW}
    app = still(GexTui(recording.replay_daemon(), clock=lambda: clock["now"], poll_s=3600.0))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert link_state(app.desk) == "connected"
        clock["now"] = DESK_NOW + timedelta(seconds=9)
        app.flush()
        await pilot.pause()
        assert link_state(app.desk) == "stale"
        text = screen_text(app)
        assert "STALE" in text and "last update 9 s ago" in text
        assert app.query_one("#views").has_class("-stale")


# -- the GEX ladder: scroll, zoom, jumps, walls at the edge ------------------------------------


async def gex_on_screen(pilot: Any, app: GexTui) -> GexView:
    gex = app.query_one(GexView)
    await until(pilot, lambda: gex.chart.drawn is not None, what="the ladder")
    return gex


async def test_ladder_scrolls_zooms_and_jumps_to_the_levels() -> None:
    app = app_on(recording.replay_daemon(), initial_view="gex")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        gex = await gex_on_screen(pilot, app)
        chart = gex.chart
        assert chart.centre is None  # following spot
        lo, hi = chart.drawn.shown if chart.drawn else (0, 0)
        await pilot.press("up", "up")
        await pilot.pause()
        assert chart.drawn is not None and chart.drawn.shown[1] > hi  # higher strikes
        assert chart.centre is not None and chart.centre > recording.SPOT
        await pilot.press("full_stop")
        await pilot.pause()
        assert chart.centre is None and chart.drawn.shown == (lo, hi)
        await pilot.press("minus")  # zoom out: two strikes a row
        await pilot.pause()
        assert chart.per_row == 2 and "2 STRIKES" in screen_text(app)
        await pilot.press("plus")
        await pilot.press("c")  # the call wall
        await pilot.pause()
        call_wall = recording.snapshots()[0]["call_wall"]
        assert chart.centre == call_wall
        assert any("CALL WALL" in line.plain for line in chart.drawn.lines)


async def test_walls_off_screen_are_named_at_the_edge_with_their_key() -> None:
    app = app_on(recording.replay_daemon(), initial_view="gex")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        gex = await gex_on_screen(pilot, app)
        await pilot.press("pageup", "pageup")  # far above spot: the put wall is out of sight
        await pilot.pause()
        drawn = gex.chart.drawn
        assert drawn is not None and [lv.name for lv in drawn.below][:1] == ["spot"]
        lines = screen_text(app).splitlines()
        edge = "\n".join(lines[next(i for i, line in enumerate(lines) if "▼" in line) :])
        assert "PUT WALL 6,820.00 (p)" in edge and "spot 6,850.25 (.)" in edge
        assert "CALL WALL 6,880.00 (c)" in edge


async def test_help_scrolls_on_a_small_terminal() -> None:
    app = app_on(recording.replay_daemon())
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        keys = app.screen.query_one("#help-keys")
        assert keys.max_scroll_y > 0  # longer than the screen
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()
        assert keys.scroll_offset.y > 0


async def test_rule_editor_keeps_the_cursor_where_the_trader_types() -> None:
    app = app_on(recording.replay_daemon(), initial_view="rules")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, RuleEditor), what="the editor")
        box = app.screen.query_one("#rule-condition", Input)
        box.focus()
        typed = "market_symbol = 'SPX' and"
        for char in typed:
            await pilot.press(char if char != " " else "space")
        error = app.screen.query_one("#rule-condition-error", Static)
        await until(pilot, lambda: "column 15" in str(error.content), what="the caret")
        await pilot.pause(0.4)  # past the check's debounce
        assert box.value == typed and box.cursor_position == len(typed)
        await pilot.press("space", "x")
        assert box.value == typed + " x"


async def test_every_job_id_on_screen_is_the_short_id_the_cli_prints() -> None:
    app = app_on(recording.replay_daemon(), initial_view="sla")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        breached = recording.ident("job", 41)  # in the daemon's SLA record
        await until(pilot, lambda: breached in app.desk.breaches, what="the SLA poll")
        app.flush()
        await pilot.pause()
        text = screen_text(app)
        assert short_id(breached) in text and breached not in text
        await pilot.press("2")
        jobs = app.query_one(JobsView)
        await until(pilot, lambda: jobs.detail is not None, what="the detail")
        app.flush()
        await pilot.pause()
        text = screen_text(app)
        shown = jobs.selected()
        assert shown is not None and f"job      {short_id(shown.job_id)}" in text
        assert not any(job_id in text for job_id in app.desk.jobs)  # never the long form


async def test_an_older_chain_processed_later_leaves_the_newer_on_screen() -> None:
    daemon = recording.replay_daemon()
    app = app_on(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        older = recording.snapshots()[0] | {
            "snapshot_id": recording.ident("snapshot-SPX", 6),
            "snapshot_at": (DESK_NOW - timedelta(minutes=5)).isoformat(),
            "processed_at": DESK_NOW.isoformat(),
            "spot_price": 6790.0,
        }
        daemon.push(recording.event(1005, "snapshot.created", older).to_builtins())
        await until(pilot, lambda: app.desk.events_seen >= 5, what="the late snapshot")
        app.flush()
        await pilot.pause()
        text = screen_text(app)
        assert "6,850.25" in text and "6,790.00" not in text
        await pilot.press("4")
        gex = await gex_on_screen(pilot, app)
        assert gex.shown is not None and gex.shown.spot_price == recording.SPOT


async def test_at_risk_jobs_say_why_in_the_jobs_table_and_the_sla_view() -> None:
    app = app_on(recording.replay_daemon(), initial_view="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        jobs = app.query_one(JobsView)
        ndx = recording.ident("job", 2)
        assert jobs.table.shown_columns[-1][0].key == "why"
        assert jobs.table._cells[ndx]["why"].plain == recording.NDX_RISK
        await pilot.press("3")
        await pilot.pause()
        sla = app.query_one("#sla-risk", LiveTable)
        assert "why" in sla.shown_keys and "job" in sla.shown_keys
        assert sla._rows[ndx]["why"].plain == recording.NDX_RISK
        assert recording.NDX_RISK[:12] in screen_text(app)
