"""Small simulations of the real Scheduler: the properties the desk is promised."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable
from dataclasses import replace

import pytest

from gexdaemon.core.models import PriorityLevel
from gexdaemon.core.scheduler import Phase, SchedJob
from gexdaemon.core.settings import SchedulerSettings
from gexdaemon.sim.scheduling import (
    Policy,
    Workload,
    build_policy,
    figures,
    make_trace,
    run_policy,
    simulate,
)

# Twenty simulated minutes of a LOW flood at 1.5x capacity with a little deadline work;
# short-tailed service times so no job is inherently too long for the CRITICAL SLA.
LOW_FLOOD = Workload(
    load=1.5,
    duration_s=1500.0,
    warmup_s=60.0,
    measure_until_s=1200.0,
    mix=(0.05, 0.05, 0.10, 0.80),
    service_sigma=0.5,
    failure_rate=0.0,
)


def test_critical_deadlines_hold_under_a_low_flood_and_low_still_progresses() -> None:
    result = figures(simulate(make_trace(LOW_FLOOD, 7), LOW_FLOOD, "gexd"), LOW_FLOOD)
    crit, high, medium, low = result.levels
    assert crit.jobs > 30
    assert crit.sla_met == 1.0
    assert high.sla_met == 1.0
    assert medium.sla_met == 1.0
    assert low.jobs > 0 and low.unstarted < low.jobs
    assert result.low_backlog_share is not None
    assert result.low_backlog_share >= SchedulerSettings().low_floor


def test_fifo_misses_critical_deadlines_on_the_same_trace() -> None:
    # The contrast that shows the test above can fail.
    result = figures(simulate(make_trace(LOW_FLOOD, 7), LOW_FLOOD, "fifo"), LOW_FLOOD)
    crit_met = result.levels[0].sla_met
    assert crit_met is not None and crit_met < 0.5


# HIGH and MEDIUM flood at 1.6x (the same twenty minutes): strict priority leaves LOW nothing.
DEADLINE_FLOOD = replace(LOW_FLOOD, load=1.6, mix=(0.05, 0.45, 0.45, 0.05))


def test_nothing_starves_low_keeps_its_floor_where_strict_priority_starves_it() -> None:
    floor = SchedulerSettings().low_floor
    ours = figures(simulate(make_trace(DEADLINE_FLOOD, 3), DEADLINE_FLOOD, "gexd"), DEADLINE_FLOOD)
    strict = figures(
        simulate(make_trace(DEADLINE_FLOOD, 3), DEADLINE_FLOOD, "strict"), DEADLINE_FLOOD
    )
    assert strict.low_backlog_share is not None and strict.low_backlog_share < floor / 5
    assert ours.low_backlog_share is not None and ours.low_backlog_share >= floor
    assert ours.levels[3].unstarted < ours.levels[3].jobs  # LOW jobs did start
    assert ours.levels[0].sla_met == 1.0


def test_phases_are_recorded_for_every_dispatch() -> None:
    run = simulate(make_trace(DEADLINE_FLOOD, 3), DEADLINE_FLOOD, "gexd")
    assert sum(run.phases.values()) == run.decisions > 0
    assert set(run.phases) <= {phase.value for phase in Phase}
    assert {Phase.CRITICAL.value, Phase.FLOOR.value, Phase.URGENT.value} <= set(run.phases)


def test_deterministic_for_a_seed() -> None:
    small = replace(LOW_FLOOD, duration_s=600.0, measure_until_s=500.0)
    starts = [
        [o.first_start for o in simulate(make_trace(small, 11), small, "gexd").outcomes]
        for _ in range(2)
    ]
    assert starts[0] == starts[1]
    other = [o.first_start for o in simulate(make_trace(small, 12), small, "gexd").outcomes]
    assert other != starts[0]


def test_pooled_seeds_give_the_same_figures_twice() -> None:
    small = replace(LOW_FLOOD, duration_s=400.0, measure_until_s=300.0)
    assert run_policy(small, "gexd", [1, 2]) == run_policy(small, "gexd", [1, 2])


class CheckingPolicy:
    """Wraps a policy and checks caps, rate limits and the worker count at every step."""

    def __init__(
        self, inner: Policy, slots: int, clock: list[float], cap: int, rate: float, burst: int
    ) -> None:
        self.inner = inner
        self.slots = slots
        self.clock = clock
        self.cap, self.rate, self.burst = cap, rate, burst
        self.in_flight: dict[str, list[PriorityLevel]] = defaultdict(list)
        self.where: dict[Hashable, tuple[str, PriorityLevel]] = {}
        self.started: dict[str, deque[float]] = defaultdict(deque)
        self.overshoots = 0
        self.levels: dict[Hashable, PriorityLevel] = {}
        self.sources: dict[Hashable, str] = {}

    def submit(self, job: SchedJob) -> bool:
        self.levels[job.job_id] = job.level
        self.sources[job.job_id] = job.source
        return self.inner.submit(job)

    def next_wakeup(self) -> float | None:
        return self.inner.next_wakeup()

    def forecast(self) -> list[tuple[Hashable, bool]]:
        return self.inner.forecast()

    def risk_changes(self) -> list[tuple[Hashable, bool]]:
        return self.inner.risk_changes()

    def dispatch(self) -> tuple[Hashable, str, bool] | None:
        chosen = self.inner.dispatch()
        if chosen is None:
            return None
        job_id = chosen[0]
        source, level = self.sources[job_id], self.levels[job_id]
        running = self.in_flight[source]
        running.append(level)
        self.where[job_id] = (source, level)
        assert sum(len(v) for v in self.in_flight.values()) <= self.slots
        if len(running) > self.cap:
            # Above the cap only CRITICAL, and only by one.
            assert level is PriorityLevel.CRITICAL
            assert len(running) == self.cap + 1
            self.overshoots += 1
        # Token bucket: never more than burst + rate * t starts in any window t.
        now = self.clock[0]
        history = self.started[source]
        history.append(now)
        while history and now - history[0] > 30.0:
            history.popleft()
        assert len(history) <= self.burst + self.rate * (now - history[0]) + 1e-9
        return chosen

    def finish(self, job_id: Hashable, ran_s: float) -> None:
        source, level = self.where.pop(job_id)
        self.in_flight[source].remove(level)
        self.inner.finish(job_id, ran_s)


CAPPED = Workload(
    load=1.4,
    duration_s=900.0,
    warmup_s=60.0,
    measure_until_s=700.0,
    sources=3,
    hot_share=0.6,
    mix=(0.15, 0.2, 0.3, 0.35),
    source_cap=2,
    rate_per_s=1.0,
    burst=3,
)


def checked_run(name: str) -> CheckingPolicy:
    clock = [0.0]
    inner = build_policy(name, CAPPED, lambda: clock[0])
    policy = CheckingPolicy(
        inner, CAPPED.slots, clock, CAPPED.source_cap, CAPPED.rate_per_s, CAPPED.burst
    )
    run = simulate(make_trace(CAPPED, 5), CAPPED, name, policy=policy, clock_cell=clock)
    assert run.decisions > 500
    return policy


def test_caps_rate_limits_and_the_critical_overshoot_hold_throughout() -> None:
    policy = checked_run("gexd")
    # The hot source is capped all run long, so CRITICAL used its overshoot.
    assert policy.overshoots > 0


@pytest.mark.parametrize("name", ["fifo", "strict", "wfq"])
def test_baselines_respect_the_same_caps_without_overshoot(name: str) -> None:
    assert checked_run(name).overshoots == 0
