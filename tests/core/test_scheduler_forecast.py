"""The continuous at-risk forecast: a job is flagged when its forecast finish passes its
deadline, early and with the reason in words, and cleared when the forecast recovers."""

from __future__ import annotations

from gexdaemon.core.models import PriorityLevel
from gexdaemon.core.scheduler import Risk, SchedJob, Scheduler, SourceAccess
from gexdaemon.core.settings import SchedulerSettings, SlaSettings
from tests.core.test_scheduler import C, Clock, H, L


def scheduler(
    slots: int = 2, *, cap: int = 10, rate: float = 1000.0, margin: float | None = 1.0
) -> tuple[Scheduler, Clock]:
    clock = Clock()
    sched = Scheduler(
        SchedulerSettings(reserved_critical_slot=False),
        SlaSettings(),
        slots,
        source_cap=cap,
        rate_per_s=rate,
        burst=1000,
        clock=clock,
    )
    if margin is not None:  # the plan as it is, unless a test asks for the default
        sched.risk_margin = margin
    return sched, clock


def submit(
    sched: Scheduler,
    job_id: str,
    level: PriorityLevel = C,
    *,
    source: str = "a",
    estimate: float = 10.0,
    at: float = 1000.0,
    not_before: float = 0.0,
) -> None:
    sched.submit(SchedJob(job_id, level, source, None, estimate, at, not_before=not_before))


def flags(changes: list[Risk]) -> dict[str, Risk]:
    return {str(r.job_id): r for r in changes}


def test_a_critical_job_behind_more_work_than_fits_is_flagged_long_before_its_deadline() -> None:
    sched, clock = scheduler(slots=2)
    for i in range(6):  # 6 jobs of 10 s on 2 workers: the last two finish at 30 s, 30 s SLA
        submit(sched, f"c{i}", estimate=10.0)
    for _ in range(2):
        assert sched.dispatch() is not None
    sched.take_risk_changes()
    clock.now += 1.0  # 29 s before the deadline
    submit(sched, "late", estimate=10.0)  # deadline 1031; forecast start 1030 (3 waves)
    sched.take_risk_changes()
    sched.forecast()
    found = flags(sched.take_risk_changes())
    assert found["late"].at_risk
    assert found["late"].deadline - clock.now >= 25.0  # flagged 25+ s ahead, not at the deadline
    assert found["late"].reason == "behind 4 CRITICAL jobs"
    assert sched.reason("late") == "behind 4 CRITICAL jobs"
    assert sched.stats()[C].at_risk >= 1


def test_the_flag_clears_when_the_work_ahead_goes_away() -> None:
    sched, _clock = scheduler(slots=1)
    for i in range(4):
        submit(sched, f"c{i}", estimate=10.0)
    sched.forecast()
    assert flags(sched.take_risk_changes())["c3"].at_risk  # 4 x 10 s on one worker
    for i in range(3):
        sched.cancel(f"c{i}")
    sched.forecast()
    cleared = flags(sched.take_risk_changes())["c3"]
    assert not cleared.at_risk and cleared.reason == ""
    assert sched.reason("c3") == ""
    assert sched.stats()[C].at_risk == 0


def test_a_source_with_an_open_circuit_names_when_it_reopens() -> None:
    sched, _clock = scheduler()
    sched.describe_time = lambda t: f"T+{t - 1000.0:.0f}"
    sched.set_source_access("cdn.cboe.com", SourceAccess.BLOCKED, until=1040.0)
    submit(sched, "c", source="cdn.cboe.com", estimate=1.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())["c"]
    assert found.at_risk
    assert found.reason == "source cdn.cboe.com circuit open until T+40"


def test_a_source_that_reopens_in_time_is_not_a_risk() -> None:
    sched, _clock = scheduler()
    sched.set_source_access("cdn.cboe.com", SourceAccess.BLOCKED, until=1010.0)
    submit(sched, "c", source="cdn.cboe.com", estimate=1.0)
    sched.forecast()
    assert sched.take_risk_changes() == []


def test_a_disabled_source_never_starts() -> None:
    sched, _clock = scheduler()
    sched.set_source_access("x", SourceAccess.BLOCKED)
    submit(sched, "h", H, source="x", estimate=1.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())["h"]
    assert found.at_risk and found.reason == "source x is disabled"


def test_a_retry_backoff_past_the_deadline_is_the_reason() -> None:
    sched, _clock = scheduler()
    submit(sched, "c", estimate=1.0, not_before=1035.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())["c"]
    assert found.at_risk and found.reason == "waiting out its retry backoff"


def test_a_source_at_its_cap_is_the_reason() -> None:
    sched, _clock = scheduler(slots=8, cap=1)
    for i in range(5):  # one at a time at this source: 5 x 8 s, deadline 30 s
        submit(sched, f"c{i}", source="slow", estimate=8.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())
    # The overshoot lets CRITICAL run one above the cap: two at once, so the fifth
    # starts at 16 s and finishes at 24 s: in time. A sixth and seventh would not be.
    assert found == {}
    submit(sched, "c5", source="slow", estimate=8.0)
    submit(sched, "c6", source="slow", estimate=8.0)
    sched.forecast()
    late = flags(sched.take_risk_changes())["c6"]
    assert late.at_risk and late.reason == "slow runs at most 2 at once"


