"""Discrete-event simulation that runs the real Scheduler beside FIFO, strict priority and WFQ.

Every policy sees the identical trace: the same arrivals, service times,
failures and backoff draws, on the same worker pool with the same per-source
caps and rate limits. The `gexd` policy is `gexdaemon.core.scheduler.Scheduler`
itself, driven through its public API with a simulated clock, so what the
simulation proves is what the daemon runs. Pure and deterministic for a seed:
`bench/sim.py` sweeps scenarios with it and the tests run small cases.

The baselines are what the well-known job queues do, restricted to the same
source caps (no CRITICAL overshoot) and the same retry policy:
- `fifo`: arrival order across everything (arq, plain lists);
- `strict`: highest level first, arrival order inside a level (Celery, RQ);
- `wfq`: start-time fair queuing across levels with the same 8:4:2:1 weights,
  arrival order inside a level.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from typing import Protocol, cast

from gexdaemon.core.models import PriorityLevel
from gexdaemon.core.retry import FailureCode, decide_retry
from gexdaemon.core.scheduler import LEVELS, SchedJob, Scheduler, SourceAccess
from gexdaemon.core.settings import RetrySettings, SchedulerSettings, SlaSettings

POLICIES: tuple[str, ...] = ("fifo", "strict", "wfq", "gexd")
DEFAULT_MIX: tuple[float, float, float, float] = (0.05, 0.15, 0.45, 0.35)
"""Share of jobs per level (CRITICAL, HIGH, MEDIUM, LOW): backfills are the bulk."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A scenario: how jobs arrive and how long they run.

    `load` is offered work / capacity: arrivals are Poisson at
    load * slots / mean service time. Service times are lognormal (median,
    sigma); a `long_share` of MEDIUM and LOW jobs comes from a second, longer
    lognormal (big historical files). Estimates are what the daemon's moving
    averages know: the mean of the job's class, times `estimate_bias`, times
    lognormal noise of `estimate_sigma`.
    """

    load: float
    duration_s: float = 4 * 3600.0
    warmup_s: float = 600.0
    measure_until_s: float | None = None  # last measured arrival; None: duration - MEDIUM SLA
    slots: int = 8
    sources: int = 10
    hot_share: float | None = None  # share of jobs from one hot source; None: all equal
    mix: tuple[float, float, float, float] = DEFAULT_MIX
    service_median_s: float = 2.0
    service_sigma: float = 0.8
    long_share: float = 0.0
    long_median_s: float = 40.0
    long_sigma: float = 0.4
    failure_rate: float = 0.05
    estimate_bias: float = 1.0
    estimate_sigma: float = 0.0
    burst_jobs: int = 0  # extra CRITICAL jobs arriving together ...
    burst_at_s: float = 0.0  # ... from this time ...
    burst_over_s: float = 5.0  # ... spread over this many seconds
    source_cap: int = 2
    rate_per_s: float = 20.0
    burst: int = 40
    outage_at_s: float | None = None  # the first source goes down (its breaker opens) ...
    outage_for_s: float = 0.0  # ... for this long; its reopening time is known (the cool-down)

    def mean_service_s(self) -> float:
        short = self.service_median_s * math.exp(self.service_sigma**2 / 2)
        long = self.long_median_s * math.exp(self.long_sigma**2 / 2)
        total = 0.0
        for rank, share in enumerate(self.mix):
            long_share = self.long_share if rank >= PriorityLevel.MEDIUM.rank else 0.0
            total += share * (long_share * long + (1 - long_share) * short)
        return total


@dataclass(frozen=True, slots=True)
class Attempt:
    """Pre-drawn fate of one attempt, so every policy meets the same failures."""

    fails: bool
    fail_fraction: float  # how far into its run a failing attempt dies
    jitter: float  # the backoff's uniform draw before the next attempt


@dataclass(frozen=True, slots=True)
class TraceJob:
    job_id: int
    arrival: float
    rank: int
    source: str
    service_s: float
    estimate_s: float
    attempts: tuple[Attempt, ...]


def make_trace(workload: Workload, seed: int, retry: RetrySettings | None = None) -> list[TraceJob]:
    """The arrivals of one run, deterministic for (workload, seed)."""
    rng = random.Random(seed)  # noqa: S311 - simulation draws, reproducible by seed, not secrets
    max_attempts = 1 + (retry or RetrySettings()).max_retries
    rate = workload.load * workload.slots / workload.mean_service_s()
    names = [f"src{i}" for i in range(workload.sources)]
    short_mean = workload.service_median_s * math.exp(workload.service_sigma**2 / 2)
    long_mean = workload.long_median_s * math.exp(workload.long_sigma**2 / 2)
    cumulative = [sum(workload.mix[: i + 1]) for i in range(4)]
    arrivals: list[tuple[float, int]] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= workload.duration_s:
            break
        u = rng.random() * cumulative[-1]
        arrivals.append((t, next(i for i, c in enumerate(cumulative) if u <= c)))
    for _ in range(workload.burst_jobs):
        at = workload.burst_at_s + rng.random() * workload.burst_over_s
        arrivals.append((at, PriorityLevel.CRITICAL.rank))
    arrivals.sort()

    jobs: list[TraceJob] = []
    for job_id, (at, rank) in enumerate(arrivals):
        if workload.hot_share is not None and rng.random() < workload.hot_share:
            source = names[0]
        else:
            first = 1 if workload.hot_share is not None else 0
            source = names[rng.randrange(first, len(names))]
        long = rank >= PriorityLevel.MEDIUM.rank and rng.random() < workload.long_share
        if long:
            service = rng.lognormvariate(math.log(workload.long_median_s), workload.long_sigma)
            mean = long_mean
        else:
            service = rng.lognormvariate(
                math.log(workload.service_median_s), workload.service_sigma
            )
            mean = short_mean
        noise = rng.lognormvariate(0.0, workload.estimate_sigma) if workload.estimate_sigma else 1.0
        attempts = tuple(
            Attempt(rng.random() < workload.failure_rate, rng.random(), rng.random())
            for _ in range(max_attempts)
        )
        jobs.append(
            TraceJob(
                job_id, at, rank, source, service, mean * workload.estimate_bias * noise, attempts
            )
        )
    return jobs


# ---------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------


class Policy(Protocol):
    def submit(self, job: SchedJob) -> bool:
        """Queue a job; True when it is flagged at risk on admission."""
        ...

    def dispatch(self) -> tuple[Hashable, str, bool] | None:
        """(job id, phase, at risk) of the job given a worker, or None."""
        ...

    def finish(self, job_id: Hashable, ran_s: float) -> None: ...

    def next_wakeup(self) -> float | None: ...

    def forecast(self) -> list[tuple[Hashable, bool]]:
        """Forecast the queue; the at-risk flags raised (True) or cleared (False) since the
        last call, admission flags excepted (submit returns those)."""
        ...

    def risk_changes(self) -> list[tuple[Hashable, bool]]:
        """Flags raised or cleared since the last call without a forecast (jobs turned
        hopeless while dispatching)."""
        ...

    def block(self, source: str, until: float | None) -> None:
        """The source is down (its breaker opened) until `until`: none of its jobs start."""
        ...

    def unblock(self, source: str) -> None: ...


class GexdPolicy:
    """The daemon's Scheduler behind the simulation's Policy interface."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def submit(self, job: SchedJob) -> bool:
        return self.scheduler.submit(job).at_risk

    def dispatch(self) -> tuple[Hashable, str, bool] | None:
        d = self.scheduler.dispatch()
        return None if d is None else (d.job_id, d.phase.value, d.at_risk)

    def finish(self, job_id: Hashable, ran_s: float) -> None:
        self.scheduler.finish(job_id, ran_s)

    def next_wakeup(self) -> float | None:
        return self.scheduler.next_wakeup()

    def forecast(self) -> list[tuple[Hashable, bool]]:
        self.scheduler.forecast()
        return self.risk_changes()

    def risk_changes(self) -> list[tuple[Hashable, bool]]:
        return [(r.job_id, r.at_risk) for r in self.scheduler.take_risk_changes()]

    def block(self, source: str, until: float | None) -> None:
        self.scheduler.set_source_access(source, SourceAccess.BLOCKED, until=until)

    def unblock(self, source: str) -> None:
        self.scheduler.set_source_access(source, SourceAccess.ALLOWED)


