"""The dashboard's plain parts: desk state, back-off, job filtering and ordering, the GEX ladder, forms."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gextui.desk import DeskState, LinkPhase
from gextui.link import Backoff
from gextui.screens.rule_editor import caret_excerpt, split_condition_problem
from gextui.screens.submit import local_problems, parse_metadata
from gextui.views.gex import gex_ladder, strike_window
from gextui.views.jobs import JobFilter, top_jobs
from tests.tui import recording
from tests.tui.recording import DESK_NOW


def fresh_desk() -> DeskState:
    desk = DeskState(lambda: DESK_NOW)
    desk.apply_snapshot(recording.state_snapshot())
    return desk


# -- the desk ---------------------------------------------------------------------


def test_snapshot_fills_every_part_and_marks_connected() -> None:
    desk = fresh_desk()
    assert desk.link.phase is LinkPhase.CONNECTED
    assert len(desk.jobs) == len(recording.live_jobs())
    assert len(desk.recent) == len(recording.recent_jobs())
    assert set(desk.sources) == {s["base_url"] for s in recording.sources()}
    assert set(desk.snapshots) == {"SPX", "NDX", "SPY"}
    assert desk.symbols() == ["SPX", "NDX", "SPY"]
    assert desk.last_seq == 1000
    assert desk.daemon_live_total() == 29  # from the polled queue figures, not the job list
    # Failures among the recent jobs are in the activity log from the start.
    assert any("404 Not Found" in a.text for a in desk.activity)
    # A live job already breached is listed among the breaches.
    assert recording.ident("job", 5) in desk.breaches


def test_events_move_jobs_between_live_and_recent() -> None:
    desk = fresh_desk()
    job = recording.live_jobs()[0]
    rev = desk.rev.jobs
    desk.apply_event({"seq": 1001, "type": "job.completed", "data": job | {"status": "completed"}})
    assert job["job_id"] not in desk.jobs
    assert next(iter(desk.recent)) == job["job_id"]
    assert desk.rev.jobs == rev + 1
    desk.apply_event(
        {
            "seq": 1002,
            "type": "job.retrying",
            "data": job | {"status": "queued", "reason": "retried by a trader"},
        }
    )
    assert desk.jobs[job["job_id"]]["status"] == "queued"
    assert job["job_id"] not in desk.recent
    # Events the snapshot already holds are ignored.
    desk.apply_event({"seq": 999, "type": "job.completed", "data": job | {"status": "completed"}})
    assert job["job_id"] in desk.jobs


def test_sequence_gaps_are_detected() -> None:
    desk = fresh_desk()
    assert desk.expects(1001)
    assert desk.expects(1000)  # a repeat is harmless
    assert not desk.expects(1003)


def test_a_new_instance_is_a_restart_banner() -> None:
    desk = fresh_desk()
    assert desk.banner is None
    restarted = recording.state_snapshot(seq=3)
    restarted["state"]["health"]["instance"] = "desk-7:5151:aaaaaa"
    desk.link_lost("the daemon closed the event stream", DESK_NOW + timedelta(seconds=1))
    assert desk.banner is not None and "Lost the daemon" in desk.banner.text
    desk.apply_snapshot(restarted)
    assert desk.banner is not None and "restarted" in desk.banner.text
    assert "desk-7:5151:aaaaaa" in desk.banner.text
    assert desk.last_seq == 3  # the new daemon numbers from 1 again


def test_snapshot_created_updates_levels_and_history() -> None:
    desk = fresh_desk()
    summary = recording.snapshots()[0] | {
        "snapshot_id": "new",
        "total_gex": 1.5e9,
        "zero_gamma": 6800.0,
    }
    desk.apply_event({"seq": 1001, "type": "snapshot.created", "data": summary})
    assert desk.snapshots["SPX"]["snapshot_id"] == "new"
    assert desk.snapshots["SPX"]["zero_gamma"] == 6800.0
    assert desk.snapshots["SPX"]["total_open_interest"] == 15073261  # kept from the summary
    assert list(desk.gex_points["SPX"])[-1][1] == 1.5e9


def test_queue_polls_feed_the_sparklines() -> None:
    clock = {"now": DESK_NOW}
    desk = DeskState(lambda: clock["now"])
    desk.apply_snapshot(recording.state_snapshot())
    desk.apply_queues(recording.queues())
    for n in range(3):
        desk.apply_event({"seq": 1001 + n, "type": "rule.updated", "data": recording.rules()[0]})
    clock["now"] = DESK_NOW + timedelta(seconds=2)
    desk.apply_queues(recording.queues())
    assert list(desk.series["medium"].depth) == [12.0, 12.0]
    assert list(desk.events_per_s) == [1.5]
    assert desk.polls == 2


# -- back-off ---------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(first=st.floats(0.01, 2.0), cap=st.floats(0.5, 30.0), seed=st.integers(0, 10_000))
def test_backoff_is_capped_jittered_and_resets(first: float, cap: float, seed: int) -> None:
    backoff = Backoff(first_s=first, cap_s=cap, rng=random.Random(seed))
    delays = [backoff.next_delay() for _ in range(40)]
    for n, delay in enumerate(delays):
        ceiling = min(cap, first * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= first


# -- jobs: filter and order ------------------------------------------------------------


def test_filter_tokens_and_words() -> None:
    flt = JobFilter.parse("level:crit,high status:queued sym:spy broker")
    assert flt.levels == {"critical", "high"}
    assert flt.statuses == {"queued"}
    assert flt.symbols == {"SPY"}
    assert flt.words == ("broker",)
    jobs = recording.live_jobs()
    matching = [j for j in jobs if flt.matches(j)]
    assert [j["job_id"] for j in matching] == [recording.ident("job", 4)]
    assert JobFilter.parse("critical").levels == {"critical"}
    assert JobFilter.parse("").is_empty


def test_top_jobs_orders_and_caps() -> None:
    jobs = recording.live_jobs()
    ordered, passed = top_jobs(jobs, JobFilter(), "urgency", reverse=False, cap=5)
    assert passed == len(jobs)
    # Running first, then by level, then nearest deadline.
    assert [j["job_id"] for j in ordered] == [recording.ident("job", n) for n in (1, 3, 2, 5, 4)]
    oldest, _ = top_jobs(jobs, JobFilter(), "age", reverse=False, cap=1)
    assert oldest[0]["job_id"] == recording.ident("job", 29)
    newest, _ = top_jobs(jobs, JobFilter(), "age", reverse=True, cap=1)
    assert newest[0]["job_id"] == recording.ident("job", 1)
    spy, passed = top_jobs(jobs, JobFilter.parse("sym:SPY"), "urgency", reverse=False, cap=300)
    assert passed == len(spy) == sum(1 for j in jobs if j["market_symbol"] == "SPY")


# -- the GEX ladder ------------------------------------------------------------------------


def test_strike_window_centres_on_spot() -> None:
    strikes = [float(k) for k in range(100, 200, 10)]
    assert strike_window(strikes, 150.0, 4) == (3, 7)
    assert strike_window(strikes, 101.0, 4) == (0, 4)
    assert strike_window(strikes, 500.0, 4) == (6, 10)
    assert strike_window(strikes, 150.0, 0) == (0, 0)


def test_ladder_marks_spot_zero_gamma_and_walls() -> None:
    snap = recording.snapshots()[0] | {"strikes": recording.strikes()}
    lines = [line.plain for line in gex_ladder(snap, 120, 40)]
    text = "\n".join(lines)
    spot_line = next(i for i, line in enumerate(lines) if "spot 6,850.25" in line)
    zero_line = next(i for i, line in enumerate(lines) if "zero γ 6,866.4" in line)
    # Highest strike on top: zero gamma (6866.4) is drawn above spot (6850.25), each between its strikes.
    assert zero_line < spot_line
    assert lines[spot_line - 1].lstrip().startswith("6,860") and lines[
        spot_line + 1
    ].lstrip().startswith("6,850")
    assert lines[zero_line - 1].lstrip().startswith("6,870") and lines[
        zero_line + 1
    ].lstrip().startswith("6,860")
    assert "CALL WALL" in next(line for line in lines if line.lstrip().startswith("6,880"))
    assert "PUT WALL" in next(line for line in lines if line.lstrip().startswith("6,820"))
    # Negative net GEX draws left of the axis, positive right of it.
    below = next(line for line in lines if line.lstrip().startswith("6,810"))
    above = next(line for line in lines if line.lstrip().startswith("6,910"))
    assert below.index("█") < below.index("│") and above.index("█") > above.index("│")
    assert "-$" in below and "-$" not in above.split("│")[1]
    assert len(lines) <= 40 and "STRIKE" in text


def test_ladder_says_where_an_off_screen_level_is() -> None:
    snap = recording.snapshots()[0] | {"strikes": recording.strikes(), "zero_gamma": 7400.0}
    lines = [line.plain for line in gex_ladder(snap, 120, 12)]
    assert any("zero γ 7,400.00 ▲ above the strikes shown" in line for line in lines)


# -- forms ------------------------------------------------------------------------------------


def test_caret_sits_under_the_column() -> None:
    text = "market_symbol = 'SPX'"
    excerpt = caret_excerpt(text, 15, "to compare, write ==").plain.splitlines()
    assert excerpt[1] == "  " + text
    assert excerpt[2].index("^") - 2 == 14 and text[14] == "="
    found = split_condition_problem("calls are not allowed (column 30): `foo(1)`")
    assert found == (30, "calls are not allowed")
    assert split_condition_problem("a name is required") is None


def test_long_condition_excerpt_keeps_the_caret_on_its_character() -> None:
    text = "data_type == 'real_time' and " * 5 + "bogus.attr > 3"
    column = text.index("bogus") + 1
    lines = caret_excerpt(text, column, "attribute access").plain.splitlines()
    caret = lines[2].index("^")
    assert lines[1][caret] == "b"


def test_request_form_checks() -> None:
    assert parse_metadata("open_interest=25000, volume=9000, desk=vol") == {
        "open_interest": 25000,
        "volume": 9000,
        "desk": "vol",
    }
    assert parse_metadata('{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="key=value"):
        parse_metadata("volume")
    problems = {p.path for p in local_problems("ftp://x", "", "oops")}
    assert problems == {"source_url", "market_symbol", "metadata"}
    assert local_problems("https://cdn.cboe.com/x.json", "SPX", "") == []
