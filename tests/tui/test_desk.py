"""The dashboard's plain parts: desk state, back-off, job filtering and ordering, sparklines, forms."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.vocab import JobStatus
from gexdaemon.readout import short_id
from gextui import readout
from gextui.desk import DeskState, LinkPhase
from gextui.link import Backoff
from gextui.screens.rule_editor import caret_excerpt, split_condition_problem
from gextui.screens.submit import local_problems, parse_metadata
from gextui.views.jobs import actions
from gextui.views.jobs.filters import JobFilter, top_jobs
from gextui.views.overview import queue_table
from tests.tui import recording
from tests.tui.recording import DESK_NOW


def fresh_desk() -> DeskState:
    desk = DeskState(lambda: DESK_NOW)
    desk.apply_snapshot(recording.state())
    return desk


# -- the desk ---------------------------------------------------------------------


def test_snapshot_fills_every_part_and_marks_connected() -> None:
    desk = fresh_desk()
    assert desk.link.phase is LinkPhase.CONNECTED
    assert len(desk.jobs) == len(recording.live_jobs())
    assert len(desk.recent) == len(recording.recent_jobs())
    assert set(desk.sources) == {src["base_url"] for src in recording.sources()}
    assert desk.symbols() == ["SPX", "NDX", "SPY"]
    assert desk.last_seq == 1000
    assert desk.daemon_live_total() == 29  # from the polled queue figures, not the job list
    # Failures among the recent jobs are in the activity log from the start.
    assert any("404 Not Found" in a.text for a in desk.activity)
    # A live job already breached is listed among the breaches.
    assert recording.ident("job", 5) in desk.breaches


def test_events_move_jobs_between_live_and_recent_by_their_status() -> None:
    desk = fresh_desk()
    job = recording.live_jobs()[0]
    rev = desk.rev.jobs
    desk.apply_event(recording.event(1001, "job.completed", job | {"status": "completed"}))
    assert job["job_id"] not in desk.jobs
    assert next(iter(desk.recent)) == job["job_id"]
    assert desk.rev.jobs == rev + 1
    retried = job | {"status": "queued", "reason": "retried by a trader"}
    desk.apply_event(recording.event(1002, "job.retrying", retried))
    assert desk.jobs[job["job_id"]].status is JobStatus.QUEUED
    assert job["job_id"] not in desk.recent
    # A job that fails for good at its deadline is breached and finished: not live.
    failed = job | {"status": "failed", "sla_status": "breached", "error_message": "source down"}
    desk.apply_event(recording.event(1003, "sla.breached", failed | {"late_by_s": 0.0}))
    assert job["job_id"] not in desk.jobs and job["job_id"] in desk.recent
    # Events the snapshot already holds are ignored.
    desk.apply_event(recording.event(999, "job.queued", job))
    assert job["job_id"] not in desk.jobs


def test_a_cleared_risk_unflags_the_job() -> None:
    desk = fresh_desk()
    ndx = recording.live_jobs()[1]
    assert desk.jobs[ndx["job_id"]].at_risk
    cleared = ndx | {"at_risk": False, "at_risk_reason": None}
    desk.apply_event(recording.event(1001, "sla.risk_cleared", cleared))
    assert not desk.jobs[ndx["job_id"]].at_risk
    assert ndx["job_id"] not in {j.job_id for j in desk.at_risk_jobs()}


def test_sequence_gaps_are_detected() -> None:
    desk = fresh_desk()
    assert desk.expects(1001)
    assert desk.expects(1000)  # a repeat is harmless
    assert not desk.expects(1003)


def test_a_new_instance_is_a_restart_banner_with_the_time_in_et() -> None:
    desk = fresh_desk()
    assert desk.banner is None
    restarted = recording.state_snapshot(seq=3)
    restarted["state"]["health"]["instance"] = "desk-7:5151:aaaaaa"
    desk.link_lost("the daemon closed the event stream", DESK_NOW + timedelta(seconds=1))
    # DESK_NOW is 15:00 UTC: the desk reads New York time, and is told so.
    assert desk.banner is not None and "Lost the daemon at 10:00:00 ET" in desk.banner.text
    desk.apply_snapshot(recording.wire(restarted))  # type: ignore[arg-type]
    assert desk.banner is not None and "restarted at 10:00:00 ET" in desk.banner.text
    assert "desk-7:5151:aaaaaa" in desk.banner.text
    assert desk.last_seq == 3  # the new daemon numbers from 1 again


def test_snapshot_created_updates_levels_and_history() -> None:
    desk = fresh_desk()
    newer = recording.snapshots()[0] | {
        "snapshot_id": recording.ident("snapshot-SPX", 8),
        "snapshot_at": (DESK_NOW - timedelta(seconds=5)).isoformat(),
        "total_gex": 1.5e9,
        "zero_gamma": 6800.0,
    }
    desk.apply_event(recording.event(1001, "snapshot.created", newer))
    assert desk.snapshots["SPX"].snapshot_id == newer["snapshot_id"]
    assert desk.snapshots["SPX"].zero_gamma == 6800.0
    assert desk.gex_points["SPX"][-1].total_gex == 1.5e9


def test_an_older_chain_processed_later_does_not_replace_the_latest() -> None:
    desk = fresh_desk()
    held = desk.snapshots["SPX"]
    late = recording.snapshots()[0] | {
        "snapshot_id": recording.ident("snapshot-SPX", 6),
        # The chain is a minute older than the one shown, but was processed just now.
        "snapshot_at": (held.snapshot_at - timedelta(minutes=1)).isoformat(),
        "processed_at": DESK_NOW.isoformat(),
        "spot_price": 6790.0,
    }
    desk.apply_event(recording.event(1001, "snapshot.created", late))
    assert desk.snapshots["SPX"].snapshot_id == held.snapshot_id
    assert desk.snapshots["SPX"].spot_price == recording.SPOT
    # Its point goes into the history where its market time puts it, not at the end.
    times = [p.snapshot_at for p in desk.gex_points["SPX"]]
    assert times == sorted(times)


def test_a_refused_drop_file_is_logged_with_the_errors_message() -> None:
    desk = fresh_desk()
    error = {"code": "unknown_format", "message": "no chain format matches x.txt", "details": []}
    desk.apply_event(recording.event(1001, "drop.rejected", {"file": "x.txt", "error": error}))
    line = desk.activity[0].text
    assert line == "drop folder refused x.txt: no chain format matches x.txt"


def test_queue_polls_are_sampled_with_their_instants() -> None:
    clock = {"now": DESK_NOW}
    desk = DeskState(lambda: clock["now"])
    desk.apply_snapshot(recording.state())
    queues = recording.state().state.queues
    desk.apply_queues(queues)
    for n in range(3):
        desk.apply_event(recording.event(1001 + n, "rule.updated", recording.rules()[0]))
    clock["now"] = DESK_NOW + timedelta(seconds=2)
    desk.apply_queues(queues)
    assert [q.at for q in desk.samples] == [DESK_NOW, DESK_NOW + timedelta(seconds=2)]
    assert desk.samples[-1].events_per_s == 1.5
    assert desk.polls == 2


# -- sparklines -------------------------------------------------------------------------


def test_sparklines_scale_from_zero() -> None:
    assert readout.spark([100.0] * 5, 5) == "█████"  # flat at 100 is tall, not empty
    assert readout.spark([1.0, 2.0], 2) == "▄█"  # 1 is half of 2
    assert readout.spark([0.0, 0.0], 2) == "  "
    assert readout.spark([0.9, 1.0], 2, ceiling=1.0) == "▇█"
    # Two rows: a half-height bar fills the bottom row only.
    assert readout.spark_rows([1.0, 2.0], 2, 2) == [" █", "██"]


def test_the_queue_sparkline_says_the_time_its_samples_cover() -> None:
    clock = {"now": DESK_NOW}
    desk = DeskState(lambda: clock["now"])
    desk.apply_snapshot(recording.state())
    queues = recording.state().state.queues
    for second in range(30):
        clock["now"] = DESK_NOW + timedelta(seconds=second)
        desk.apply_queues(queues)
    table = queue_table(desk, 160)
    headers = [str(column.header) for column in table.columns]
    assert "QUEUED, LAST 29s" in headers


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


# -- jobs: filter, order, what may be done ----------------------------------------------


def test_filter_tokens_and_words() -> None:
    flt = JobFilter.parse("level:crit,high status:queued sym:spy broker")
    assert flt.levels == {"critical", "high"}
    assert flt.statuses == {"queued"}
    assert flt.symbols == {"SPY"}
    assert flt.words == ("broker",)
    jobs = list(fresh_desk().jobs.values())
    matching = [j for j in jobs if flt.matches(j)]
    assert [j.job_id for j in matching] == [recording.ident("job", 4)]
    assert JobFilter.parse("critical").levels == {"critical"}
    assert JobFilter.parse("").is_empty
    # The short id the table shows finds its job.
    four = recording.ident("job", 4)
    assert [j.job_id for j in jobs if JobFilter.parse(short_id(four)).matches(j)] == [four]


def test_top_jobs_orders_and_caps() -> None:
    jobs = list(fresh_desk().jobs.values())
    ordered, passed = top_jobs(jobs, JobFilter(), "urgency", reverse=False, cap=5)
    assert passed == len(jobs)
    # Running first, then by level, then nearest deadline.
    assert [j.job_id for j in ordered] == [recording.ident("job", n) for n in (1, 3, 2, 5, 4)]
    oldest, _ = top_jobs(jobs, JobFilter(), "age", reverse=False, cap=1)
    assert oldest[0].job_id == recording.ident("job", 29)
    newest, _ = top_jobs(jobs, JobFilter(), "age", reverse=True, cap=1)
    assert newest[0].job_id == recording.ident("job", 1)
    spy, passed = top_jobs(jobs, JobFilter.parse("sym:SPY"), "urgency", reverse=False, cap=300)
    assert passed == len(spy) == sum(1 for j in jobs if j.market_symbol == "SPY")


def test_job_actions_follow_the_state_machine() -> None:
    desk = fresh_desk()
    running = desk.jobs[recording.ident("job", 1)]
    queued = desk.jobs[recording.ident("job", 4)]
    done = desk.recent[recording.ident("job", 40)]
    failed = desk.recent[recording.ident("job", 41)]
    assert not isinstance(actions.cancel(running), str)  # PROCESSING -> CANCELLED is allowed
    assert isinstance(actions.cancel(done), str)  # COMPLETED is final
    assert not isinstance(actions.retry(failed), str)  # FAILED -> QUEUED
    refused = actions.retry(queued)
    assert isinstance(refused, str) and short_id(queued.job_id) in refused
    assert not isinstance(actions.change_level(queued, -1), str)
    assert isinstance(actions.change_level(running, -1), str)  # only a queued job moves


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