class _Gate:
    """A source's concurrency cap and token bucket, as the baselines respect them."""

    __slots__ = ("blocked", "burst", "cap", "in_flight", "rate", "refilled_at", "tokens")

    def __init__(self, cap: int, rate: float, burst: int) -> None:
        self.blocked = False
        self.cap = cap
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.refilled_at = 0.0
        self.in_flight = 0

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now

    def open(self, now: float) -> bool:
        if self.in_flight >= self.cap or self.blocked:
            return False
        self.refill(now)
        return self.tokens >= 1.0


class BaselinePolicy:
    """FIFO, strict priority or plain WFQ over per-(level, source) arrival-order queues."""

    def __init__(
        self,
        kind: str,
        slots: int,
        *,
        source_cap: int,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float],
        weights: Sequence[float] = (8.0, 4.0, 2.0, 1.0),
    ) -> None:
        if kind not in ("fifo", "strict", "wfq"):
            raise ValueError(f"unknown baseline {kind!r}")
        self.kind = kind
        self.slots = slots
        self.clock = clock
        self._cap, self._rate, self._burst = source_cap, rate_per_s, burst
        self._queues: list[dict[str, list[tuple[float, int, SchedJob]]]] = [{}, {}, {}, {}]
        self._queued = [0, 0, 0, 0]
        self._gates: dict[str, _Gate] = {}
        self._delayed: list[tuple[float, int, SchedJob]] = []
        self._running: dict[Hashable, tuple[SchedJob, float]] = {}
        self._weights = list(weights)
        self._vtime = [0.0, 0.0, 0.0, 0.0]
        self._vsys = 0.0
        self._seq = 0

    def _gate(self, source: str) -> _Gate:
        gate = self._gates.get(source)
        if gate is None:
            gate = self._gates[source] = _Gate(self._cap, self._rate, self._burst)
        return gate

    def submit(self, job: SchedJob) -> bool:
        self._seq += 1
        if job.not_before > self.clock():
            heappush(self._delayed, (job.not_before, self._seq, job))
        else:
            self._enqueue(job)
        return False

    def _enqueue(self, job: SchedJob) -> None:
        rank = job.level.rank
        if self._queued[rank] == 0:
            self._vtime[rank] = max(self._vtime[rank], self._vsys)
        self._queued[rank] += 1
        self._seq += 1
        heappush(self._queues[rank].setdefault(job.source, []), (job.enqueued_at, self._seq, job))

    def _oldest(self, rank: int, now: float) -> tuple[float, int, str] | None:
        best: tuple[float, int, str] | None = None
        for source, heap in self._queues[rank].items():
            if heap and (best is None or heap[0][:2] < best[:2]) and self._gate(source).open(now):
                best = (heap[0][0], heap[0][1], source)
        return best

    def dispatch(self) -> tuple[Hashable, str, bool] | None:
        if len(self._running) >= self.slots:
            return None
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            self._enqueue(heappop(self._delayed)[2])
        choice: tuple[int, str] | None = None
        if self.kind == "fifo":
            best: tuple[float, int, str, int] | None = None
            for rank in range(4):
                found = self._oldest(rank, now) if self._queued[rank] else None
                if found is not None and (best is None or found[:2] < best[:2]):
                    best = (*found, rank)
            choice = None if best is None else (best[3], best[2])
        elif self.kind == "strict":
            for rank in range(4):
                found = self._oldest(rank, now) if self._queued[rank] else None
                if found is not None:
                    choice = (rank, found[2])
                    break
        else:
            ranks = sorted((r for r in range(4) if self._queued[r]), key=lambda r: self._vtime[r])
            for i, rank in enumerate(ranks):
                found = self._oldest(rank, now)
                if found is not None:
                    for idle in ranks[:i]:
                        self._vtime[idle] = max(self._vtime[idle], self._vtime[rank])
                    self._vsys = max(self._vsys, self._vtime[rank])
                    choice = (rank, found[2])
                    break
        if choice is None:
            return None
        rank, source = choice
        job = heappop(self._queues[rank][source])[2]
        self._queued[rank] -= 1
        gate = self._gate(source)
        gate.in_flight += 1
        gate.refill(now)
        gate.tokens -= 1.0
        charge = max(job.estimate_s, 1e-3)
        self._vtime[rank] += charge / self._weights[rank]
        self._running[job.job_id] = (job, charge)
        return job.job_id, self.kind, False

    def finish(self, job_id: Hashable, ran_s: float) -> None:
        job, charge = self._running.pop(job_id)
        self._gate(job.source).in_flight -= 1
        rank = job.level.rank
        self._vtime[rank] += (max(ran_s, 1e-3) - charge) / self._weights[rank]

    def forecast(self) -> list[tuple[Hashable, bool]]:
        return []

    def risk_changes(self) -> list[tuple[Hashable, bool]]:
        return []

    def block(self, source: str, until: float | None) -> None:
        self._gate(source).blocked = True

    def unblock(self, source: str) -> None:
        self._gate(source).blocked = False

    def next_wakeup(self) -> float | None:
        wake = self._delayed[0][0] if self._delayed else math.inf
        for gate in self._gates.values():
            if gate.tokens < 1.0:
                wake = min(wake, gate.refilled_at + (1.0 - gate.tokens) / gate.rate)
        return None if wake == math.inf else wake


