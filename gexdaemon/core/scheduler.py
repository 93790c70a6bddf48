"""Deadline-aware weighted fair scheduling: which queued ingest job gets the next free worker.

The policy (`shared/reference/scheduler.md`), in the order `dispatch()` applies it:

1. CRITICAL, earliest deadline first, over every source; a CRITICAL job may
   run `critical_cap_overshoot` jobs above its source's concurrency cap so it
   never waits behind its own source's long LOW work (a priority inversion).
   A CRITICAL job that can no longer make its deadline goes after the
   CRITICAL jobs that still can (phase `critical_late`), so one hopeless job
   does not drag the others past their deadlines (the domino effect).
2. Floors: MEDIUM and LOW each get a guaranteed share of worker time when they
   have work (a reservation, mClock-like), measured on real busy time over
   `floor_window_s`.
3. Urgent: a HIGH or MEDIUM job whose laxity (deadline - now - estimate) is
   inside its window, max(urgent_estimate_factor * estimate,
   urgent_sla_fraction * SLA), is served earliest deadline first, HIGH before
   MEDIUM. The window grows by the level's drain time (the queued work of the
   level and the more urgent ones over the workers left after the floors), so a
   backlog turns urgent in time to be served. A job with negative laxity is
   hopeless: flagged at risk (`take_risk_changes`) and left to the fair phase.
4. Fair: the level with the smallest virtual time (weights in worker-seconds),
   inside it the source with the smallest virtual time, inside the source the
   earliest deadline (LOW: first in, first out). A level or source that had
   nothing runnable re-joins at the current virtual time: idle or blocked time
   banks no credit. While deadline work arrives faster than the workers can do
   it, or a deadline level holds more work than its window can drain, LOW goes
   after HIGH and MEDIUM here (it keeps its floor and any worker they cannot
   use): a fair share beyond the floor would come out of their deadlines.

Constraints every phase respects: a source's concurrency cap and token-bucket
rate limit, its availability (circuit breaker, a trader's switch), a retry's
`not_before`, and the optional reserved CRITICAL worker, lent only to a job
estimated at `reserved_slot_max_estimate_s` or less that is first in its
source's queue.

Admission forecasts start and finish from the work ahead and flags a job that
would miss its deadline because of more urgent work, its source's limits or
its backoff. After that `forecast()` (the daemon runs it every second while
work is queued) plans the queue as dispatch would serve it and flags each job
the moment its planned finish passes its deadline, with the reason in words,
and clears the flag when the plan recovers.

Pure: the clock is injected (float seconds), nothing here performs I/O, and the
same object runs inside the daemon and inside `gexdaemon.sim.scheduling`.
Cost: per (level, source) heaps with lazy deletion and per-level heaps over
sources, so an operation is O(log n) in queued jobs plus the sources it skips;
a source at its cap is parked until one of its jobs ends instead of being
skipped at every decision. Work triggered by a sudden backlog (arming urgent
jobs, setting hopeless ones aside) is bounded per call.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any, NamedTuple

from gexdaemon.core.settings import SchedulerSettings, SlaSettings
from gexdaemon.core.vocab import Phase, PriorityLevel, SourceAccess

# Phase and SourceAccess are the scheduler's words (defined with the vocabulary).
__all__ = [
    "LEVELS",
    "Admission",
    "Dispatch",
    "LevelStats",
    "Phase",
    "Risk",
    "SchedJob",
    "Scheduler",
    "SourceAccess",
    "SourceStats",
]

LEVELS: tuple[PriorityLevel, ...] = tuple(PriorityLevel)
_CRITICAL, _HIGH, _MEDIUM, _LOW = range(4)
_INF = math.inf

# Virtual time is charged at least this much per dispatch, so a job with a zero
# estimate still moves its level and source forward.
_MIN_CHARGE_S = 1e-3

# A heap is rebuilt without its dead entries when it grows past 2 x live + this.
_COMPACT_SLACK = 256

# Most jobs one dispatch call moves into the urgent phase, and most it sets aside
# as hopeless: a sudden backlog is handled over several calls, none stalls.
_ARM_PER_CALL = 512
_HOPELESS_PER_CALL = 512
# A forecast walks at most this many deadline jobs (most urgent first); the rest keep
# their flags until the queue ahead of them shrinks into the walk.
_FORECAST_JOBS = 20_000
# A running job flagged once it has run this many times its estimate and would, at that
# pace, end past its deadline.
_OVERRUN = 3.0

# Why a source cannot run a job now (Scheduler._blocked).
_CAPPED = 1
_PAUSED = 2

# Job states.
_DELAYED = 0  # queued, waiting for its not_before (a retry's backoff)
_READY = 1  # queued and eligible by time
_RUNNING = 2
_GONE = 3


@dataclass(frozen=True, slots=True)
class SchedJob:
    """One unit of work as the scheduler sees it.

    `deadline` None means "from the SLA" (enqueued_at + SLA of the level); LOW
    has none. A retry passes its original deadline and `not_before` = the end of
    its backoff. `enqueued_at` orders LOW (first in, first out), so a retry that
    keeps its first `enqueued_at` keeps its place.
    """

    job_id: Hashable
    level: PriorityLevel
    source: str
    deadline: float | None
    estimate_s: float
    enqueued_at: float
    not_before: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.estimate_s) and self.estimate_s >= 0):
            raise ValueError(f"estimate_s must be a finite number >= 0 (got {self.estimate_s})")
        if not math.isfinite(self.enqueued_at):
            raise ValueError("enqueued_at must be finite")
        if self.deadline is not None and not math.isfinite(self.deadline):
            raise ValueError("deadline must be finite or None")
        if not math.isfinite(self.not_before):
            raise ValueError("not_before must be finite")


class Admission(NamedTuple):
    """What the scheduler expects for a job it just accepted.

    `at_risk` is set when the expected finish is past the deadline or the
    source cannot be used right now; `reason` says why, in a trader's words.
    (A NamedTuple, like Dispatch: built on every call, and a frozen dataclass
    costs several times more to build.)
    """

    at_risk: bool
    expected_start: float
    expected_finish: float
    deadline: float | None
    reason: str = ""


class Risk(NamedTuple):
    """A job whose at-risk flag changed: raised (with why) or cleared (the forecast recovered)."""

    job_id: Hashable
    at_risk: bool
    finish: float  # the forecast finish (the scheduler's clock; inf: cannot start)
    deadline: float
    reason: str  # in a trader's words; empty when cleared


class Dispatch(NamedTuple):
    """A job given a worker: run it, then call `Scheduler.finish(job_id, ran_s)`."""

    job_id: Hashable
    level: PriorityLevel
    source: str
    phase: Phase
    at_risk: bool
    deadline: float | None
    estimate_s: float
    waited_s: float


@dataclass(frozen=True, slots=True)
class LevelStats:
    """Queue figures of one level (the socket API's /v1/queues)."""

    level: PriorityLevel
    depth: int  # queued, including retries waiting out their backoff
    delayed: int  # of which waiting for their backoff
    in_flight: int
    at_risk: int  # queued jobs flagged at risk
    oldest_wait_s: float | None
    next_deadline: float | None


@dataclass(frozen=True, slots=True)
class SourceStats:
    source: str
    queued: int
    in_flight: int
    cap: int
    tokens: float
    access: SourceAccess


# ---------------------------------------------------------------------------
# Internal records (mutable, slotted: the hot path touches them millions of times)
# ---------------------------------------------------------------------------


class _Entry:
    __slots__ = (
        "at_risk",
        "charge",
        "deadline",
        "enqueued_at",
        "estimate",
        "fair_key",
        "in_urgent",
        "job_id",
        "lane",
        "latest_start",
        "long",
        "not_before",
        "rank",
        "seq",
        "started_at",
        "state",
        "urgent_from",
    )

    def __init__(
        self,
        job: SchedJob,
        *,
        rank: int,
        lane: _Lane,
        deadline: float | None,
        seq: int,
        long: bool,
        window: float,
    ) -> None:
        self.job_id = job.job_id
        self.rank = rank
        self.lane = lane
        self.deadline = deadline
        self.estimate = job.estimate_s
        self.charge = max(job.estimate_s, _MIN_CHARGE_S)
        self.enqueued_at = job.enqueued_at
        self.not_before = job.not_before
        self.seq = seq
        self.long = long
        self.state = _DELAYED
        self.in_urgent = False
        self.at_risk = False
        self.started_at = 0.0
        if deadline is None:
            self.latest_start = _INF
            self.urgent_from = _INF
        else:
            self.latest_start = deadline - job.estimate_s
            self.urgent_from = -_INF if rank == _CRITICAL else self.latest_start - window
        # LOW is first in, first out; the others earliest deadline first.
        self.fair_key = job.enqueued_at if rank == _LOW or deadline is None else deadline


class _Source:
    __slots__ = (
        "access",
        "blocked_until",
        "burst",
        "cap",
        "in_flight",
        "lanes",
        "name",
        "parked",
        "probe_spent",
        "queued",
        "rate",
        "ready",
        "refilled_at",
        "tokens",
    )

    def __init__(self, name: str, cap: int, rate: float, burst: int, now: float) -> None:
        self.name = name
        self.cap = cap
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.refilled_at = now
        self.in_flight = 0
        self.queued = 0
        self.ready = 0
        self.access = SourceAccess.ALLOWED
        self.blocked_until: float | None = None  # when a blocked source may be tried again
        self.probe_spent = False  # the half-open probe went; PROBE again is a repeat
        self.lanes: list[_Lane | None] = [None, None, None, None]
        # Lanes taken out of their level's heaps while the source is at its cap
        # (True: the urgent heap, False: the fair one); back when a job ends.
        self.parked: list[tuple[_Level, _Lane, bool]] = []

    def refill(self, now: float) -> None:
        if now > self.refilled_at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.refilled_at) * self.rate)
            self.refilled_at = now

    def token_at(self) -> float:
        """When the bucket holds a whole token again (strictly later while it holds less)."""
        at = self.refilled_at + (1.0 - self.tokens) / self.rate
        if at <= self.refilled_at and self.tokens < 1.0:
            # A shortfall of a few ulps (0.9999999999999996 tokens) rounds back to now, and
            # a refill at now adds nothing: waking there forever stalls a virtual clock.
            return math.nextafter(self.refilled_at, math.inf)
        return at


