"""App behaviour on the recorded desk: freeze, hidden views, live GEX, the palette, staleness."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gextui.app import GexTui
from gextui.commands import DeskCommands
from gextui.replay import ReplayDaemon, response_key
from gextui.statusbar import link_state
from gextui.views.gex import GexView
from gextui.views.jobs import JobsView
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
            lambda: gex.shown is not None and gex.shown["snapshot_id"] == "spx-newer",
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
