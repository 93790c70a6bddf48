"""The scheduler's rules, one at a time, with a hand-driven clock."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gexdaemon.core.models import PriorityLevel
from gexdaemon.core.scheduler import (
    Dispatch,
    Phase,
    SchedJob,
    Scheduler,
    SourceAccess,
)
from gexdaemon.core.settings import SchedulerSettings, SlaSettings

C, H, M, L = PriorityLevel.CRITICAL, PriorityLevel.HIGH, PriorityLevel.MEDIUM, PriorityLevel.LOW


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    slots: int = 4,
    *,
    cap: int = 2,
    rate: float = 1000.0,
    burst: int = 1000,
    clock: Clock | None = None,
    sla: SlaSettings | None = None,
    **settings: object,
) -> tuple[Scheduler, Clock]:
    clock = clock or Clock()
    sched = Scheduler(
        SchedulerSettings.model_validate(settings),
        sla or SlaSettings(),
        slots,
        source_cap=cap,
        rate_per_s=rate,
        burst=burst,
        clock=clock,
    )
    return sched, clock


def job(
    job_id: str,
    level: PriorityLevel,
    source: str = "a",
    *,
    at: float = 1000.0,
    estimate: float = 2.0,
    deadline: float | None = None,
    not_before: float = 0.0,
) -> SchedJob:
    return SchedJob(job_id, level, source, deadline, estimate, at, not_before)


def drain(sched: Scheduler) -> list[Dispatch]:
    out = []
    while (d := sched.dispatch()) is not None:
        out.append(d)
    return out


def test_critical_goes_first_earliest_deadline_first() -> None:
    sched, _ = make(slots=1, cap=10)
    sched.submit(job("low", L))
    sched.submit(job("high", H))
    sched.submit(job("late", C, "b", deadline=1029.0))
    sched.submit(job("soon", C, "c", deadline=1010.0))
    first = sched.dispatch()
    assert first is not None
    assert (first.job_id, first.phase) == ("soon", Phase.CRITICAL)
    assert sched.dispatch() is None  # the one worker is busy
    sched.finish("soon", 1.0)
    second = sched.dispatch()
    assert second is not None and second.job_id == "late"


def test_deadline_comes_from_the_sla_when_not_given() -> None:
    sched, _ = make()
    admission = sched.submit(job("h", H, at=1000.0))
    assert admission.deadline == 1000.0 + SlaSettings().high_s
    low = sched.submit(job("l", L))
    assert low.deadline is None and not low.at_risk


def test_critical_may_exceed_its_source_cap_by_one_and_no_more() -> None:
    sched, _ = make(slots=8, cap=2)
    for i in range(3):
        sched.submit(job(f"low{i}", L, "hot"))
    started = drain(sched)
    assert [d.job_id for d in started] == ["low0", "low1"]  # cap 2
    sched.submit(job("crit1", C, "hot"))
    sched.submit(job("crit2", C, "hot"))
    overshoot = drain(sched)
    assert [d.job_id for d in overshoot] == ["crit1"]  # 3 in flight: cap + 1
    assert overshoot[0].phase is Phase.CRITICAL
    sched.finish("low0", 2.0)
    # The freed place goes to the waiting CRITICAL job (3 in flight again), not to LOW.
    assert [d.job_id for d in drain(sched)] == ["crit2"]


def test_overshoot_setting_zero_keeps_critical_under_the_cap() -> None:
    sched, _ = make(slots=8, cap=1, critical_cap_overshoot=0)
    sched.submit(job("low", L, "hot"))
    drain(sched)
    sched.submit(job("crit", C, "hot"))
    assert sched.dispatch() is None


def test_rate_limit_holds_jobs_until_a_token_refills() -> None:
    sched, clock = make(slots=8, cap=8, rate=0.5, burst=2)
    for i in range(3):
        sched.submit(job(f"j{i}", L))
    assert len(drain(sched)) == 2
    wake = sched.next_wakeup()
    assert wake is not None
    assert wake == pytest.approx(clock.now + 2.0)  # 1 token at 0.5/s
    clock.now = wake - 0.01
    assert sched.dispatch() is None
    clock.now = wake
    assert [d.job_id for d in drain(sched)] == ["j2"]


def test_retry_waits_for_not_before_and_keeps_its_deadline() -> None:
    sched, clock = make()
    sched.submit(job("h", H))
    first = sched.dispatch()
    assert first is not None
    original = first.deadline
    sched.finish("h", 1.0)
    clock.now += 5
    sched.submit(job("h", H, at=1000.0, deadline=original, not_before=clock.now + 3.0))
    assert sched.dispatch() is None
    assert sched.stats()[H].delayed == 1
    assert sched.next_wakeup() == clock.now + 3.0
    clock.now += 3.0
    retry = sched.dispatch()
    assert retry is not None and retry.job_id == "h" and retry.deadline == original


def test_an_unavailable_source_holds_its_jobs_and_others_proceed() -> None:
    sched, _ = make(slots=4, cap=4)
    sched.set_source_available("down", False)
    sched.submit(job("d1", C, "down"))
    sched.submit(job("u1", L, "up"))
    assert [d.job_id for d in drain(sched)] == ["u1"]
    sched.set_source_available("down", True)
    assert [d.job_id for d in drain(sched)] == ["d1"]


def test_a_probe_lets_exactly_one_job_through() -> None:
    sched, _ = make(slots=4, cap=4)
    sched.set_source_available("flaky", False)
    for i in range(3):
        sched.submit(job(f"f{i}", M, "flaky"))
    assert drain(sched) == []
    sched.allow_probe("flaky")
    assert len(drain(sched)) == 1
    stats = {s.source: s for s in sched.source_stats()}
    assert stats["flaky"].access is SourceAccess.BLOCKED  # waits for the probe's verdict
    sched.allow_probe("flaky")  # the breaker's state synced again: still one probe
    assert drain(sched) == []
    sched.set_source_available("flaky", False)  # the probe failed: open again ...
    sched.allow_probe("flaky")  # ... and after the next cool-down, a new probe
    assert len(drain(sched)) == 1


def test_unavailable_source_makes_deadline_jobs_at_risk_on_admission() -> None:
    sched, _ = make()
    sched.set_source_available("down", False)
    admission = sched.submit(job("c", C, "down"))
    assert admission.at_risk and admission.reason == "source down is disabled"


def test_cancel_removes_a_queued_job_only() -> None:
    sched, _ = make(slots=1)
    sched.submit(job("run", M))
    sched.submit(job("wait", M))
    sched.submit(job("later", L, not_before=5000.0))
    running = sched.dispatch()
    assert running is not None and running.job_id == "run"
    assert sched.cancel("run") is False  # running: it ends with finish()
    assert sched.cancel("nope") is False
    assert sched.cancel("wait") is True
    assert sched.cancel("wait") is False
    assert sched.cancel("later") is True  # a retry waiting for its backoff
    assert sched.queued_count == 0
    sched.finish("run", 1.0)
    assert sched.dispatch() is None
    assert sched.next_wakeup() is None


def test_the_reserved_worker_is_lent_only_to_short_jobs() -> None:
    sched, _ = make(slots=3, cap=10, reserved_slot_max_estimate_s=5.0)
    for i in range(3):
        sched.submit(job(f"long{i}", L, estimate=60.0))
    assert [d.job_id for d in drain(sched)] == ["long0", "long1"]
    # Only the first job of each source's queue is looked at: the short job from
    # source "b" may borrow the reserved worker, one queued behind "long2" may not.
    sched.submit(job("short-behind", L, "a", estimate=1.0))
    sched.submit(job("short", L, "b", estimate=1.0))
    assert [d.job_id for d in drain(sched)] == ["short"]
    sched.finish("short", 1.0)
    sched.submit(job("crit", C, estimate=60.0))
    assert [d.job_id for d in drain(sched)] == ["crit"]


def test_without_a_reserved_worker_long_jobs_take_every_slot() -> None:
    sched, _ = make(slots=3, cap=10, reserved_critical_slot=False)
    for i in range(3):
        sched.submit(job(f"long{i}", L, estimate=60.0))
    assert len(drain(sched)) == 3


def test_urgent_high_job_jumps_the_fair_order() -> None:
    sched, clock = make(slots=1, cap=10, low_floor=0.0, medium_floor=0.0)
    # A HIGH job submitted long ago is now inside its urgent window.
    sched.submit(job("old", H, "a", at=clock.now - 250.0))
    sched.submit(job("new", H, "b"))
    for i in range(5):
        sched.submit(job(f"low{i}", L, "c"))
    first = sched.dispatch()
    assert first is not None and (first.job_id, first.phase) == ("old", Phase.URGENT)


def test_a_job_that_cannot_finish_in_time_is_flagged_at_submission() -> None:
    sched, clock = make(slots=1, cap=10)
    admission = sched.submit(job("doomed", H, deadline=clock.now + 10.0, estimate=20.0))
    assert admission.at_risk and "after its deadline" in admission.reason
    assert sched.stats()[H].at_risk == 1


def test_a_hopeless_job_is_flagged_and_left_to_the_fair_phase() -> None:
    sched, clock = make(slots=1, cap=10, low_floor=0.0, medium_floor=0.0)
    # The blocker was expected to take 1 s and takes 15.
    sched.submit(job("blocker", L, "z", estimate=1.0))
    sched.dispatch()
    doomed = sched.submit(job("doomed", H, "a", deadline=clock.now + 30.0, estimate=20.0))
    assert not doomed.at_risk  # fine on paper at submission
    sched.submit(job("fine", H, "b", at=clock.now - 240.0, estimate=2.0))
    clock.now += 15.0  # now 30 - 15 - 20 < 0: doomed cannot make it any more
    sched.finish("blocker", 15.0)
    first = sched.dispatch()
    assert first is not None and first.job_id == "fine" and first.phase is Phase.URGENT
    raised = [r for r in sched.take_risk_changes() if r.at_risk]
    assert [r.job_id for r in raised] == ["doomed"]
    assert raised[0].reason == "it can no longer start in time"
    assert sched.take_risk_changes() == []
    assert sched.stats()[H].at_risk == 1
    sched.finish("fine", 2.0)
    second = sched.dispatch()
    assert second is not None
    assert second.job_id == "doomed" and second.at_risk and second.phase is Phase.FAIR


def test_a_hopeless_critical_job_goes_after_those_that_can_still_make_it() -> None:
    sched, clock = make(slots=1, cap=10)
    sched.submit(job("doomed", C, "a", deadline=clock.now + 5.0, estimate=10.0))
    sched.submit(job("fine", C, "b", deadline=clock.now + 20.0, estimate=2.0))
    first = sched.dispatch()
    assert first is not None and (first.job_id, first.phase) == ("fine", Phase.CRITICAL)
    sched.finish("fine", 2.0)
    second = sched.dispatch()
    assert second is not None and (second.job_id, second.phase) == (
        "doomed",
        Phase.CRITICAL_LATE,
    )


# Deadlines far away and a short arrival-rate memory: the fair phase alone decides.
FAR = SlaSettings(critical_s=30.0, high_s=1e6, medium_s=1e6)


def fair_only() -> tuple[Scheduler, Clock]:
    return make(slots=1, cap=1000, medium_floor=0.0, low_floor=0.0, floor_window_s=1.0, sla=FAR)


def _fair_counts(sched: Scheduler, clock: Clock, n: int) -> Counter[PriorityLevel]:
    """Dispatch and finish n jobs one at a time, 1 s each; count levels."""
    seen: Counter[PriorityLevel] = Counter()
    for _ in range(n):
        d = sched.dispatch()
        assert d is not None
        assert d.phase is Phase.FAIR
        seen[d.level] += 1
        clock.now += 1.0
        sched.finish(d.job_id, 1.0)
    return seen


def test_fair_shares_follow_the_weights() -> None:
    sched, clock = fair_only()
    for level in (H, M, L):
        for i in range(200):
            sched.submit(job(f"{level}{i}", level, estimate=1.0))
    clock.now += 100.0  # the burst of submissions is history
    seen = _fair_counts(sched, clock, 140)
    assert seen == {H: 80, M: 40, L: 20}  # 4 : 2 : 1


def test_an_idle_level_cannot_bank_credit() -> None:
    sched, clock = fair_only()
    for level in (M, L):
        for i in range(400):
            sched.submit(job(f"{level}{i}", level, estimate=1.0))
    _fair_counts(sched, clock, 300)  # HIGH idle all along
    for i in range(300):
        sched.submit(job(f"h{i}", H, estimate=1.0, at=clock.now))
    clock.now += 100.0
    seen = _fair_counts(sched, clock, 70)
    # With banked credit HIGH would take all 70; re-joining at the current virtual
    # time it gets its weight share, 4 of 7.
    assert seen[H] == pytest.approx(40, abs=2)
    assert seen[M] == pytest.approx(20, abs=2)


def test_a_source_that_was_idle_cannot_bank_credit_inside_its_level() -> None:
    sched, clock = fair_only()
    for i in range(300):
        sched.submit(job(f"a{i}", L, "a", estimate=1.0))
    _fair_counts(sched, clock, 200)
    for i in range(300):
        sched.submit(job(f"b{i}", L, "b", estimate=1.0, at=clock.now))
    seen: Counter[str] = Counter()
    for _ in range(40):
        d = sched.dispatch()
        assert d is not None
        seen[d.source] += 1
        sched.finish(d.job_id, 1.0)
    assert seen["b"] == pytest.approx(20, abs=1)


def test_low_takes_a_worker_the_congested_deadline_levels_cannot_use() -> None:
    # A MEDIUM backlog far longer than its urgent window, all from one source capped
    # at one job: LOW goes after MEDIUM, but never leaves a worker idle.
    sched, _ = make(slots=4, cap=1, low_floor=0.0, medium_floor=0.0)
    for i in range(400):
        sched.submit(job(f"m{i}", M, "hot", estimate=10.0))
    sched.submit(job("low", L, "other"))
    started = {d.job_id for d in drain(sched)}
    assert started == {"m0", "low"}


def test_low_is_first_in_first_out_and_deadline_levels_earliest_first() -> None:
    sched, _ = make(slots=1, cap=100)
    sched.submit(job("l-new", L, at=1000.0))
    sched.submit(job("l-old", L, at=900.0))
    sched.submit(job("m-late", M, deadline=3000.0))
    sched.submit(job("m-soon", M, deadline=2500.0))
    order = []
    for _ in range(4):
        d = sched.dispatch()
        assert d is not None
        order.append(d.job_id)
        sched.finish(d.job_id, 1.0)
    assert order.index("l-old") < order.index("l-new")
    assert order.index("m-soon") < order.index("m-late")


def test_every_dispatch_records_its_phase() -> None:
    sched, _ = make(slots=2, cap=100)
    sched.submit(job("c", C))
    sched.submit(job("m", M))
    seen = drain(sched)
    assert {d.phase for d in seen} <= set(Phase)
    assert sum(sched.phase_counts.values()) == len(seen) == 2
    assert sched.phase_counts[Phase.CRITICAL] == 1


def test_admission_flags_a_critical_job_that_cannot_start_in_time() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(2):
        sched.submit(job(f"long{i}", L, estimate=120.0))
    drain(sched)
    for i in range(30):
        sched.submit(job(f"c{i}", C, f"s{i}", estimate=4.0))
    admission = sched.submit(job("c-last", C, "x", estimate=4.0))
    assert admission.at_risk
    assert admission.expected_finish > admission.deadline  # type: ignore[operator]
    assert "workers" in admission.reason


def test_admission_is_calm_on_an_idle_pool() -> None:
    sched, clock = make()
    admission = sched.submit(job("c", C, estimate=3.0))
    assert not admission.at_risk
    assert admission.expected_start == clock.now
    assert admission.expected_finish == clock.now + 3.0


def test_stats_per_level() -> None:
    sched, clock = make(slots=1)
    sched.submit(job("m1", M, at=clock.now - 30.0))
    sched.submit(job("m2", M, at=clock.now - 10.0))
    sched.submit(job("l1", L, at=clock.now - 5.0))
    d = sched.dispatch()
    assert d is not None
    stats = sched.stats()
    running = d.level
    assert stats[running].in_flight == 1
    assert sum(s.depth for s in stats.values()) == sched.queued_count == 2
    medium = stats[M]
    if running is M:
        assert medium.depth == 1
    assert medium.next_deadline is not None
    assert stats[C].depth == 0 and stats[C].oldest_wait_s is None
    assert stats[L].oldest_wait_s == pytest.approx(5.0) or running is L


def test_misuse_is_refused_with_a_clear_message() -> None:
    sched, _ = make()
    sched.submit(job("a", M))
    with pytest.raises(ValueError, match="already queued"):
        sched.submit(job("a", M))
    with pytest.raises(KeyError, match="not running"):
        sched.finish("a", 1.0)
    with pytest.raises(ValueError, match="estimate_s"):
        job("bad", M, estimate=-1.0)
    with pytest.raises(ValueError, match="slots"):
        make(slots=0)


# -- the admission forecast, figure by figure ----------------------------------------------
# Each case works the model out by hand (Scheduler._admission's docstring): the work ahead
# drains on the workers this job may use; its source's cap and rate bound it too.


def test_admission_waits_for_the_running_work_when_every_worker_is_busy() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(2):
        sched.submit(job(f"low{i}", L, f"l{i}", estimate=100.0))
    assert len(drain(sched)) == 2  # both workers busy for 100 s
    admission = sched.submit(job("urgent", C, "x", estimate=4.0))
    # 2 running jobs ahead, 200 s of work left on 2 workers: it starts in 100 s
    assert admission == (True, 1100.0, 1104.0, 1030.0, "expected 74 s after its deadline: "
                         "2 jobs ahead on 2 workers")  # fmt: skip
    assert sched.stats()[C].at_risk == 1


def test_admission_counts_only_what_is_left_of_a_running_job() -> None:
    sched, clock = make(slots=1, cap=100, reserved_critical_slot=False)
    sched.submit(job("low", L, "l", estimate=50.0))
    assert drain(sched)
    clock.now += 20.0  # 30 s of it left
    admission = sched.submit(job("h", H, "x", at=clock.now, estimate=5.0))
    assert (admission.at_risk, admission.expected_start, admission.expected_finish) == (
        False,
        1050.0,
        1055.0,
    )
    assert admission.deadline == clock.now + SlaSettings().high_s


def test_admission_of_a_long_job_leaves_the_reserved_worker_to_critical() -> None:
    sched, _ = make(slots=3, cap=100)  # a worker reserved for CRITICAL jobs
    for i in range(2):
        sched.submit(job(f"low{i}", L, f"l{i}", estimate=4.0))
    assert len(drain(sched)) == 2
    long_one = sched.submit(job("m", M, "x", estimate=10.0))  # longer than 5 s: long
    # it may use 2 of the 3 workers, both busy for 4 s more
    assert (long_one.expected_start, long_one.expected_finish) == (1004.0, 1014.0)
    # a short one may use all 3 workers: 8 s left of the running jobs and the 10 s long
    # one queued ahead of it, on 3 workers
    short = sched.submit(job("m2", M, "y", estimate=4.0))
    assert short.expected_start == 1006.0


def test_admission_of_high_work_leaves_the_backlogged_low_floor_its_share() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(2):
        sched.submit(job(f"h{i}", H, f"h{i}", estimate=10.0))
    assert len(drain(sched)) == 2
    sched.submit(job("waiting-low", L, "l", estimate=1.0))  # LOW is owed 5% of the workers
    admission = sched.submit(job("h-new", H, "x", estimate=10.0))
    assert admission.expected_start == pytest.approx(1000.0 + 20.0 / (2 * 0.95), rel=1e-12)
    critical = sched.submit(job("c-new", C, "y", estimate=10.0))  # CRITICAL owes no floor
    assert critical.expected_start == pytest.approx(1010.0, rel=1e-12)


def test_admission_behind_a_source_at_its_cap_names_the_source() -> None:
    sched, _ = make(slots=10, cap=2)
    for i in range(2):
        sched.submit(job(f"a{i}", H, "a", estimate=6.0))
    assert len(drain(sched)) == 2  # source a runs 2, its cap
    admission = sched.submit(job("third", H, "a", estimate=6.0, deadline=1008.0))
    assert admission == (True, 1006.0, 1012.0, 1008.0, "expected 4 s after its deadline: "
                         "0 jobs ahead at a (at most 2 at once)")  # fmt: skip
    # CRITICAL may go one past the cap: it does not wait for source a
    critical = sched.submit(job("c", C, "a", estimate=6.0))
    assert (critical.at_risk, critical.expected_start) == (False, 1000.0)


def test_admission_behind_a_rate_limit_says_the_rate() -> None:
    sched, _ = make(slots=4, cap=10, rate=0.5, burst=1)
    for i in range(2):
        sched.submit(job(f"r{i}", C, "r", estimate=4.0))
    admission = sched.submit(job("r-new", C, "r", estimate=4.0, deadline=1006.0))
    # one token now, one every 2 s: its fetch is the third, 4 s from now
    assert admission == (True, 1004.0, 1008.0, 1006.0, "expected 2 s after its deadline: "
                         "r is rate limited to 0.5 fetches/s")  # fmt: skip


def test_admission_of_a_retry_starts_after_its_backoff() -> None:
    sched, _ = make()
    admission = sched.submit(job("retry", H, estimate=2.0, not_before=1050.0))
    assert admission == (False, 1050.0, 1052.0, 1000.0 + SlaSettings().high_s, "")


def test_admission_of_low_work_has_no_deadline_and_no_risk() -> None:
    sched, _ = make(slots=1)
    sched.submit(job("h", H, "h", estimate=30.0))
    assert drain(sched)
    admission = sched.submit(job("low", L, "x", estimate=3.0))
    assert admission == (False, 1030.0, 1033.0, None, "")


def test_admission_of_a_job_longer_than_its_sla_says_so() -> None:
    sched, _ = make()
    admission = sched.submit(job("slow", C, estimate=40.0))
    assert admission.reason == (
        "expected 10 s after its deadline: its estimate alone runs past the deadline"
    )


def test_admission_of_a_retry_counts_only_the_part_of_its_queue_before_it() -> None:
    sched, _ = make(slots=1, cap=10, reserved_critical_slot=False)
    sched.submit(job("early", C, "a", at=990.0, estimate=4.0))  # deadline 1020
    sched.submit(job("late", C, "b", estimate=4.0))  # deadline 1030
    # deadline 1025: half-way between the queue's first (1020) and a new job's (1030)
    admission = sched.submit(job("retry", C, "c", estimate=4.0, deadline=1025.0))
    assert (admission.expected_start, admission.reason) == (1004.0, "")


def test_admission_counts_no_more_own_level_work_than_fits_before_its_latest_start() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(4):
        sched.submit(job(f"c{i}", C, f"s{i}", estimate=10.0))
    fits = sched.submit(job("fits", C, "x", estimate=10.0))  # 40 s of work, 40 s of room
    assert (fits.at_risk, fits.expected_start, fits.expected_finish) == (False, 1020.0, 1030.0)
    tighter = sched.submit(job("tighter", C, "y", estimate=11.0))  # room for 38 s of it
    assert (tighter.at_risk, tighter.expected_start) == (False, pytest.approx(1019.0))


def test_a_job_that_starts_too_late_to_finish_in_time_is_dispatched_at_risk() -> None:
    sched, clock = make(slots=1, cap=10)
    sched.submit(job("h", H, "a", estimate=10.0, deadline=1020.0))
    clock.now = 1010.0  # 10 s of estimate, 10 s left: just in time
    first = sched.dispatch()
    assert first is not None and not first.at_risk
    sched.finish("h", 1.0)
    sched.submit(job("h2", H, "a", at=1010.0, estimate=10.0, deadline=1025.0))
    clock.now = 1015.5  # 9.5 s left for 10 s of work
    late = sched.dispatch()
    assert late is not None and late.at_risk and late.waited_s == 5.5


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("misuse", "message"),
    [
        (lambda: job("j", M, estimate=-1.0), "estimate_s must be a finite number >= 0 (got -1.0)"),
        (lambda: job("j", M, estimate=NAN), "estimate_s must be a finite number >= 0 (got nan)"),
        (lambda: job("j", M, at=INF), "enqueued_at must be finite"),
        (lambda: job("j", M, deadline=NAN), "deadline must be finite or None"),
        (lambda: job("j", M, not_before=-INF), "not_before must be finite"),
        (lambda: make(slots=0), "slots must be at least 1 (got 0)"),
        (lambda: make(cap=0), "source_cap must be at least 1 (got 0)"),
        (lambda: make(rate=0.0), "rate_per_s must be > 0 and burst >= 1"),
        (lambda: make(burst=0), "rate_per_s must be > 0 and burst >= 1"),
        (lambda: make()[0].set_slots(0), "slots must be at least 1 (got 0)"),
        (lambda: make()[0].set_source_limits("a", cap=0), "cap must be at least 1 (got 0)"),
        (
            lambda: make()[0].set_source_limits("a", rate_per_s=-2.0),
            "rate_per_s must be > 0 (got -2.0)",
        ),
        (lambda: make()[0].set_source_limits("a", burst=0), "burst must be at least 1 (got 0)"),
    ],
)
def test_each_misuse_is_refused_with_its_own_words(misuse: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        misuse()
    assert str(refused.value) == message


def test_a_finish_with_an_impossible_run_time_is_refused_and_the_job_keeps_running() -> None:
    sched, _ = make()
    sched.submit(job("a", M))
    assert sched.dispatch() is not None
    for bad in (-1.0, NAN, INF):
        with pytest.raises(ValueError) as refused:
            sched.finish("a", bad)
        assert str(refused.value) == f"ran_s must be a finite number >= 0 (got {bad})"
    assert sched.in_flight_count == 1
    sched.finish("a", 1.0)
    assert sched.in_flight_count == 0
    with pytest.raises(KeyError) as refused_again:
        sched.finish("a", 1.0)
    assert refused_again.value.args == ("job 'a' is not running",)


@pytest.mark.parametrize(("late_by", "hopeless"), [(0.0, False), (0.001, True)])
def test_a_job_that_can_still_start_exactly_in_time_keeps_its_urgent_place(
    late_by: float, hopeless: bool
) -> None:
    sched, clock = make(slots=1, cap=10, low_floor=0.0, medium_floor=0.0)
    sched.submit(job("blocker", L, "z", estimate=1.0))
    assert sched.dispatch() is not None
    sched.submit(job("tight", H, "a", deadline=clock.now + 30.0, estimate=20.0))  # start by +10
    sched.submit(job("roomy", H, "b", at=clock.now - 240.0, estimate=2.0))  # deadline +60
    clock.now += 10.0 + late_by
    sched.finish("blocker", 10.0 + late_by)
    first = sched.dispatch()
    assert first is not None and first.phase is Phase.URGENT
    if hopeless:
        assert first.job_id == "roomy"
        (raised,) = [r for r in sched.take_risk_changes() if r.at_risk]
        assert raised == ("tight", True, clock.now + 20.0, 1030.0, "it can no longer start in time")
    else:  # earliest deadline first, and on time to the second
        assert (first.job_id, first.at_risk) == ("tight", False)
        assert [r for r in sched.take_risk_changes() if r.at_risk] == []


def test_a_dispatch_carries_its_job_s_figures() -> None:
    sched, clock = make(slots=2, cap=10)
    sched.submit(job("h", H, "a", at=990.0, estimate=3.5))
    sched.submit(job("l", L, "b", at=1000.0, estimate=1.5))
    clock.now = 1004.0
    found = {d.job_id: d for d in drain(sched)}
    h, low = found["h"], found["l"]
    assert (h.level, h.source, h.at_risk, h.deadline, h.estimate_s, h.waited_s) == (
        H, "a", False, 990.0 + SlaSettings().high_s, 3.5, 14.0
    )  # fmt: skip
    assert (low.level, low.source, low.deadline, low.estimate_s, low.waited_s) == (
        L, "b", None, 1.5, 4.0
    )  # fmt: skip
    assert sum(sched.phase_counts.values()) == 2
    assert sched.phase_counts[h.phase] + sched.phase_counts[low.phase] == 2 + (h.phase is low.phase)
    clock.now = 990.0  # a clock that went back: never a negative wait
    sched.submit(job("early", M, "c", at=995.0))
    sched.finish("h", 1.0)
    third = sched.dispatch()
    assert third is not None and third.waited_s == 0.0
    assert sum(sched.phase_counts.values()) == 3


def test_jobs_adopted_by_a_new_leader_hold_their_workers_and_their_source() -> None:
    sched, clock = make(slots=2, cap=1)
    sched.adopt(job("r1", M, "a", estimate=10.0), started_at=995.0)  # long: 10 s > 5 s
    assert sched.in_flight_count == 1
    stats = sched.stats()
    assert (stats[M].in_flight, stats[H].in_flight) == (1, 0)
    (source,) = sched.source_stats()
    assert (source.source, source.queued, source.in_flight) == ("a", 0, 1)
    sched.submit(job("waits", H, "a"))  # source a is at its cap
    sched.submit(job("long", L, "c", estimate=30.0))  # the long one running holds the
    # only worker a long job may take (the other is kept for CRITICAL)
    sched.submit(job("short", H, "b"))
    assert [d.job_id for d in drain(sched)] == ["short"]
    sched.finish("r1", 10.0)
    (next_one,) = drain(sched)
    assert next_one.job_id in ("waits", "long")
    with pytest.raises(ValueError):
        sched.adopt(job("short", H, "b"), started_at=clock.now)


def test_admission_follows_the_queue_as_jobs_leave_it() -> None:
    sched, clock = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(4):
        sched.submit(job(f"c{i}", C, f"s{i}", estimate=10.0))

    def start_of(name: str) -> float:
        admission = sched.submit(job(name, C, name, at=clock.now, estimate=10.0))
        assert sched.cancel(name)
        return admission.expected_start

    assert start_of("x1") == 1020.0  # 40 s of work queued, 2 workers
    assert sched.cancel("c0") and sched.cancel("c1")
    assert start_of("x2") == 1010.0  # 20 s queued
    assert {d.job_id for d in drain(sched)} == {"c2", "c3"}
    assert start_of("x3") == 1010.0  # 20 s running, nothing queued
    clock.now = 1004.0
    sched.finish("c2", 4.0)
    assert start_of("x4") == 1004.0  # a worker is free
    assert sched.stats()[C].depth == 0 and sched.queued_count == 0


def test_one_worker_is_never_kept_back_for_critical_work() -> None:
    sched, _ = make(slots=1)  # reserved_critical_slot is on, but there is one worker only
    sched.submit(job("long", L, estimate=60.0))
    assert [d.job_id for d in drain(sched)] == ["long"]
    two, _ = make(slots=2)  # with two, a long job leaves one for CRITICAL work
    for i in range(2):
        two.submit(job(f"long{i}", L, f"s{i}", estimate=60.0))
    assert len(drain(two)) == 1


def test_a_hopeless_critical_job_may_still_go_one_past_its_source_s_cap() -> None:
    sched, clock = make(slots=4, cap=1)
    sched.submit(job("running", H, "a", estimate=60.0))
    assert [d.job_id for d in drain(sched)] == ["running"]  # source a at its cap
    sched.submit(job("doomed", C, "a", deadline=clock.now + 5.0, estimate=10.0))
    late = sched.dispatch()  # hopeless: not in deadline order, but still CRITICAL
    assert late is not None and (late.job_id, late.phase) == ("doomed", Phase.CRITICAL_LATE)
    sched.submit(job("more", C, "a", estimate=1.0))
    assert sched.dispatch() is None  # cap + 1 reached


def test_the_medium_floor_brings_in_one_worker_first_under_a_high_backlog() -> None:
    sched, _ = make(
        slots=4, cap=100, medium_floor=0.25, low_floor=0.0, reserved_critical_slot=False
    )
    for i in range(20):
        sched.submit(job(f"h{i}", H, f"h{i}", estimate=2.0))
    for i in range(5):
        sched.submit(job(f"m{i}", M, f"m{i}", estimate=2.0))
    first = drain(sched)
    assert (first[0].level, first[0].phase) == (M, Phase.FLOOR)  # owed, and idle so far
    assert [d.phase for d in first[1:]] == [Phase.FAIR] * 3  # at most one through the floor


def test_a_queue_emptied_by_many_cancels_keeps_its_order() -> None:
    """Cancelled jobs leave dead entries behind (removed lazily); past a slack the queue
    is compacted. The jobs left run each once, LOW still first in, first out."""
    sched, clock = make(slots=1, cap=10)
    n = 600  # 540 cancelled of 600: past 2 x 60 live + the 256 slack, so compacted
    for i in range(n):
        sched.submit(job(f"h{i:03}", H, "a", at=clock.now + i * 0.01))
        sched.submit(job(f"l{i:03}", L, "b", at=clock.now + i * 0.01))
    for i in range(n):
        if i % 10:
            assert sched.cancel(f"h{i:03}") and sched.cancel(f"l{i:03}")
    assert sched.queued_count == 120
    seen = []
    while (d := sched.dispatch()) is not None:
        seen.append(d.job_id)
        sched.finish(d.job_id, 1.0)
    assert sorted(seen) == sorted(f"{p}{i:03}" for p in "hl" for i in range(0, n, 10))
    assert [j for j in seen if j[0] == "l"] == [f"l{i:03}" for i in range(0, n, 10)]


def test_admission_of_high_work_counts_the_critical_queue_ahead_in_full() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(4):
        sched.submit(job(f"c{i}", C, f"c{i}", estimate=10.0))
    admission = sched.submit(job("h", H, "x", estimate=10.0, deadline=1025.0))
    # 4 CRITICAL jobs (40 s) go first on 2 workers: it starts at 1020, ends at 1030
    assert admission == (True, 1020.0, 1030.0, 1025.0, "expected 5 s after its deadline: "
                         "4 jobs ahead on 2 workers")  # fmt: skip


def test_every_adopted_job_is_counted() -> None:
    sched, _ = make(slots=4, cap=10)
    for name in ("r1", "r2"):  # two long MEDIUM jobs of source a, already running
        sched.adopt(job(name, M, "a", estimate=10.0), started_at=995.0)
    assert sched.in_flight_count == 2 and sched.stats()[M].in_flight == 2
    assert [(s.source, s.in_flight) for s in sched.source_stats()] == [("a", 2)]
    for i in range(2):
        sched.submit(job(f"long{i}", L, f"c{i}", estimate=30.0))
    # long jobs may hold 3 of the 4 workers: one more, not two
    assert [d.job_id for d in drain(sched)] == ["long0"]


def test_a_source_is_charged_for_the_time_its_jobs_really_ran() -> None:
    """Within a level, sources share by the time their jobs run: a source whose jobs are
    estimated at 10 s but take 1 s gets the worker as often as one whose 1 s jobs take 1 s."""
    sched, clock = fair_only()
    for i in range(40):
        sched.submit(job(f"a{i:02}", H, "a", at=clock.now - 1.0, estimate=10.0))
        sched.submit(job(f"b{i:02}", H, "b", at=clock.now - 1.0, estimate=1.0))
    seen: Counter[str] = Counter()
    for _ in range(20):
        d = sched.dispatch()
        assert d is not None
        seen[d.source] += 1
        clock.now += 1.0
        sched.finish(d.job_id, 1.0)
    assert abs(seen["a"] - seen["b"]) <= 2, seen