class _Lane:
    """The jobs of one source at one level."""

    __slots__ = (
        "count",
        "est_sum",
        "fair_key",
        "fair_tok",
        "jobs",
        "live",
        "rank",
        "source",
        "urgent",
        "urgent_key",
        "urgent_live",
        "urgent_tok",
        "vtime",
    )

    def __init__(self, rank: int, source: _Source) -> None:
        self.rank = rank
        self.source = source
        self.jobs: list[tuple[float, int, _Entry]] = []  # ready jobs, fair order
        self.urgent: list[tuple[float, int, _Entry]] = []  # urgent jobs, by deadline
        self.live = 0  # ready jobs
        self.urgent_live = 0
        self.count = 0  # queued jobs, ready or delayed
        self.est_sum = 0.0
        self.vtime = 0.0
        # The lane's one valid entry in its level's source heaps: the entry's
        # tie-break number (0: no entry) and key.
        self.fair_tok = 0
        self.fair_key = 0.0
        self.urgent_tok = 0
        self.urgent_key = 0.0

    def fair_head(self) -> _Entry | None:
        jobs = self.jobs
        while jobs:
            entry = jobs[0][2]
            if entry.state == _READY:
                return entry
            heappop(jobs)
        return None


class _Level:
    __slots__ = (
        "arrived_at",
        "arrived_rate",
        "at_risk",
        "busy_at",
        "busy_avg",
        "delayed",
        "est_sum",
        "fair_src",
        "floor",
        "floor_cap",
        "in_flight",
        "lane_vsys",
        "lanes",
        "level",
        "queued",
        "rank",
        "ready",
        "sla",
        "urgent_src",
        "vtime",
        "weight",
        "window_fraction",
        "workers",
    )

    def __init__(
        self, level: PriorityLevel, weight: float, sla: float | None, floor: float
    ) -> None:
        self.level = level
        self.rank = level.rank
        self.weight = weight
        self.sla = sla
        self.floor = floor
        self.floor_cap = 0  # workers the floor may bring in at once; 0: no floor
        self.workers = 1.0  # workers left to this level and above after lower levels' floors
        self.window_fraction = 0.0
        self.fair_src: list[tuple[float, int, _Lane]] = []
        self.urgent_src: list[tuple[float, int, _Lane]] = []
        self.lanes: list[_Lane] = []
        self.vtime = 0.0
        self.lane_vsys = 0.0
        self.queued = 0
        self.ready = 0
        self.delayed = 0
        self.in_flight = 0
        self.at_risk = 0
        self.est_sum = 0.0
        self.busy_avg = 0.0
        self.busy_at = 0.0
        self.arrived_rate = 0.0  # moving average of estimated work submitted, seconds per second
        self.arrived_at = 0.0


def _queued(item: tuple[float, int, _Entry]) -> bool:
    return item[2].state <= _READY


def _ready(item: tuple[float, int, _Entry]) -> bool:
    return item[2].state == _READY


def _ready_urgent(item: tuple[float, int, _Entry]) -> bool:
    return item[2].state == _READY and item[2].in_urgent


def _compact(heap: list[Any], live: int, keep: Callable[[Any], bool]) -> None:
    if len(heap) > 2 * live + _COMPACT_SLACK:
        heap[:] = [item for item in heap if keep(item)]
        heapify(heap)


def _leave_ready(entry: _Entry, lv: _Level, lane: _Lane, src: _Source) -> bool:
    """Take a ready entry out of the ready counts; True when it stood in its lane's urgent heap."""
    lane.live -= 1
    lv.ready -= 1
    src.ready -= 1
    if not entry.in_urgent:
        return False
    entry.in_urgent = False
    lane.urgent_live -= 1
    return True


