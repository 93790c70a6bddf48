"""The desk's picture of the daemon: the typed wire shapes the link applies and the views read.

No Textual here. The link (an async worker on the app's event loop) applies the
daemon's state snapshot, its numbered events and the polled queue figures; a
timer in the app copies what changed to the visible view a few times a second.
Each part of the state carries a revision number, so a view redraws only what
moved since it last looked. Everything held is a `gexdaemon.protocol.shapes`
Struct, read by attribute with its enums compared as enums, as the CLI does.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gexdaemon.core.vocab import CircuitState, EventType, JobStatus, PriorityLevel, SlaStatus
from gexdaemon.protocol import shapes as s
from gexdaemon.readout import clock_time, short_id, words

LEVELS: tuple[PriorityLevel, ...] = tuple(PriorityLevel)
DEADLINE_LEVELS = tuple(level for level in LEVELS if level is not PriorityLevel.LOW)
# Source events that change a circuit or a trader's switch: worth a line in the activity log.
SOURCE_NOTICES = frozenset(
    {
        EventType.SOURCE_OPENED,
        EventType.SOURCE_CLOSED,
        EventType.SOURCE_HALF_OPENED,
        EventType.SOURCE_REOPENED,
        EventType.SOURCE_DISABLED,
        EventType.SOURCE_ENABLED,
    }
)
SERIES_POINTS = 240  # four minutes of one-second queue polls


class LinkPhase(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass
class LinkState:
    """How the dashboard is attached to the daemon right now."""

    phase: LinkPhase = LinkPhase.CONNECTING
    reason: str = ""
    attempt: int = 0
    retry_at: datetime | None = None
    attached_at: datetime | None = None
    connects: int = 0
    resyncs: int = 0
    gaps: int = 0


@dataclass(frozen=True)
class Activity:
    """One notable thing the desk should see in passing (a failure, a breach, a circuit)."""

    at: datetime
    severity: str  # "info" | "warning" | "error"
    text: str


@dataclass(frozen=True)
class Banner:
    """A message across the top that stays until it is replaced or times out."""

    at: datetime
    severity: str
    text: str


@dataclass
class Revisions:
    """Counters bumped on every change of a part; views compare them with what they drew."""

    jobs: int = 0
    queues: int = 0
    sources: int = 0
    rules: int = 0
    snapshots: int = 0
    sla: int = 0
    activity: int = 0
    link: int = 0
    cluster: int = 0


@dataclass(frozen=True)
class QueueSample:
    """One queue poll's figures, with the instant it was taken (sparklines say their window)."""

    at: datetime
    depth: dict[PriorityLevel, float]
    throughput: dict[PriorityLevel, float]
    met_ratio: dict[PriorityLevel, float]  # deadline levels that have finished a job
    busy_workers: float
    events_per_s: float | None  # None for the first poll after attaching


@dataclass
class Breach:
    """A job that missed its deadline: its latest row, and how late it was when it was told."""

    job: s.JobRow
    late_by_s: float | None = None


