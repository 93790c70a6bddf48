"""What a cluster leader needs from the scheduler: slots that follow the nodes, and jobs
that were already running when it took over."""

from __future__ import annotations

import pytest

from gexdaemon.core.models import PriorityLevel
from tests.core.test_scheduler import drain, job, make

C, H, M, L = PriorityLevel.CRITICAL, PriorityLevel.HIGH, PriorityLevel.MEDIUM, PriorityLevel.LOW


def test_more_slots_dispatch_more_jobs_at_once() -> None:
    sched, _ = make(slots=2, cap=100, reserved_critical_slot=False)
    for i in range(10):
        sched.submit(job(f"j{i}", H))
    assert len(drain(sched)) == 2
    sched.set_slots(6)
    assert sched.slots == 6
    assert sched.free_slots == 4
    assert len(drain(sched)) == 4


def test_fewer_slots_than_running_jobs_dispatch_nothing_until_enough_finish() -> None:
    sched, _ = make(slots=4, cap=100, reserved_critical_slot=False)
    for i in range(8):
        sched.submit(job(f"j{i}", H))
    running = drain(sched)
    assert len(running) == 4
    sched.set_slots(2)  # two nodes left the cluster
    assert sched.free_slots == -2
    assert sched.dispatch() is None
    sched.finish(running[0].job_id, 1.0)
    sched.finish(running[1].job_id, 1.0)
    assert sched.dispatch() is None  # 2 running on 2 slots
    sched.finish(running[2].job_id, 1.0)
    assert [d.job_id for d in drain(sched)] == ["j4"]


def test_set_slots_refuses_zero() -> None:
    sched, _ = make(slots=2)
    with pytest.raises(ValueError, match="at least 1"):
        sched.set_slots(0)


def test_an_adopted_job_holds_its_worker_until_it_finishes() -> None:
    sched, clock = make(slots=2, cap=100, reserved_critical_slot=False)
    sched.adopt(job("old", H, at=990.0), started_at=995.0)
    assert sched.in_flight_count == 1
    assert sched.queued_count == 0
    sched.submit(job("a", H))
    sched.submit(job("b", H))
    assert [d.job_id for d in drain(sched)] == ["a"]
    clock.now += 3
    sched.finish("old", 8.0)
    assert [d.job_id for d in drain(sched)] == ["b"]
    with pytest.raises(KeyError):
        sched.finish("old", 1.0)


def test_an_adopted_job_counts_against_its_source_cap() -> None:
    sched, _ = make(slots=4, cap=1, reserved_critical_slot=False)
    sched.adopt(job("old", H, "busy"), started_at=999.0)
    sched.submit(job("same", H, "busy"))
    sched.submit(job("other", H, "idle"))
    assert [d.job_id for d in drain(sched)] == ["other"]
    sched.finish("old", 1.0)
    assert [d.job_id for d in drain(sched)] == ["same"]


def test_adopting_a_known_job_is_refused() -> None:
    sched, _ = make(slots=2)
    sched.submit(job("a", H))
    with pytest.raises(ValueError, match="already"):
        sched.adopt(job("a", H), started_at=1000.0)
    sched.adopt(job("b", L), started_at=1000.0)
    with pytest.raises(ValueError, match="already"):
        sched.submit(job("b", L))