# ---------------------------------------------------------------------------
# The event loop
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class JobOutcome:
    rank: int
    source: str
    arrival: float
    deadline: float | None
    service_s: float
    first_start: float | None = None
    completed_at: float | None = None
    gave_up: bool = False
    flagged: bool = False  # the at-risk flag standing when the job started (or at its deadline)
    flagged_since: float | None = None  # when the flag now standing was raised
    lead_s: float | None = None  # deadline - flagged_since, for a job flagged then
    settled: bool = False
    attempts: int = 0

    def raise_flag(self, now: float) -> None:
        if self.flagged_since is None:
            self.flagged_since = now

    def settle_flag(self, now: float) -> None:
        """The flag as the desk saw it: settled when the job completes, or at its deadline
        if it has not completed by then."""
        if self.settled:
            return
        self.settled = True
        if self.flagged_since is not None and self.deadline is not None:
            self.flagged = True
            self.lead_s = self.deadline - self.flagged_since

    def met(self) -> bool:
        return (
            self.deadline is not None
            and self.completed_at is not None
            and self.completed_at <= self.deadline
        )


@dataclass(slots=True)
class RunResult:
    """Raw figures of one (or several pooled) runs of one policy."""

    policy: str
    slots: int
    outcomes: list[JobOutcome] = field(default_factory=list)
    stop_s: float = 0.0
    busy_s: list[float] = field(default_factory=lambda: [0.0] * 4)
    low_backlog_s: float = 0.0  # time LOW had queued work (inside the window)
    low_backlog_busy_s: float = 0.0  # LOW worker-seconds during that time
    phases: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    stops: list[float] = field(default_factory=list)

    def merge(self, other: RunResult) -> None:
        self.outcomes.extend(other.outcomes)
        self.busy_s = [a + b for a, b in zip(self.busy_s, other.busy_s, strict=True)]
        self.low_backlog_s += other.low_backlog_s
        self.low_backlog_busy_s += other.low_backlog_busy_s
        for phase, n in other.phases.items():
            self.phases[phase] = self.phases.get(phase, 0) + n
        self.decisions += other.decisions
        self.stops.append(other.stop_s)