class DeskState:
    """Everything the views draw, as the daemon last told it."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        recent_limit: int = 500,
        activity_limit: int = 200,
        gex_points: int = 240,
    ) -> None:
        self.clock = clock
        self.link = LinkState()
        self.rev = Revisions()
        self.recent_limit = recent_limit
        self.health: s.Health | None = None
        self.queues: s.Queues | None = None
        self.cluster: s.ClusterStatus | None = None
        self.jobs: dict[str, s.JobRow] = {}
        self.recent: OrderedDict[str, s.JobRow] = OrderedDict()
        self.sources: dict[str, s.SourceView] = {}
        self.rules: dict[str, s.RuleView] = {}
        self.snapshots: dict[str, s.SnapshotSummary] = {}
        self.gex_points: dict[str, list[s.GexPoint]] = {}
        self._gex_points_limit = gex_points
        self.breaches: OrderedDict[str, Breach] = OrderedDict()
        self.sla_levels: list[s.LevelSla] = []
        self.activity: deque[Activity] = deque(maxlen=activity_limit)
        self.banner: Banner | None = None
        self.instance: str | None = None
        self.last_seq: int | None = None
        self.last_update_at: datetime | None = None
        self.events_seen = 0
        self.polls = 0
        self.samples: deque[QueueSample] = deque(maxlen=SERIES_POINTS)
        self._events_at_sample = 0
        self._sampled_at: datetime | None = None

    # -- the link's phases -----------------------------------------------------------

    def link_connecting(self, attempt: int) -> None:
        self.link.attempt = attempt
        if self.link.phase is not LinkPhase.RECONNECTING:
            self.link.phase = LinkPhase.CONNECTING
        self.rev.link += 1

    def link_lost(self, reason: str, retry_at: datetime) -> None:
        was_connected = self.link.phase is LinkPhase.CONNECTED
        self.link.phase = LinkPhase.RECONNECTING
        self.link.reason = reason
        self.link.retry_at = retry_at
        self.rev.link += 1
        if was_connected:
            now = self.clock()
            self._note("error", f"lost the daemon: {reason}")
            self.banner = Banner(
                now,
                "error",
                f"Lost the daemon at {clock_time(now)}: {reason}. Reconnecting; "
                "what you see is the last known state.",
            )

    def note_gap(self, expected: int, got: int) -> None:
        self.link.gaps += 1
        self._note("warning", f"missed events {expected}..{got - 1}; fetching a fresh snapshot")
        self.rev.link += 1

    def note_resync(self, reason: str) -> None:
        self.link.resyncs += 1
        self._note("warning", f"the daemon asked for a resync ({reason}); state reloaded")
        self.rev.link += 1

    # -- the first message: the whole state --------------------------------------------

    def apply_snapshot(self, message: s.StateMessage) -> None:
        """Replace everything with the daemon's state snapshot (on attach and after a resync)."""
        state = message.state
        now = self.clock()
        health = state.health
        if self.instance is not None and health.instance != self.instance:
            self.banner = Banner(
                now,
                "warning",
                f"The daemon restarted at {clock_time(now)} (instance {self.instance} → "
                f"{health.instance}, version {health.version}); the state below was reloaded "
                "from it.",
            )
            self._note("warning", f"daemon restarted: now instance {health.instance}")
        elif self.link.phase is LinkPhase.RECONNECTING and self.banner is not None:
            self.banner = Banner(now, "info", f"Reconnected to the daemon at {clock_time(now)}.")
        self.instance = health.instance
        self.health = health
        self.apply_queues(state.queues, sample=False)
        self.jobs = {j.job_id: j for j in state.jobs}
        self.recent = OrderedDict((j.job_id, j) for j in state.recent)
        self._trim_recent()
        self.sources = {src.base_url: src for src in state.sources}
        self.rules = {r.rule_id: r for r in state.rules}
        self.snapshots = {}
        for summary in state.snapshots:
            self._keep_latest(summary)
        for job in self.jobs.values():
            if job.sla_status is SlaStatus.BREACHED:
                self._remember_breach(job, None)
        if not self.activity:
            self._seed_activity()
        self.last_seq = message.seq
        self.last_update_at = now
        self.link.phase = LinkPhase.CONNECTED
        self.link.reason = ""
        self.link.retry_at = None
        self.link.attached_at = now
        self.link.connects += 1
        for name in ("jobs", "queues", "sources", "rules", "snapshots", "sla", "link"):
            setattr(self.rev, name, getattr(self.rev, name) + 1)

    # -- numbered events ------------------------------------------------------------------

    def expects(self, seq: int) -> bool:
        """Whether `seq` follows what was applied (False means events were missed)."""
        return self.last_seq is None or seq <= self.last_seq + 1

    def apply_event(self, message: s.EventMessage) -> None:
        if self.last_seq is not None and message.seq <= self.last_seq:
            return  # already in the snapshot
        self.last_seq = message.seq
        self.events_seen += 1
        self.last_update_at = self.clock()
        kind, data = message.type, message.data
        if isinstance(data, s.JobRow):
            self._job_event(kind, data)
        elif isinstance(data, s.SnapshotSummary):
            self._snapshot_created(data)
        elif isinstance(data, s.SourceNotice):
            self._source_event(kind, data)
        elif isinstance(data, s.RuleView):
            self._rule_event(kind, data)
        elif isinstance(data, s.DropNotice):
            self._note("warning", f"drop folder refused {data.file}: {data.error.message}")
        elif isinstance(data, s.DaemonNotice):
            if kind is EventType.DAEMON_STOPPING:
                self.banner = Banner(
                    self.clock(),
                    "warning",
                    f"The daemon is stopping ({data.instance}); the dashboard will reconnect "
                    "when it is back.",
                )
                self._note("warning", "daemon stopping")
            else:
                self._note("info", f"daemon started ({data.instance})")

    def _job_event(self, kind: EventType, job: s.JobRow) -> None:
        """A job's new row: live jobs stay in `jobs`, finished ones move to `recent`."""
        job_id = job.job_id
        if job.status.is_live:
            self.recent.pop(job_id, None)
            self.jobs[job_id] = job
        else:
            self.jobs.pop(job_id, None)
            self.recent[job_id] = job
            self.recent.move_to_end(job_id, last=False)
            self._trim_recent()
        if job_id in self.breaches:
            self.breaches[job_id].job = job
            self.rev.sla += 1
        self.rev.jobs += 1
        notice = job if isinstance(job, s.JobNotice) else None
        if kind is EventType.SLA_BREACHED:
            late = notice.late_by_s if notice is not None else None
            self._remember_breach(job, late)
            self._note(
                "error",
                f"SLA breached: {job_words(job)} is {late or 0:.0f} s late "
                f"({words(job.status)}, phase {job.dispatch_phase or '-'}, "
                f"{job.retry_count} retries)",
            )
        elif kind is EventType.SLA_AT_RISK:
            self.rev.sla += 1
            because = f": {job.at_risk_reason}" if job.at_risk_reason else ""
            self._note("warning", f"at risk: {job_words(job)} may miss its deadline{because}")
        elif kind is EventType.SLA_RISK_CLEARED:
            self.rev.sla += 1
        elif kind is EventType.JOB_RETRYING:
            reason = notice.reason if notice is not None else None
            self._note("warning", f"retrying {job_words(job)}: {reason or ''}")
        elif kind is EventType.JOB_LEVEL_CHANGED:
            was = notice.from_level if notice is not None else None
            self._note("info", f"{job_words(job)} moved from {words(was)}")
        elif kind is EventType.JOB_FAILED:
            reason = job.error_message or (notice.reason if notice is not None else None)
            self._note("error", f"failed: {job_words(job)}: {reason or 'no reason given'}")

    def _snapshot_created(self, summary: s.SnapshotSummary) -> None:
        self._keep_latest(summary)
        points = self.gex_points.setdefault(summary.market_symbol, [])
        point = s.GexPoint(snapshot_at=summary.snapshot_at, total_gex=summary.total_gex)
        self._add_points(points, [point])
        self.rev.snapshots += 1

    def _keep_latest(self, summary: s.SnapshotSummary) -> None:
        """Hold `summary` if its chain is the newest of its symbol (market time, not processing).

        A chain fetched late or re-analysed is processed after a newer one; it must
        not replace the newer picture of the market.
        """
        held = self.snapshots.get(summary.market_symbol)
        if held is None or summary.snapshot_at >= held.snapshot_at:
            self.snapshots[summary.market_symbol] = summary

    def _add_points(self, points: list[s.GexPoint], new: Iterable[s.GexPoint]) -> None:
        """Merge points in market-time order, one per instant, the last `gex_points` kept."""
        merged = {p.snapshot_at: p for p in points}
        merged.update((p.snapshot_at, p) for p in new)
        points[:] = sorted(merged.values(), key=lambda p: p.snapshot_at)[-self._gex_points_limit :]

    def _source_event(self, kind: EventType, source: s.SourceNotice) -> None:
        self.sources[source.base_url] = source
        self.rev.sources += 1
        if kind in SOURCE_NOTICES:
            severity = (
                "error"
                if source.circuit_state is CircuitState.OPEN
                else "info"
                if kind in (EventType.SOURCE_CLOSED, EventType.SOURCE_ENABLED)
                else "warning"
            )
            said = source.message or kind.value.split(".", 1)[1]
            # The daemon's sentence usually names the source already.
            self._note(severity, said if said.startswith(source.name) else f"{source.name}: {said}")

    def _rule_event(self, kind: EventType, rule: s.RuleView) -> None:
        if kind is EventType.RULE_DELETED:
            self.rules.pop(rule.rule_id, None)
        else:
            self.rules[rule.rule_id] = rule
        self.rev.rules += 1
        self._note("info", f"rule {rule.name!r} {kind.value.split('.', 1)[1]}")

    # -- polled figures ------------------------------------------------------------------

    def apply_cluster(self, found: s.ClusterStatus) -> None:
        """The cluster's nodes, leader and Redis (polled; embedded mode: one node)."""
        if found != self.cluster:
            self.cluster = found
            self.rev.cluster += 1

    def apply_queues(self, queues: s.Queues, *, sample: bool = True) -> None:
        """The per-level queue figures (polled: the event stream does not carry them)."""
        self.queues = queues
        now = self.clock()
        self.last_update_at = now
        self.rev.queues += 1
        if not sample:
            return
        self.polls += 1
        rate = None
        if self._sampled_at is not None:
            elapsed = (now - self._sampled_at).total_seconds()
            if elapsed > 0:
                rate = (self.events_seen - self._events_at_sample) / elapsed
        self.samples.append(
            QueueSample(
                at=now,
                depth={row.level: float(row.depth) for row in queues.levels},
                throughput={row.level: row.throughput_per_min for row in queues.levels},
                met_ratio={
                    row.level: row.sla_met_ratio
                    for row in queues.levels
                    if row.sla_met_ratio is not None
                },
                busy_workers=float(queues.workers.busy),
                events_per_s=rate,
            )
        )
        self._sampled_at = now
        self._events_at_sample = self.events_seen

    def apply_sla(self, report: s.SlaReport) -> None:
        """`GET /v1/sla`: recorded breaches (the store's), merged with those seen live."""
        for row in report.breaches:
            live = self.jobs.get(row.job_id) or self.recent.get(row.job_id)
            self.breaches[row.job_id] = Breach(live or row, row.late_by_s)
        self.sla_levels = list(report.levels)
        self.rev.sla += 1

    def apply_gex_history(self, history: s.GexHistory) -> None:
        points = self.gex_points.setdefault(history.symbol, [])
        self._add_points(points, history.points)
        self.rev.snapshots += 1

    # -- reading -------------------------------------------------------------------------

    def level_rows(self) -> list[s.LevelFigures]:
        return list(self.queues.levels) if self.queues is not None else []

    def daemon_live_total(self) -> int:
        """Live jobs the daemon holds (queued + in flight), from the polled queue figures."""
        return sum(r.depth + r.in_flight for r in self.level_rows())

    def at_risk_jobs(self) -> list[s.JobRow]:
        risky = [j for j in self.jobs.values() if j.at_risk]
        return sorted(risky, key=lambda j: (j.priority_level.rank, _instant_key(j.deadline)))

    def breach_rows(self) -> list[Breach]:
        """Breaches by level, the most recent deadline first within a level."""
        newest_first = sorted(
            self.breaches.values(), key=lambda b: _instant_key(b.job.deadline), reverse=True
        )
        return sorted(newest_first, key=lambda b: b.job.priority_level.rank)

    def job(self, job_id: str) -> s.JobRow | None:
        """A job on the desk, live or finished (breaches included)."""
        breach = self.breaches.get(job_id)
        return self.jobs.get(job_id) or self.recent.get(job_id) or (breach.job if breach else None)

    def seconds_since_update(self) -> float | None:
        if self.last_update_at is None:
            return None
        return max(0.0, (self.clock() - self.last_update_at).total_seconds())

    def symbols(self) -> list[str]:
        """Symbols with a snapshot, the big index complexes first."""
        preferred = {"SPX": 0, "NDX": 1, "SPY": 2, "QQQ": 3}
        return sorted(self.snapshots, key=lambda sym: (preferred.get(sym, 9), sym))

    def dismiss_banner(self) -> None:
        self.banner = None
        self.rev.link += 1

    # -- helpers ---------------------------------------------------------------------------

    def _remember_breach(self, job: s.JobRow, late_by_s: float | None) -> None:
        known = self.breaches.get(job.job_id)
        late = late_by_s if late_by_s is not None else (known.late_by_s if known else None)
        self.breaches[job.job_id] = Breach(job, late)
        self.breaches.move_to_end(job.job_id, last=False)
        while len(self.breaches) > 500:
            self.breaches.popitem(last=True)
        self.rev.sla += 1

    def _seed_activity(self) -> None:
        """On first attach, the failures among the recently finished jobs, newest first."""
        failed = [j for j in self.recent.values() if j.status is JobStatus.FAILED][:20]
        for job in reversed(failed):
            at = job.completed_at or self.clock()
            reason = job.error_message or "no reason recorded"
            self.activity.appendleft(Activity(at, "error", f"failed: {job_words(job)}: {reason}"))
        self.rev.activity += 1

    def _trim_recent(self) -> None:
        while len(self.recent) > self.recent_limit:
            self.recent.popitem(last=True)

    def _note(self, severity: str, text: str) -> None:
        self.activity.appendleft(Activity(self.clock(), severity, text))
        self.rev.activity += 1


def job_words(job: s.JobRow) -> str:
    """A job in a sentence: "HIGH SPY snapshot job 9e6e22e8" (the short id the CLI takes)."""
    return (
        f"{words(job.priority_level)} {job.market_symbol} {job.data_type.value} "
        f"job {short_id(job.job_id)}"
    )


def _instant_key(value: datetime | None) -> tuple[bool, float]:
    """Sorts instants with None last."""
    return (value is None, value.timestamp() if value is not None else 0.0)