def test_low_jobs_are_never_flagged() -> None:
    sched, _clock = scheduler(slots=1)
    for i in range(50):
        submit(sched, f"l{i}", L, estimate=100.0)
    sched.forecast()
    assert sched.take_risk_changes() == []


def test_a_flag_is_reported_once_until_its_reason_changes() -> None:
    sched, _clock = scheduler(slots=1)
    for i in range(4):
        submit(sched, f"c{i}", estimate=10.0)
    sched.forecast()
    assert "c3" in flags(sched.take_risk_changes())
    sched.forecast()
    assert "c3" not in flags(sched.take_risk_changes())


def test_a_job_planned_to_end_just_in_time_is_flagged_with_the_default_margin() -> None:
    sched, _ = scheduler(slots=1, margin=None)
    submit(sched, "first", estimate=11.0)
    submit(sched, "second", estimate=11.0)  # planned 11..22 s: in time; 11 + 2 x 11 s is not
    sched.forecast()
    assert [r.job_id for r in sched.take_risk_changes() if r.at_risk] == ["second"]


def test_a_running_job_far_past_its_estimate_is_flagged_before_its_deadline() -> None:
    sched, clock = scheduler(slots=1)
    submit(sched, "slow", estimate=2.0)
    assert sched.dispatch() is not None
    sched.take_risk_changes()
    clock.now += 8.0  # 4 times its estimate; at that pace it ends at 16 s: still in time
    sched.forecast()
    assert sched.take_risk_changes() == []
    clock.now += 8.0  # 16 s in: as long again ends at 32 s, past the 30 s deadline
    sched.forecast()
    found = flags(sched.take_risk_changes())["slow"]
    assert found.at_risk and found.reason == "running 16 s, 8 times its estimate"
    assert found.deadline - clock.now == 14.0


def test_a_job_behind_a_source_at_its_cap_is_forecast_to_finish_after_the_jobs_ahead() -> None:
    sched, _clock = scheduler(slots=8, cap=1)
    for i in range(7):  # two at once (cap 1 + CRITICAL's overshoot): 0-8, 8-16, 16-24, 24-32 s
        submit(sched, f"c{i}", source="slow", estimate=8.0)
    sched.forecast()
    late = flags(sched.take_risk_changes())
    assert set(late) == {"c6"}
    assert late["c6"].finish == 1032.0
    assert late["c6"].deadline == 1030.0


def test_running_jobs_hold_their_source_in_the_forecast() -> None:
    sched, clock = scheduler(slots=8, cap=1)
    submit(sched, "r0", source="slow", estimate=20.0)
    submit(sched, "r1", source="slow", estimate=20.0)
    assert sched.dispatch() is not None and sched.dispatch() is not None
    sched.take_risk_changes()
    clock.now += 5.0  # both run until 1020; the source is at its cap (2 for CRITICAL)
    submit(sched, "q", source="slow", estimate=16.0, at=clock.now)  # deadline 1035
    sched.forecast()
    found = flags(sched.take_risk_changes())["q"]
    assert found.at_risk and found.finish == 1036.0  # starts when the first one ends
    assert found.reason == "slow runs at most 2 at once"


def test_a_rate_limited_source_spaces_the_forecast_starts() -> None:
    sched, _clock = scheduler(slots=8, cap=10, rate=0.1)
    sched.set_source_limits("slow", cap=10, rate_per_s=0.1, burst=1)
    for i in range(4):  # one fetch per 10 s: starts at 0, 10, 20, 30 s
        submit(sched, f"c{i}", source="slow", estimate=1.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())
    assert set(found) == {"c3"}
    assert found["c3"].finish == 1031.0
    assert found["c3"].reason == "slow is rate limited to 0.1 fetches/s"


def test_the_forecast_plans_critical_jobs_by_deadline_not_by_arrival() -> None:
    sched, _clock = scheduler(slots=1)
    sched.submit(SchedJob("relaxed", C, "a", 1100.0, 20.0, 1000.0))
    sched.submit(SchedJob("urgent", C, "a", 1025.0, 20.0, 1000.0))
    sched.forecast()  # urgent 0-20 s (deadline 25 s), relaxed 20-40 s (deadline 100 s)
    assert sched.take_risk_changes() == []


def test_one_job_ahead_is_named_in_the_singular() -> None:
    sched, _clock = scheduler(slots=1)
    for i in range(3):  # c0 runs 0-11 s, c1 11-22 s, c2 22-33 s: past its 30 s deadline
        submit(sched, f"c{i}", estimate=11.0)
    assert sched.dispatch() is not None
    sched.take_risk_changes()
    sched.forecast()
    found = flags(sched.take_risk_changes())
    assert set(found) == {"c2"}
    assert found["c2"].reason == "behind 1 CRITICAL job"