_ARRIVE, _END, _WAKE, _FORECAST, _DEADLINE, _OUTAGE = 0, 1, 2, 3, 4, 5
EARLY_S = 10.0
"""A miss flagged this long before its deadline counts as flagged early (the desk's target)."""
FORECAST_EVERY_S = 1.0
"""How often the simulated daemon forecasts its queue (the daemon's own interval)."""


def build_policy(
    name: str,
    workload: Workload,
    clock: Callable[[], float],
    settings: SchedulerSettings | None = None,
    sla: SlaSettings | None = None,
) -> Policy:
    if name == "gexd":
        return GexdPolicy(
            Scheduler(
                settings or SchedulerSettings(),
                sla or SlaSettings(),
                workload.slots,
                source_cap=workload.source_cap,
                rate_per_s=workload.rate_per_s,
                burst=workload.burst,
                clock=clock,
            )
        )
    weights = settings.weights if settings is not None else SchedulerSettings().weights
    return BaselinePolicy(
        name,
        workload.slots,
        source_cap=workload.source_cap,
        rate_per_s=workload.rate_per_s,
        burst=workload.burst,
        clock=clock,
        weights=[weights.for_level(level) for level in LEVELS],
    )


def simulate(
    trace: Sequence[TraceJob],
    workload: Workload,
    policy_name: str,
    *,
    settings: SchedulerSettings | None = None,
    sla: SlaSettings | None = None,
    retry: RetrySettings | None = None,
    policy: Policy | None = None,
    clock_cell: list[float] | None = None,
    forecast_every_s: float | None = FORECAST_EVERY_S,
) -> RunResult:
    """Run one policy over a trace until every measured deadline has passed.

    Measured jobs arrive in [warmup_s, duration_s - MEDIUM SLA] (or
    `measure_until_s`) so each saw a full SLA of competing arrivals; shares are
    measured over [warmup_s, duration_s].
    """
    sla = sla or SlaSettings()
    retry = retry or RetrySettings()
    cell = clock_cell if clock_cell is not None else [0.0]
    if policy is None:
        policy = build_policy(policy_name, workload, lambda: cell[0], settings, sla)
    slas = [sla.seconds_for(level) for level in LEVELS]
    window_from = workload.warmup_s
    window_to = workload.duration_s
    last_measured = (
        workload.measure_until_s
        if workload.measure_until_s is not None
        else workload.duration_s - sla.medium_s
    )
    # Run until every measured job's deadline has passed.
    stop = max(workload.duration_s, last_measured + sla.medium_s) + 60.0

    outcomes = [
        JobOutcome(
            j.rank,
            j.source,
            j.arrival,
            None if slas[j.rank] is None else j.arrival + (slas[j.rank] or 0.0),
            j.service_s,
        )
        for j in trace
    ]
    result = RunResult(policy_name, workload.slots, stop_s=stop)
    events: list[tuple[float, int, int, int]] = [
        (j.arrival, i, _ARRIVE, i) for i, j in enumerate(trace)
    ]
    # Each deadline settles its job's flag if the job has not started by then.
    events += [
        (o.deadline, len(trace) + i, _DEADLINE, i)
        for i, o in enumerate(outcomes)
        if o.deadline is not None
    ]
    events.sort()
    seq = len(events)
    if forecast_every_s is not None:
        seq += 1
        events.append((forecast_every_s, seq, _FORECAST, -1))
    if workload.outage_at_s is not None:
        outage_end = workload.outage_at_s + workload.outage_for_s
        events.append((workload.outage_at_s, seq + 1, _OUTAGE, 1))
        events.append((outage_end, seq + 2, _OUTAGE, 0))
        seq += 2
    heapify(events)
    running = [0, 0, 0, 0]
    low_queued = 0
    woken_at = math.inf
    last = 0.0
    busy = result.busy_s

    def sched_job(i: int, not_before: float) -> SchedJob:
        j = trace[i]
        return SchedJob(
            i,
            LEVELS[j.rank],
            j.source,
            outcomes[i].deadline,
            j.estimate_s,
            j.arrival,
            not_before,
        )

    while events:
        now, _, kind, i = heappop(events)
        if now > stop:
            break
        # Integrate busy workers over the measured window since the last event.
        lo, hi = max(last, window_from), min(now, window_to)
        if hi > lo:
            dt = hi - lo
            for rank in range(4):
                busy[rank] += running[rank] * dt
            if low_queued:
                result.low_backlog_s += dt
                result.low_backlog_busy_s += running[3] * dt
        last = now
        cell[0] = now
        job = trace[i] if kind in (_ARRIVE, _END) else None
        if kind == _FORECAST:
            for job_id, raised in policy.forecast():
                flagged_out = outcomes[cast(int, job_id)]
                if raised:
                    flagged_out.raise_flag(now)
                else:
                    flagged_out.flagged_since = None
            assert forecast_every_s is not None
            seq += 1
            heappush(events, (now + forecast_every_s, seq, _FORECAST, -1))
            continue
        if kind == _DEADLINE:
            if outcomes[i].completed_at is None:
                outcomes[i].settle_flag(now)
            continue
        if kind == _OUTAGE:
            down = "src0"
            if i:
                policy.block(down, now + workload.outage_for_s)
            else:
                policy.unblock(down)
        if kind == _ARRIVE:
            assert job is not None
            if policy.submit(sched_job(i, 0.0)):
                outcomes[i].raise_flag(now)
            if job.rank == 3:
                low_queued += 1
        elif kind == _END:
            assert job is not None
            out = outcomes[i]
            attempt = job.attempts[out.attempts - 1]
            ran = job.service_s * (attempt.fail_fraction if attempt.fails else 1.0)
            policy.finish(i, ran)
            running[job.rank] -= 1
            if not attempt.fails:
                out.completed_at = now
                out.settle_flag(now)
            else:
                slack = None if out.deadline is None else out.deadline - now - job.estimate_s
                decision = decide_retry(
                    FailureCode.SERVER_ERROR,
                    retries_done=out.attempts - 1,
                    max_retries=retry.max_retries,
                    base_s=retry.base_delay_s,
                    max_s=retry.max_delay_s,
                    remaining_slack_s=slack,
                    rng=_Draw(attempt.jitter),
                )
                if decision.retry:
                    if policy.submit(sched_job(i, now + decision.delay_s)):
                        out.raise_flag(now)
                    if job.rank == 3:
                        low_queued += 1
                else:
                    out.gave_up = True
        elif woken_at <= now:
            woken_at = math.inf

        while True:
            chosen = policy.dispatch()
            if chosen is None:
                break
            job_id, phase, at_risk = chosen
            k = cast(int, job_id)
            started = trace[k]
            out = outcomes[k]
            if at_risk:
                out.raise_flag(now)
            if out.first_start is None:
                out.first_start = now
            attempt = started.attempts[out.attempts]
            out.attempts += 1
            run = started.service_s * (attempt.fail_fraction if attempt.fails else 1.0)
            running[started.rank] += 1
            if started.rank == 3:
                low_queued -= 1
            result.phases[phase] = result.phases.get(phase, 0) + 1
            result.decisions += 1
            seq += 1
            heappush(events, (now + run, seq, _END, k))
        for job_id, raised in policy.risk_changes():  # jobs turned hopeless in dispatch
            if raised:
                outcomes[cast(int, job_id)].raise_flag(now)
        wake = policy.next_wakeup()
        if wake is not None and now < wake < woken_at:
            woken_at = wake
            seq += 1
            heappush(events, (wake, seq, _WAKE, -1))

    result.outcomes = outcomes
    return result