def _by_deadline(entry: _Entry) -> tuple[float, int]:
    return (entry.deadline if entry.deadline is not None else _INF, entry.seq)


class _SourcePlan:
    """One source's capacity while `Scheduler.forecast` plans: job end times and tokens."""

    __slots__ = ("ends", "refilled_at", "tokens")

    def __init__(self, running: Iterable[_Entry], src: _Source, now: float) -> None:
        src.refill(now)
        self.ends = [max(now, e.started_at + e.estimate) for e in running if e.lane.source is src]
        heapify(self.ends)
        self.tokens = src.tokens
        self.refilled_at = now

    def token_at(self, src: _Source) -> float:
        """When the planned bucket holds a whole token."""
        if self.tokens >= 1.0:
            return self.refilled_at
        return self.refilled_at + (1.0 - self.tokens) / src.rate

    def take(self, start: float, finish: float, cap: int, src: _Source) -> None:
        if start > self.refilled_at:
            self.tokens = min(float(src.burst), self.tokens + (start - self.refilled_at) * src.rate)
            self.refilled_at = start
        self.tokens -= 1.0
        if len(self.ends) >= cap:
            heapreplace(self.ends, finish)
        else:
            heappush(self.ends, finish)


class Scheduler:
    """Chooses the next job for a free worker; see the module docstring for the rules.

    `slots` is the number of workers. `source_cap`, `rate_per_s` and `burst` are
    every source's defaults; `set_source_limits` overrides them per source.
    """

    def __init__(
        self,
        settings: SchedulerSettings,
        sla: SlaSettings,
        slots: int,
        *,
        source_cap: int,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float],
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1 (got {slots})")
        if source_cap < 1:
            raise ValueError(f"source_cap must be at least 1 (got {source_cap})")
        if not rate_per_s > 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._slots = slots
        self._cap = source_cap
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._overshoot = settings.critical_cap_overshoot
        # One worker stays for CRITICAL unless the pool has only one.
        self._reserved = settings.reserved_critical_slot and slots > 1
        self._reserved_wanted = settings.reserved_critical_slot
        self._reserved_max = settings.reserved_slot_max_estimate_s
        self._urgent_factor = settings.urgent_estimate_factor
        self._floor_tau = settings.floor_window_s
        weights = settings.weights
        floors = {
            PriorityLevel.MEDIUM: settings.medium_floor,
            PriorityLevel.LOW: settings.low_floor,
        }
        self._levels = [
            _Level(lv, weights.for_level(lv), sla.seconds_for(lv), floors.get(lv, 0.0))
            for lv in LEVELS
        ]
        for lv in self._levels:
            lv.window_fraction = settings.urgent_sla_fraction * (lv.sla or 0.0)
        self._reserved_wanted = settings.reserved_critical_slot
        self._size_levels(slots)
        self._sources: dict[str, _Source] = {}
        self._jobs: dict[Hashable, _Entry] = {}
        self._running: dict[Hashable, _Entry] = {}
        self._delayed: list[tuple[float, int, _Entry]] = []
        # Per level (HIGH, MEDIUM): jobs not yet urgent, by when they become so.
        self._arming: list[list[tuple[float, int, _Entry]]] = [[], [], [], []]
        self._token_waits: set[_Source] = set()
        self._seq = 0
        self._queued = 0
        self._delayed_count = 0
        self._in_flight = 0
        self._long_in_flight = 0
        self._vsys = 0.0
        self._risk_changes: list[Risk] = []
        self._reasons: dict[Hashable, str] = {}
        self.risk_margin = 2.0
        """The forecast flags a queued job whose planned start plus this many times its
        estimate passes its deadline. Estimates are means and run times have long tails:
        in simulation, 2.0 flagged 95% of CRITICAL misses 10 s or more ahead in a surge
        (1.0: 85%) for three points of precision."""
        self.describe_time: Callable[[float], str] = self._in_seconds
        self.describe_source: Callable[[str], str] = str
        """Words for a source in reasons (the daemon names its host)."""
        """Words for an instant on the scheduler's clock in reasons ("in 12 s"; the daemon
        says the wall-clock time instead)."""
        self._hopeless_budget = _HOPELESS_PER_CALL
        self.phase_counts: dict[Phase, int] = dict.fromkeys(Phase, 0)
        """Dispatches per phase since start (for /metrics and the simulator)."""

    # -- public API ------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def queued_count(self) -> int:
        """Queued jobs, including retries waiting out their backoff."""
        return self._queued

    @property
    def in_flight_count(self) -> int:
        return self._in_flight

    @property
    def free_slots(self) -> int:
        return self._slots - self._in_flight

    def set_slots(self, slots: int) -> None:
        """Change the number of workers (a cluster's nodes come and go).

        Running jobs keep their workers; with fewer slots than jobs in flight nothing
        is dispatched until enough of them finish.
        """
        if slots < 1:
            raise ValueError(f"slots must be at least 1 (got {slots})")
        self._size_levels(slots)

    def _size_levels(self, slots: int) -> None:
        self._slots = slots
        self._reserved = self._reserved_wanted and slots > 1
        for lv in self._levels:
            if lv.floor:
                lv.floor_cap = max(1, math.ceil(lv.floor * slots))
            below = sum(lower.floor for lower in self._levels[lv.rank + 1 :])
            lv.workers = slots * max(0.05, 1.0 - below)

    def _new_entry(self, job: SchedJob, *, running: bool) -> tuple[float, _Entry, _Level, _Source]:
        """The clock's now and a new job's entry in its lane (the lane made on first use).

        Raises ValueError when the job id is already queued or running.
        """
        if job.job_id in self._jobs:
            raise ValueError(f"job {job.job_id!r} is already queued or running")
        now = self._clock()
        rank = job.level.rank
        lv = self._levels[rank]
        deadline = job.deadline
        if deadline is None and lv.sla is not None:
            deadline = job.enqueued_at + lv.sla
        src = self._source(job.source, now)
        lane = src.lanes[rank]
        if lane is None:
            lane = src.lanes[rank] = _Lane(rank, src)
            lv.lanes.append(lane)
        self._seq += 1
        long = rank != _CRITICAL and self._reserved and job.estimate_s > self._reserved_max
        # An adopted job is already running: it has no urgent window.
        window = 0.0 if running else max(self._urgent_factor * job.estimate_s, lv.window_fraction)
        entry = _Entry(
            job, rank=rank, lane=lane, deadline=deadline, seq=self._seq, long=long, window=window
        )
        return now, entry, lv, src

    def adopt(self, job: SchedJob, started_at: float) -> None:
        """Count a job that is already running (a new cluster leader rebuilding from the
        shared queues): it holds a worker and its source's slot until `finish`.

        Raises ValueError when the job id is already queued or running.
        """
        _now, entry, lv, src = self._new_entry(job, running=True)
        lane = entry.lane
        entry.state = _RUNNING
        entry.started_at = started_at
        self._jobs[job.job_id] = entry
        self._running[job.job_id] = entry
        lv.in_flight += 1
        self._in_flight += 1
        src.in_flight += 1
        if entry.long:
            self._long_in_flight += 1
        lv.vtime += entry.charge / lv.weight
        lane.vtime += entry.charge

    def submit(self, job: SchedJob) -> Admission:
        """Queue a job (new, or a retry with `not_before`); returns its admission forecast.

        Raises ValueError when the job id is already queued or running.
        """
        now, entry, lv, src = self._new_entry(job, running=False)
        lane = entry.lane
        admission = self._admission(entry, src, now)
        if admission.at_risk:
            entry.at_risk = True
            lv.at_risk += 1

        tau = self._floor_tau
        if now > lv.arrived_at:
            lv.arrived_rate *= math.exp(-(now - lv.arrived_at) / tau)
            lv.arrived_at = now
        lv.arrived_rate += job.estimate_s / tau
        if lv.queued == 0:
            # An idle level re-joins at the current virtual time: no banked credit.
            lv.vtime = max(lv.vtime, self._vsys)
        lv.queued += 1
        lv.est_sum += job.estimate_s
        lane.count += 1
        lane.est_sum += job.estimate_s
        src.queued += 1
        self._queued += 1
        self._jobs[job.job_id] = entry
        if job.not_before > now:
            self._delayed_count += 1
            lv.delayed += 1
            heappush(self._delayed, (job.not_before, entry.seq, entry))
        else:
            self._make_ready(entry, now)
        return admission

    def cancel(self, job_id: Hashable) -> bool:
        """Remove a queued job. False when it is unknown or already running
        (a running job ends with `finish`)."""
        entry = self._jobs.get(job_id)
        if entry is None or entry.state > _READY:
            return False
        lane = entry.lane
        lv = self._levels[entry.rank]
        src = lane.source
        if entry.state == _READY:
            if _leave_ready(entry, lv, lane, src):
                _compact(lane.urgent, lane.urgent_live, _ready_urgent)
        else:
            self._delayed_count -= 1
            lv.delayed -= 1
        entry.state = _GONE
        self._unqueue(entry, lv, lane)
        del self._jobs[job_id]
        _compact(lane.jobs, lane.live, _ready)
        _compact(self._delayed, self._delayed_count, _queued)
        return True

    def dispatch(self) -> Dispatch | None:
        """Give the next job a worker, or None when no worker is free or nothing may run.

        Call it repeatedly while workers are free, after every `submit`,
        `finish` or `set_source_*`, and at `next_wakeup()`.
        """
        if self._in_flight >= self._slots:
            return None
        now = self._clock()
        if self._delayed and self._delayed[0][0] <= now:
            self._release_delayed(now)
        self._hopeless_budget = _HOPELESS_PER_CALL
        levels = self._levels
        short_only = self._reserved and self._long_in_flight >= self._slots - 1

        crit = levels[_CRITICAL]
        if crit.ready:
            entry = self._pick_edf(crit, now, True, False)
            if entry is not None:
                return self._start(entry, Phase.CRITICAL, now)
            entry = self._pick_fair(crit, now, True, False)
            if entry is not None:
                return self._start(entry, Phase.CRITICAL_LATE, now)

        self._arm(now)  # after CRITICAL, which never waits for it

        medium, low = levels[_MEDIUM], levels[_LOW]
        if (medium.ready and medium.in_flight < medium.floor_cap) or (
            low.ready and low.in_flight < low.floor_cap
        ):
            entry = self._pick_floor(now, short_only)
            if entry is not None:
                return self._start(entry, Phase.FLOOR, now)

        # HIGH before MEDIUM: under a MEDIUM overload the MEDIUM jobs near their
        # deadlines always have earlier deadlines than HIGH's; deadline order across
        # the two levels would let them push HIGH past its much shorter SLA.
        for lv in (levels[_HIGH], levels[_MEDIUM]):
            if lv.urgent_src:
                entry = self._pick_edf(lv, now, False, short_only)
                if entry is not None:
                    return self._start(entry, Phase.URGENT, now)

        return self._pick_fair_level(now, short_only)

    def finish(self, job_id: Hashable, ran_s: float) -> None:
        """A dispatched job ended (success or failure): free its worker and charge
        the time it really ran. Raises KeyError for a job that is not running."""
        entry = self._jobs.get(job_id)
        if entry is None or entry.state != _RUNNING:
            raise KeyError(f"job {job_id!r} is not running")
        if not (math.isfinite(ran_s) and ran_s >= 0):
            raise ValueError(f"ran_s must be a finite number >= 0 (got {ran_s})")
        now = self._clock()
        del self._jobs[job_id]
        del self._running[job_id]
        entry.state = _GONE
        lane = entry.lane
        src = lane.source
        lv = self._levels[entry.rank]
        self._note_busy(lv, now)
        lv.in_flight -= 1
        self._in_flight -= 1
        src.in_flight -= 1
        if src.parked:
            self._unpark(src)
        if entry.long:
            self._long_in_flight -= 1
        # Dispatch charged the estimate; settle the difference with what really ran.
        delta = max(ran_s, _MIN_CHARGE_S) - entry.charge
        if delta:
            lv.vtime += delta / lv.weight
            lane.vtime += delta
            if delta < 0 and lane.fair_tok and lane.vtime < lane.fair_key:
                self._push_fair(lv, lane)

    def next_wakeup(self) -> float | None:
        """The earliest time a job that cannot run now becomes runnable by the
        clock alone (a backoff ends, a rate-limit token refills); None if none.

        It may already have passed (a backoff ended since the last `dispatch`):
        then call `dispatch` now."""
        delayed = self._delayed
        while delayed and delayed[0][2].state != _DELAYED:
            heappop(delayed)
        wake = delayed[0][0] if delayed else _INF
        for src in list(self._token_waits):
            if src.ready == 0 or src.tokens >= 1.0:
                self._token_waits.discard(src)
            else:
                wake = min(wake, src.token_at())
        return None if wake == _INF else wake

    def set_source_available(self, source: str, available: bool) -> None:
        """Open or close a source to dispatch (breaker open, a trader's disable)."""
        self.set_source_access(source, SourceAccess.ALLOWED if available else SourceAccess.BLOCKED)

    def allow_probe(self, source: str) -> None:
        """Half-open breaker: let exactly one job of `source` through; after it is
        dispatched the source is blocked until `set_source_available` says otherwise."""
        self.set_source_access(source, SourceAccess.PROBE)

    def set_source_access(
        self, source: str, access: SourceAccess, *, until: float | None = None
    ) -> None:
        """ALLOWED, BLOCKED, or PROBE (one job, then blocked). Setting PROBE again
        after the probe went changes nothing, so the breaker's state can be synced
        after every fetch without letting a second probe through; a new probe needs
        the source blocked (or allowed) in between.

        `until`: when a BLOCKED source may be tried again (its breaker's cool-down
        ends); None while it is blocked for as long as a trader says. The forecast
        holds the source's jobs until then."""
        src = self._source(source, self._clock())
        src.blocked_until = until if access is SourceAccess.BLOCKED else None
        if access is SourceAccess.PROBE:
            if src.probe_spent:
                return
        else:
            src.probe_spent = False
        src.access = access

    def set_source_limits(
        self,
        source: str,
        *,
        cap: int | None = None,
        rate_per_s: float | None = None,
        burst: int | None = None,
    ) -> None:
        """Override one source's concurrency cap or rate limit."""
        src = self._source(source, self._clock())
        if cap is not None:
            if cap < 1:
                raise ValueError(f"cap must be at least 1 (got {cap})")
            src.cap = cap
            self._unpark(src)
        if rate_per_s is not None:
            if not rate_per_s > 0:
                raise ValueError(f"rate_per_s must be > 0 (got {rate_per_s})")
            src.refill(self._clock())
            src.rate = rate_per_s
        if burst is not None:
            if burst < 1:
                raise ValueError(f"burst must be at least 1 (got {burst})")
            src.burst = burst
            src.tokens = min(src.tokens, float(burst))

    def reason(self, job_id: Hashable) -> str:
        """Why a queued job is flagged at risk, in words ("" when it is not)."""
        return self._reasons.get(job_id, "")

    def take_risk_changes(self) -> list[Risk]:
        """Flags raised or cleared by `forecast` (and jobs turned hopeless) since the last call."""
        found, self._risk_changes = self._risk_changes, []
        return found

    def forecast(self, limit: int = _FORECAST_JOBS) -> None:
        """Forecast every deadline job's finish and flag the ones that will miss it.

        A list schedule of the work as dispatch would order it: the running jobs
        hold their workers until their estimates run out; then CRITICAL jobs by
        deadline, HIGH, MEDIUM, each taking a worker that is free when its source
        lets it start (its cap, its rate limit, its breaker's reopening, its
        backoff). HIGH and MEDIUM run on the share of the workers LOW's floor
        leaves them. A job whose forecast finish passes its deadline is flagged
        with the reason that held it back; one whose forecast recovers is
        cleared. Changes are read with `take_risk_changes`. Cost: O(n log n) in
        queued deadline jobs, at most `limit` of them (most urgent first).
        """
        now = self._clock()
        levels = self._levels
        self._forecast_running(now)
        free = sorted(max(now, e.started_at + e.estimate) for e in self._running.values())
        free = [now] * max(0, self._slots - len(free)) + free
        plans: dict[_Source, _SourcePlan] = {}
        queued: list[list[_Entry]] = [[], [], []]
        for _, _, entry in self._delayed:
            if entry.state == _DELAYED and entry.rank < _LOW:
                queued[entry.rank].append(entry)
        for lv in levels[:_LOW]:
            for lane in lv.lanes:
                queued[lv.rank] += [item[2] for item in lane.jobs if item[2].state == _READY]
        share = 1.0 - (levels[_LOW].floor if levels[_LOW].queued else 0.0)
        walked = 0
        for lv in levels[:_LOW]:
            stretch = 1.0 if lv.rank == _CRITICAL else 1.0 / max(share, 0.05)
            ahead = 0  # jobs of this level planned before the current one
            for entry in sorted(queued[lv.rank], key=_by_deadline):
                if walked >= limit:
                    return
                walked += 1
                src = entry.lane.source
                sp = plans.get(src)
                if sp is None:
                    sp = plans[src] = _SourcePlan(self._running.values(), src, now)
                start, why = free[0], ""
                if start > now:
                    why = (
                        f"behind {ahead} {lv.level.value.upper()} job{'s' if ahead != 1 else ''}"
                        if ahead
                        else "every worker is busy with earlier work"
                    )
                if entry.not_before > start:
                    start, why = entry.not_before, "waiting out its retry backoff"
                cap = src.cap + (self._overshoot if lv.rank == _CRITICAL else 0)
                if len(sp.ends) >= cap and sp.ends[0] > start:
                    start, why = (
                        sp.ends[0],
                        f"{self.describe_source(src.name)} runs at most {cap} at once",
                    )
                if src.access is SourceAccess.BLOCKED:
                    start, why = self._blocked_start(src, start, why)
                token_at = sp.token_at(src)
                if token_at > start:
                    start, why = (
                        token_at,
                        f"{self.describe_source(src.name)} is rate limited to {src.rate:g} fetches/s",
                    )
                finish = start + entry.estimate * stretch
                if start != _INF:
                    # The worker that frees latest but still in time: an earlier one
                    # stays free for the jobs planned after this one.
                    i = bisect_right(free, start) - 1
                    del free[max(i, 0)]
                    insort(free, finish)
                    sp.take(start, finish, cap, src)
                    ahead += 1
                deadline = entry.deadline
                assert deadline is not None
                # Late on a cautious reading of its own run time: estimates are means and
                # run times have long tails, so a job planned to end just in time is not safe.
                late = start + entry.estimate * stretch * self.risk_margin > deadline
                why = why or "its estimate alone runs past the deadline"
                if late != entry.at_risk or (late and self._reasons.get(entry.job_id) != why):
                    self._flag(entry, lv, late, finish, why)

    def _forecast_running(self, now: float) -> None:
        """A running job that has run `_OVERRUN` times its estimate is read as needing as
        long again (run times have long tails: the longer a job has run, the longer it
        is likely to go on); flagged when that passes its deadline."""
        for entry in self._running.values():
            deadline = entry.deadline
            if deadline is None:
                continue
            ran = now - entry.started_at
            overrun = ran >= _OVERRUN * entry.estimate and ran > 0.0
            projected = (
                entry.started_at + 2.0 * ran if overrun else entry.started_at + entry.estimate
            )
            late = overrun and projected > deadline
            if late and not entry.at_risk:
                times = ran / entry.estimate if entry.estimate > 0 else _INF
                why = f"running {ran:.0f} s, {times:.0f} times its estimate"
                entry.at_risk = True
                self._reasons[entry.job_id] = why
                self._risk_changes.append(Risk(entry.job_id, True, projected, deadline, why))

    def _flag(self, entry: _Entry, lv: _Level, late: bool, finish: float, why: str) -> None:
        deadline = entry.deadline
        assert deadline is not None
        if late != entry.at_risk:
            entry.at_risk = late
            lv.at_risk += 1 if late else -1
        if late:
            self._reasons[entry.job_id] = why
        else:
            self._reasons.pop(entry.job_id, None)
        self._risk_changes.append(Risk(entry.job_id, late, finish, deadline, why if late else ""))

    def _in_seconds(self, instant: float) -> str:
        return f"in {max(0.0, instant - self._clock()):.0f} s"

    def stats(self, now: float | None = None) -> dict[PriorityLevel, LevelStats]:
        """Per level: depth, in flight, oldest wait and next deadline.

        The oldest wait and the next deadline are read off each source's next job
        and the retries in backoff: exact for LOW (first in, first out) and for
        deadlines from the SLA; O(sources), not O(jobs).
        """
        at = self._clock() if now is None else now
        oldest: list[float] = [_INF] * 4
        soonest: list[float] = [_INF] * 4
        if self._delayed_count:
            for _, _, entry in self._delayed:
                if entry.state == _DELAYED:
                    self._note_head(entry, oldest, soonest)
        out: dict[PriorityLevel, LevelStats] = {}
        for lv in self._levels:
            for lane in lv.lanes:
                head = lane.fair_head()
                if head is not None:
                    self._note_head(head, oldest, soonest)
            r = lv.rank
            out[lv.level] = LevelStats(
                level=lv.level,
                depth=lv.queued,
                delayed=lv.delayed,
                in_flight=lv.in_flight,
                at_risk=lv.at_risk,
                oldest_wait_s=max(0.0, at - oldest[r]) if oldest[r] != _INF else None,
                next_deadline=soonest[r] if soonest[r] != _INF else None,
            )
        return out

    @staticmethod
    def _note_head(entry: _Entry, oldest: list[float], soonest: list[float]) -> None:
        r = entry.rank
        oldest[r] = min(oldest[r], entry.enqueued_at)
        if entry.deadline is not None:
            soonest[r] = min(soonest[r], entry.deadline)

    def source_stats(self) -> list[SourceStats]:
        now = self._clock()
        out = []
        for src in self._sources.values():
            src.refill(now)
            out.append(
                SourceStats(src.name, src.queued, src.in_flight, src.cap, src.tokens, src.access)
            )
        return out

    # -- queue bookkeeping -------------------------------------------------------------

    def _source(self, name: str, now: float) -> _Source:
        src = self._sources.get(name)
        if src is None:
            src = self._sources[name] = _Source(name, self._cap, self._rate, self._burst, now)
        return src

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _make_ready(self, entry: _Entry, now: float) -> None:
        entry.state = _READY
        lane = entry.lane
        lv = self._levels[entry.rank]
        if lane.live == 0:
            # A source re-joins its level at the level's current virtual time.
            lane.vtime = max(lane.vtime, lv.lane_vsys)
            if not lane.fair_tok:
                self._push_fair(lv, lane)
        lane.live += 1
        lv.ready += 1
        lane.source.ready += 1
        heappush(lane.jobs, (entry.fair_key, entry.seq, entry))
        urgent_from = entry.urgent_from
        if urgent_from == _INF:
            return  # LOW: never urgent
        if urgent_from <= now or urgent_from <= now + self._drain_s(lv):
            self._make_urgent(entry, lv)
        else:
            heappush(self._arming[entry.rank], (urgent_from, entry.seq, entry))

    def _make_urgent(self, entry: _Entry, lv: _Level) -> None:
        lane = entry.lane
        deadline = entry.deadline
        assert deadline is not None
        entry.in_urgent = True
        lane.urgent_live += 1
        heappush(lane.urgent, (deadline, entry.seq, entry))
        if not lane.urgent_tok or deadline < lane.urgent_key:
            lane.urgent_tok = self._next_seq()
            lane.urgent_key = deadline
            heappush(lv.urgent_src, (deadline, lane.urgent_tok, lane))

    def _push_fair(self, lv: _Level, lane: _Lane) -> None:
        lane.fair_tok = self._next_seq()
        lane.fair_key = lane.vtime
        heappush(lv.fair_src, (lane.vtime, lane.fair_tok, lane))

    def _unpark(self, src: _Source) -> None:
        """Put a source's parked lanes back in their heaps (those still at the cap
        are parked again at the next pick). Like any lane re-joining, a fair lane
        comes back at the level's current virtual time: no credit for the wait."""
        parked, src.parked = src.parked, []
        for lv, lane, urgent in parked:
            if urgent:
                if lane.urgent_live and not lane.urgent_tok:
                    # urgent_key is at most the lane's first deadline: a valid lower bound.
                    lane.urgent_tok = self._next_seq()
                    heappush(lv.urgent_src, (lane.urgent_key, lane.urgent_tok, lane))
            elif lane.live and not lane.fair_tok:
                lane.vtime = max(lane.vtime, lv.lane_vsys)
                self._push_fair(lv, lane)

    def _release_delayed(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            entry = heappop(delayed)[2]
            if entry.state == _DELAYED:
                self._delayed_count -= 1
                self._levels[entry.rank].delayed -= 1
                self._make_ready(entry, now)

    def _arm(self, now: float) -> None:
        for lv in (self._levels[_HIGH], self._levels[_MEDIUM]):
            arming = self._arming[lv.rank]
            if not arming:
                continue
            horizon = now + self._drain_s(lv)
            # Bounded per call: a sudden backlog (a batch of thousands) arms over
            # several decisions, most pressing first, instead of stalling one.
            budget = _ARM_PER_CALL
            while arming and arming[0][0] <= horizon and budget:
                entry = heappop(arming)[2]
                if entry.state == _READY and not entry.in_urgent:
                    self._make_urgent(entry, lv)
                    budget -= 1

    def _congested(self, now: float) -> bool:
        """Deadline work arrives faster than the workers left after the floors can
        do it, or a deadline level holds more work than its urgent window can drain.

        LOW then gets its floor and no more: a fair share beyond it would come out
        of capacity the deadline levels need (workers nobody else can use still go
        to LOW). Without the arrival test LOW would keep its fair share at the start
        of an overload until the backlog had grown, a head start the deadline
        levels never make up.
        """
        levels = self._levels
        tau = self._floor_tau
        arriving = 0.0
        for r in (_CRITICAL, _HIGH, _MEDIUM):
            lv = levels[r]
            if lv.arrived_rate:
                arriving += lv.arrived_rate * math.exp(-max(0.0, now - lv.arrived_at) / tau)
            if r == _CRITICAL or not lv.queued:
                continue
            if arriving > lv.workers or self._drain_s(lv) > lv.window_fraction:
                return True
        return False

    def _drain_s(self, lv: _Level) -> float:
        """Seconds the queued work of this level and the more urgent ones needs on
        the workers left after the lower levels' floors.

        A job becomes urgent this much earlier than its own window says. The fair
        phase defers a deadline level in favour of LOW on the bet that workers will
        be free before the deadline; with a backlog that takes longer to drain than
        the window, the bet loses, so the jobs turn urgent in time to be served.
        """
        levels = self._levels
        work = 0.0
        for r in range(lv.rank + 1):
            work += levels[r].est_sum
        return work / lv.workers

    def _unqueue(self, entry: _Entry, lv: _Level, lane: _Lane) -> None:
        """Counters of a job leaving the queue (dispatched or cancelled)."""
        lv.queued -= 1
        lane.count -= 1
        lane.source.queued -= 1
        self._queued -= 1
        if lv.queued:
            lv.est_sum -= entry.estimate
        else:
            lv.est_sum = 0.0  # no float drift left behind in an empty level
        lane.est_sum = lane.est_sum - entry.estimate if lane.count else 0.0
        if entry.at_risk:
            lv.at_risk -= 1

    # -- eligibility -------------------------------------------------------------------

    def _blocked_start(self, src: _Source, start: float, why: str) -> tuple[float, str]:
        """A blocked source's effect on a forecast start: never (disabled), or not before its
        breaker lets a test fetch through."""
        until = src.blocked_until
        if until is None:
            return _INF, f"source {self.describe_source(src.name)} is disabled"
        if until > start:
            return (
                until,
                f"source {self.describe_source(src.name)} circuit open until {self.describe_time(until)}",
            )
        return start, why

    def _blocked(self, src: _Source, critical: bool, now: float) -> int:
        """0 when the source may run a job now, _CAPPED at its concurrency cap (only a
        job ending frees it), _PAUSED when unavailable or out of rate-limit tokens."""
        if src.in_flight >= (src.cap + self._overshoot if critical else src.cap):
            return _CAPPED
        if src.access is SourceAccess.BLOCKED:
            return _PAUSED
        if src.tokens < 1.0:
            src.refill(now)
            if src.tokens < 1.0:
                self._token_waits.add(src)
                return _PAUSED
        return 0

    def _note_busy(self, lv: _Level, now: float) -> None:
        """Bring the level's moving average of busy workers up to `now`."""
        if lv.floor:
            lv.busy_avg = self._busy(lv, now)
            lv.busy_at = now

    def _busy(self, lv: _Level, now: float) -> float:
        # Exact exponential average of a step function: in_flight held since busy_at.
        decay = math.exp(-(now - lv.busy_at) / self._floor_tau) if now > lv.busy_at else 1.0
        return lv.in_flight + (lv.busy_avg - lv.in_flight) * decay

    # -- the phases --------------------------------------------------------------------

    def _pick_edf(self, lv: _Level, now: float, critical: bool, short_only: bool) -> _Entry | None:
        """The earliest-deadline urgent job of a level whose source may run it.

        Peeks: the chosen lane's entry stays in the heap (its key becomes a lower
        bound once the job leaves, corrected lazily)."""
        heap = lv.urgent_src
        skipped: list[tuple[float, int, _Lane]] = []
        found: _Entry | None = None
        while heap:
            key, tok, lane = heap[0]
            if tok != lane.urgent_tok:
                heappop(heap)
                continue
            # Fast path: a live, still feasible head (the common case).
            urgent = lane.urgent
            head = urgent[0][2] if urgent else None
            if (
                head is None
                or head.state != _READY
                or not head.in_urgent
                or head.latest_start < now
            ):
                head = self._urgent_head(lane, lv, now)
            if head is None:
                if lane.urgent_live:
                    break  # out of budget for this call; the lane keeps its place
                heappop(heap)
                lane.urgent_tok = 0
                continue
            deadline = head.deadline
            assert deadline is not None
            if deadline > key:
                lane.urgent_tok = self._next_seq()
                lane.urgent_key = deadline
                heapreplace(heap, (deadline, lane.urgent_tok, lane))
                continue
            why = self._blocked(lane.source, critical, now)
            if why == _CAPPED:
                heappop(heap)
                lane.urgent_tok = 0
                lane.source.parked.append((lv, lane, True))
                continue
            if why or (short_only and head.long):
                skipped.append(heappop(heap))
                continue
            found = head
            break
        for item in skipped:
            heappush(heap, item)
        return found

    def _urgent_head(self, lane: _Lane, lv: _Level, now: float) -> _Entry | None:
        urgent = lane.urgent
        while urgent:
            entry = urgent[0][2]
            if entry.state != _READY or not entry.in_urgent:
                heappop(urgent)
                continue
            if entry.latest_start < now:
                # Hopeless: it cannot make its deadline any more. Flag it and leave
                # it to the fair phase rather than let it push others past theirs.
                if self._hopeless_budget <= 0:
                    return None
                self._hopeless_budget -= 1
                heappop(urgent)
                entry.in_urgent = False
                lane.urgent_live -= 1
                if not entry.at_risk:
                    self._flag(
                        entry, lv, True, now + entry.estimate, "it can no longer start in time"
                    )
                continue
            return entry
        return None

    def _pick_fair(self, lv: _Level, now: float, critical: bool, short_only: bool) -> _Entry | None:
        """Inside one level: the source with the smallest virtual time that may run,
        and its first job. Sources skipped for being blocked catch up to the chosen
        one's virtual time (blocked time banks no credit)."""
        heap = lv.fair_src
        skipped: list[_Lane] = []
        found: _Entry | None = None
        while heap:
            key, tok, lane = heap[0]
            if tok != lane.fair_tok:
                heappop(heap)
                continue
            if lane.live == 0:
                heappop(heap)
                lane.fair_tok = 0
                continue
            if key < lane.vtime:
                lane.fair_tok = self._next_seq()
                lane.fair_key = lane.vtime
                heapreplace(heap, (lane.vtime, lane.fair_tok, lane))
                continue
            first = lane.jobs[0][2]
            head = first if first.state == _READY else lane.fair_head()
            assert head is not None
            why = self._blocked(lane.source, critical, now)
            if why == _CAPPED:
                heappop(heap)
                lane.fair_tok = 0
                lane.source.parked.append((lv, lane, False))
                continue
            if why or (short_only and head.long):
                heappop(heap)
                skipped.append(lane)
                continue
            found = head
            break
        if skipped:
            catch_up = found.lane.vtime if found is not None else -_INF
            for lane in skipped:
                lane.vtime = max(lane.vtime, catch_up)
                self._push_fair(lv, lane)
        return found

    def _pick_floor(self, now: float, short_only: bool) -> _Entry | None:
        owed: list[tuple[float, _Level]] = []
        for lv in (self._levels[_MEDIUM], self._levels[_LOW]):
            # At most floor_cap = ceil(guarantee) workers come through the floor at
            # once, so a level that was idle does not grab every free worker while
            # its average catches up.
            if not lv.ready or lv.in_flight >= lv.floor_cap:
                continue
            guaranteed = lv.floor * self._slots
            busy = self._busy(lv, now)
            if busy < guaranteed:
                owed.append((busy / guaranteed, lv))
        if not owed:
            return None
        owed.sort(key=lambda item: item[0])
        for _, lv in owed:
            entry = self._pick_fair(lv, now, False, short_only)
            if entry is not None:
                return entry
        return None

    def _pick_fair_level(self, now: float, short_only: bool) -> Dispatch | None:
        levels = self._levels
        candidates = [lv for lv in (levels[_HIGH], levels[_MEDIUM]) if lv.ready]
        low = levels[_LOW]
        # Congested: LOW goes after the deadline levels instead of sharing by
        # weight; it still gets any worker they cannot use (work conserving).
        low_last = bool(low.ready and candidates and self._congested(now))
        if low.ready and not low_last:
            candidates.append(low)
        if candidates:
            candidates.sort(key=lambda lv: lv.vtime)
        if low_last:
            candidates.append(low)
        for i, lv in enumerate(candidates):
            entry = self._pick_fair(lv, now, False, short_only)
            if entry is None:
                continue
            # Levels passed over had nothing runnable: they bank no credit for it.
            for idle in candidates[:i]:
                idle.vtime = max(idle.vtime, lv.vtime)
            self._vsys = max(self._vsys, lv.vtime)
            return self._start(entry, Phase.FAIR, now)
        return None

    def _start(self, entry: _Entry, phase: Phase, now: float) -> Dispatch:
        # The hot path of every decision: bookkeeping inlined on purpose.
        lane = entry.lane
        src = lane.source
        lv = self._levels[entry.rank]
        entry.state = _RUNNING
        # The entry is the head its pick just returned. Its entry in the lane's
        # other heap is now dead; both heaps run in deadline order, so dead entries
        # sit near the top: clear them now rather than let them pile up.
        if phase is Phase.CRITICAL or phase is Phase.URGENT:
            heappop(lane.urgent)
            jobs = lane.jobs
            while jobs and jobs[0][2].state != _READY:
                heappop(jobs)
        else:
            heappop(lane.jobs)
            urgent = lane.urgent
            while urgent and (urgent[0][2].state != _READY or not urgent[0][2].in_urgent):
                heappop(urgent)
            # The level's current virtual time for sources (re)joining it.
            lv.lane_vsys = max(lv.lane_vsys, lane.vtime)
        entry.started_at = now
        self._running[entry.job_id] = entry
        _leave_ready(entry, lv, lane, src)
        self._unqueue(entry, lv, lane)
        if len(lane.jobs) > 2 * lane.live + _COMPACT_SLACK:
            _compact(lane.jobs, lane.live, _ready)
        if len(lane.urgent) > 2 * lane.urgent_live + _COMPACT_SLACK:
            _compact(lane.urgent, lane.urgent_live, _ready_urgent)

        if lv.floor:
            lv.busy_avg = self._busy(lv, now)
            lv.busy_at = now
        lv.in_flight += 1
        self._in_flight += 1
        src.in_flight += 1
        if entry.long:
            self._long_in_flight += 1
        if now > src.refilled_at:
            src.refill(now)
        src.tokens -= 1.0
        if src.access is SourceAccess.PROBE:
            src.access = SourceAccess.BLOCKED
            src.probe_spent = True

        # Charge the estimate now (corrected in finish) so back-to-back dispatches
        # see each other.
        lv.vtime += entry.charge / lv.weight
        lane.vtime += entry.charge

        deadline = entry.deadline
        at_risk = entry.at_risk or (deadline is not None and now + entry.estimate > deadline)
        self.phase_counts[phase] += 1
        waited = now - entry.enqueued_at
        return Dispatch(
            entry.job_id,
            lv.level,
            src.name,
            phase,
            at_risk,
            deadline,
            entry.estimate,
            waited if waited > 0.0 else 0.0,
        )

    # -- admission ---------------------------------------------------------------------

    def _admission(self, entry: _Entry, src: _Source, now: float) -> Admission:
        """Forecast start and finish from the work ahead; at risk past the deadline.

        The model: jobs at the same or a more urgent level go first; they drain on
        the workers this job may use, less the floors other backlogged levels are
        owed; its source's cap and rate limit bound it too.
        """
        rank = entry.rank
        levels = self._levels
        est = entry.estimate
        start = max(now, entry.not_before)
        usable = self._slots - (1 if entry.long else 0)
        share = 1.0
        if rank != _CRITICAL:
            for lv in (levels[_MEDIUM], levels[_LOW]):
                if lv.rank != rank and lv.queued:
                    share -= lv.floor
        running_left = 0.0
        source_running_left = 0.0
        for other in self._running.values():
            left = max(0.0, other.started_at + other.estimate - now)
            running_left += left
            if other.lane.source is src:
                source_running_left += left
        # More urgent levels go first in full; of the job's own level, the part
        # ordered before it (earlier deadline; LOW: earlier arrival), estimated
        # from where its key falls between the queue's first key and now's.
        ahead_jobs = float(self._in_flight)
        ahead_work = running_left
        source_ahead_jobs = 0.0
        source_ahead_work = 0.0
        own = self._ahead_fraction(entry, levels[rank], now)
        for r in range(rank + 1):
            part = own if r == rank else 1.0
            if r < rank:
                ahead_jobs += levels[r].queued
                ahead_work += levels[r].est_sum
            lane = src.lanes[r]
            if lane is not None:
                source_ahead_jobs += part * lane.count
                source_ahead_work += part * lane.est_sum
        # Own-level work ahead that cannot run before this job's latest start turns
        # hopeless and steps aside (demoted, not served first), so it never pushes
        # this job past its deadline: count at most the room the more urgent work
        # leaves. Under an overload of its own level every job has about the same
        # chance to miss; those are flagged by the forecast or when they turn hopeless,
        # which is precise, rather than all at submission, which would not be.
        own_work = own * levels[rank].est_sum
        own_jobs = own * levels[rank].queued
        room = max(0.0, entry.latest_start - now) * usable * max(share, 0.05) - ahead_work
        room = max(0.0, room)
        if own_work > room:
            own_jobs = own_jobs * room / own_work
            own_work = room
        ahead_work += own_work
        ahead_jobs += own_jobs
        why = ""
        if ahead_jobs >= usable:
            wait = ahead_work / (usable * max(share, 0.05))
            if now + wait > start:
                start = now + wait
                why = f"{ahead_jobs:.0f} jobs ahead on {usable} workers"
        cap = src.cap + (self._overshoot if rank == _CRITICAL else 0)
        if src.in_flight + source_ahead_jobs >= cap:
            wait = (source_running_left + source_ahead_work) / cap
            if now + wait > start:
                start = now + wait
                why = f"{source_ahead_jobs:.0f} jobs ahead at {self.describe_source(src.name)} (at most {cap} at once)"
        src.refill(now)
        if source_ahead_jobs + 1 > src.tokens:
            wait = (source_ahead_jobs + 1 - src.tokens) / src.rate
            if now + wait > start:
                start = now + wait
                why = f"{self.describe_source(src.name)} is rate limited to {src.rate:g} fetches/s"
        if src.access is SourceAccess.BLOCKED:
            start, why = self._blocked_start(src, start, why)
        finish = start + est
        deadline = entry.deadline
        if deadline is None:
            return Admission(False, start, finish, None)
        if finish > deadline:
            return Admission(
                True,
                start,
                finish,
                deadline,
                why
                if start == _INF
                else f"expected {finish - deadline:.0f} s after its deadline: "
                + (why or "its estimate alone runs past the deadline"),
            )
        return Admission(False, start, finish, deadline)

    def _ahead_fraction(self, entry: _Entry, lv: _Level, now: float) -> float:
        """Share of the level's queue ordered before `entry` (1.0: all of it).

        A new job's deadline is the latest, so everything is ahead; a retry keeps
        its early deadline (LOW: its first arrival) and goes near the front. The
        queue's first key is the smallest of its sources' next jobs.
        """
        if not lv.queued:
            return 0.0
        key = entry.fair_key
        newest = now if entry.rank == _LOW or entry.deadline is None else now + (lv.sla or 0.0)
        if key >= newest:
            return 1.0
        first = _INF
        for lane in lv.lanes:
            head = lane.fair_head()
            if head is not None and head.fair_key < first:
                first = head.fair_key
        if first == _INF or newest <= first:
            return 1.0
        return max(0.0, (key - first) / (newest - first))