def test_a_job_longer_than_its_deadline_says_so() -> None:
    sched, _clock = scheduler(slots=2)
    submit(sched, "long", estimate=40.0)
    sched.forecast()
    found = flags(sched.take_risk_changes())["long"]
    assert found.at_risk and found.reason == "its estimate alone runs past the deadline"
    assert found.finish == 1040.0


def test_high_jobs_are_forecast_on_the_share_low_leaves_them() -> None:
    clock = Clock()
    sched = Scheduler(
        SchedulerSettings(reserved_critical_slot=False, medium_floor=0.0, low_floor=0.5),
        SlaSettings(),
        1,
        source_cap=10,
        rate_per_s=1000.0,
        burst=1000,
        clock=clock,
    )
    sched.risk_margin = 1.0
    sched.submit(SchedJob("low", L, "a", None, 5.0, 1000.0))
    sched.submit(SchedJob("high", H, "a", 1030.0, 20.0, 1000.0))
    sched.forecast()  # half the worker: 20 s of work takes 40 s
    found = flags(sched.take_risk_changes())["high"]
    assert found.at_risk and found.finish == 1040.0


def test_a_source_rate_must_be_positive() -> None:
    import pytest

    sched, _clock = scheduler()
    with pytest.raises(ValueError):
        sched.set_source_limits("a", rate_per_s=0.0)


def test_a_retry_waiting_out_its_backoff_is_counted_until_it_is_released() -> None:
    sched, clock = scheduler()
    submit(sched, "retry", estimate=1.0, not_before=1010.0)
    submit(sched, "other", estimate=1.0, not_before=1020.0)
    assert sched.stats()[C].delayed == 2
    clock.now = 1011.0
    assert sched.dispatch() is not None
    assert sched.stats()[C].delayed == 1
    clock.now = 1021.0
    assert sched.dispatch() is not None
    assert sched.stats()[C].delayed == 0


# -- exact figures -----------------------------------------------------------------------


def test_a_running_job_past_three_times_its_estimate_is_read_as_needing_as_long_again() -> None:
    sched, clock = scheduler(slots=1)
    submit(sched, "slow", C, estimate=4.0)  # deadline 1030
    assert sched.dispatch() is not None
    clock.now = 1011.9  # ran 11.9 s: not yet 3 times its estimate
    sched.forecast()
    assert sched.take_risk_changes() == []
    clock.now = 1012.0  # 12 s = 3 times: read as 24 s in all, finishing at 1024 (in time)
    sched.forecast()
    assert sched.take_risk_changes() == []
    clock.now = 1015.5  # 15.5 s: read as 31 s, finishing at 1031, past 1030
    sched.forecast()
    (risk,) = sched.take_risk_changes()
    assert risk == ("slow", True, 1031.0, 1030.0, "running 16 s, 4 times its estimate")
    sched.forecast()  # said once
    assert sched.take_risk_changes() == []


def test_a_running_job_whose_doubled_run_ends_on_its_deadline_is_not_flagged() -> None:
    sched, clock = scheduler(slots=1)
    submit(sched, "slow", C, estimate=4.0)
    assert sched.dispatch() is not None
    clock.now = 1015.0  # read as 30 s in all: exactly the deadline
    sched.forecast()
    assert sched.take_risk_changes() == []


def test_the_forecast_finish_of_queued_work_is_exact() -> None:
    sched, _ = scheduler(slots=2)
    for i in range(4):  # 4 jobs of 10 s on 2 workers, then one more: it starts at 1020
        submit(sched, f"c{i}", source=f"s{i}", estimate=10.0)
    for _ in range(2):
        assert sched.dispatch() is not None
    submit(sched, "fits", source="x", estimate=10.0)  # deadline 1030: finishes at 1030
    submit(sched, "late", source="y", estimate=10.5)  # finishes at 1030.5
    sched.take_risk_changes()
    sched.forecast()
    found = flags(sched.take_risk_changes())
    assert "fits" not in found
    assert found["late"] == ("late", True, 1030.5, 1030.0, "behind 3 CRITICAL jobs")
    sched.cancel("c2")  # still two waves ahead of it: the same verdict, a new reason
    sched.forecast()
    assert sched.take_risk_changes() == [("late", True, 1030.5, 1030.0, "behind 2 CRITICAL jobs")]
    sched.cancel("c3")  # one wave: it makes it now
    sched.forecast()
    cleared = flags(sched.take_risk_changes())
    assert cleared["late"] == ("late", False, 1020.5, 1030.0, "")


def test_a_job_waiting_for_its_backoff_is_forecast_from_the_end_of_it() -> None:
    sched, _ = scheduler(slots=4)
    submit(sched, "retry", C, estimate=5.0, not_before=1026.0)  # ends 1031 > 1030
    submit(sched, "low", L, estimate=5.0, not_before=1026.0)  # LOW: never at risk
    sched.take_risk_changes()
    sched.forecast()
    found = flags(sched.take_risk_changes())
    assert set(found) == {"retry"} and found["retry"].finish == 1031.0