class _Draw:
    """Replays one pre-drawn uniform as the backoff's random generator."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    if not values:
        return None
    total = sum(values)
    squares = sum(v * v for v in values)
    return None if squares == 0 else total * total / (len(values) * squares)


@dataclass(frozen=True, slots=True)
class LevelFigures:
    level: PriorityLevel
    jobs: int
    sla_met: float | None
    p50_wait_s: float | None
    p99_wait_s: float | None
    worst_wait_s: float | None
    share: float
    unstarted: int  # measured jobs never started by the end (their wait is censored)


@dataclass(frozen=True, slots=True)
class RunFigures:
    policy: str
    levels: tuple[LevelFigures, ...]
    low_backlog_share: float | None  # LOW's share of workers while LOW had work waiting
    jain_sources: float | None  # over per-source mean stretch (time in system / service)
    at_risk_flagged: int
    at_risk_precision: float | None  # flagged jobs that really missed / flagged
    at_risk_recall: float | None  # missed jobs that were flagged / missed
    at_risk_lead_p50_s: float | None  # how long before its deadline a missed job was flagged
    critical_missed: int
    critical_flagged_early: float | None  # CRITICAL misses flagged >= EARLY_S before the deadline
    phases: dict[str, int]


def figures(result: RunResult, workload: Workload, sla: SlaSettings | None = None) -> RunFigures:
    sla = sla or SlaSettings()
    measure_to = (
        workload.measure_until_s
        if workload.measure_until_s is not None
        else workload.duration_s - sla.medium_s
    )
    measured = [o for o in result.outcomes if workload.warmup_s <= o.arrival < measure_to]
    stops = result.stops or [result.stop_s]
    stop = min(stops)
    total_busy = sum(result.busy_s)
    levels = []
    for level in LEVELS:
        mine = [o for o in measured if o.rank == level.rank]
        waits = [
            (o.first_start if o.first_start is not None else max(stop, o.arrival)) - o.arrival
            for o in mine
        ]
        has_deadline = sla.seconds_for(level) is not None
        met = sum(1 for o in mine if o.met()) / len(mine) if mine and has_deadline else None
        levels.append(
            LevelFigures(
                level=level,
                jobs=len(mine),
                sla_met=met,
                p50_wait_s=_quantile(waits, 0.5),
                p99_wait_s=_quantile(waits, 0.99),
                worst_wait_s=max(waits) if waits else None,
                share=result.busy_s[level.rank] / total_busy if total_busy else 0.0,
                unstarted=sum(1 for o in mine if o.first_start is None),
            )
        )
    stretch: dict[str, list[float]] = {}
    for o in measured:
        end = o.completed_at if o.completed_at is not None else stop
        stretch.setdefault(o.source, []).append((end - o.arrival) / max(o.service_s, 1e-3))
    per_source = [sum(v) / len(v) for v in stretch.values()]
    with_deadline = [o for o in measured if o.deadline is not None]
    flagged = [o for o in with_deadline if o.flagged]
    missed = [o for o in with_deadline if not o.met()]
    critical_missed = [o for o in missed if o.rank == 0]
    return RunFigures(
        policy=result.policy,
        levels=tuple(levels),
        low_backlog_share=(
            result.low_backlog_busy_s / (result.slots * result.low_backlog_s)
            if result.low_backlog_s
            else None
        ),
        jain_sources=jain(per_source),
        at_risk_flagged=len(flagged),
        at_risk_precision=(
            sum(1 for o in flagged if not o.met()) / len(flagged) if flagged else None
        ),
        at_risk_recall=(sum(1 for o in missed if o.flagged) / len(missed) if missed else None),
        at_risk_lead_p50_s=_quantile([o.lead_s for o in missed if o.lead_s is not None], 0.5),
        critical_missed=len(critical_missed),
        critical_flagged_early=(
            sum(1 for o in critical_missed if (o.lead_s or 0.0) >= EARLY_S) / len(critical_missed)
            if critical_missed
            else None
        ),
        phases=dict(result.phases),
    )


def run_policy(
    workload: Workload,
    policy_name: str,
    seeds: Sequence[int],
    *,
    settings: SchedulerSettings | None = None,
) -> RunFigures:
    """One policy over several seeds of a workload, jobs pooled across seeds."""
    pooled = RunResult(policy_name, workload.slots)
    for seed in seeds:
        trace = make_trace(workload, seed)
        run = simulate(trace, workload, policy_name, settings=settings)
        pooled.merge(run)
    return figures(pooled, workload)
