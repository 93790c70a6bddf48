"""The desk's picture of the daemon: plain state the link writes and the views read.

No Textual here. The link (an async worker on the app's event loop) applies the
daemon's state snapshot, its numbered events and the polled queue figures; a
timer in the app copies what changed to the visible view a few times a second.
Each part of the state carries a revision number, so a view redraws only what
moved since it last looked.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gexdaemon.core.models import PriorityLevel

LEVELS: tuple[str, ...] = tuple(level.value for level in PriorityLevel)
FINISHING_EVENTS = frozenset({"job.completed", "job.cancelled", "job.failed"})
LIVE_JOB_EVENTS = frozenset(
    {
        "job.queued",
        "job.started",
        "job.retrying",
        "job.level_changed",
        "sla.at_risk",
        "sla.breached",
    }
)
# Source events that change a circuit or a trader's switch: worth a line in the activity log.
SOURCE_NOTICES = frozenset(
    {"source.opened", "source.closed", "source.half_opened", "source.reopened"}
    | {"source.disabled", "source.enabled"}
)
SERIES_POINTS = 240  # four minutes of one-second samples


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


@dataclass
class LevelSeries:
    depth: deque[float] = field(default_factory=lambda: deque(maxlen=SERIES_POINTS))
    throughput: deque[float] = field(default_factory=lambda: deque(maxlen=SERIES_POINTS))
    met_ratio: deque[float] = field(default_factory=lambda: deque(maxlen=SERIES_POINTS))


def _level_rank(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        return len(LEVELS)


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
        self.health: dict[str, Any] = {}
        self.queues: dict[str, Any] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.recent_limit = recent_limit
        self.sources: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.gex_points: dict[str, deque[tuple[str, float]]] = {}
        self._gex_points_limit = gex_points
        self.breaches: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.sla_levels: list[dict[str, Any]] = []
        self.activity: deque[Activity] = deque(maxlen=activity_limit)
        self.banner: Banner | None = None
        self.instance: str | None = None
        self.last_seq: int | None = None
        self.last_update_at: datetime | None = None
        self.events_seen = 0
        self.polls = 0
        self.series: dict[str, LevelSeries] = {level: LevelSeries() for level in LEVELS}
        self.events_per_s: deque[float] = deque(maxlen=SERIES_POINTS)
        self.busy_workers: deque[float] = deque(maxlen=SERIES_POINTS)
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
            self._note("error", f"lost the daemon: {reason}")
            self.banner = Banner(
                self.clock(),
                "error",
                f"Lost the daemon at {self.clock():%H:%M:%S}: {reason}. Reconnecting; "
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

    def apply_snapshot(self, message: Mapping[str, Any]) -> None:
        """Replace everything with the daemon's state snapshot (on attach and after a resync)."""
        state = message.get("state") or {}
        now = self.clock()
        health = dict(state.get("health") or {})
        instance = health.get("instance")
        if self.instance is not None and instance and instance != self.instance:
            self.banner = Banner(
                now,
                "warning",
                f"The daemon restarted at {now:%H:%M:%S} (instance {self.instance} → {instance}, "
                f"version {health.get('version', '?')}); the state below was reloaded from it.",
            )
            self._note("warning", f"daemon restarted: now instance {instance}")
        elif self.link.phase is LinkPhase.RECONNECTING and self.banner is not None:
            self.banner = Banner(now, "info", f"Reconnected to the daemon at {now:%H:%M:%S}.")
        self.instance = instance or self.instance
        self.health = health
        self.apply_queues(state.get("queues") or {}, sample=False)
        self.jobs = {j["job_id"]: dict(j) for j in state.get("jobs") or ()}
        self.recent = OrderedDict((j["job_id"], dict(j)) for j in state.get("recent") or ())
        self._trim_recent()
        self.sources = {s["base_url"]: dict(s) for s in state.get("sources") or ()}
        self.rules = {r["rule_id"]: dict(r) for r in state.get("rules") or ()}
        self.snapshots = {s["market_symbol"]: dict(s) for s in state.get("snapshots") or ()}
        for job in self.jobs.values():
            if job.get("sla_status") == "breached":
                self._remember_breach(job, None)
        if not self.activity:
            self._seed_activity()
        self.last_seq = int(message.get("seq") or 0)
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

    def apply_event(self, message: Mapping[str, Any]) -> None:
        kind = str(message.get("type", ""))
        data = message.get("data") or {}
        seq = message.get("seq")
        if isinstance(seq, int):
            if self.last_seq is not None and seq <= self.last_seq:
                return  # already in the snapshot
            self.last_seq = seq
        self.events_seen += 1
        self.last_update_at = self.clock()
        if kind in LIVE_JOB_EVENTS:
            self._live_job(kind, data)
        elif kind in FINISHING_EVENTS:
            self._finished_job(kind, data)
        elif kind == "snapshot.created":
            self._snapshot_created(data)
        elif kind.startswith("source."):
            self._source_event(kind, data)
        elif kind.startswith("rule."):
            self._rule_event(kind, data)
        elif kind == "drop.rejected":
            self._note("warning", f"drop folder refused {data.get('file')}: {data.get('error')}")
        elif kind == "daemon.stopping":
            self.banner = Banner(
                self.clock(),
                "warning",
                f"The daemon is stopping ({data.get('instance', '')}); the dashboard will "
                "reconnect when it is back.",
            )
            self._note("warning", "daemon stopping")
        elif kind == "daemon.started":
            self._note("info", f"daemon started ({data.get('instance', '')})")

    def _live_job(self, kind: str, data: Mapping[str, Any]) -> None:
        job_id = str(data.get("job_id"))
        job = dict(data)
        self.recent.pop(job_id, None)
        self.jobs[job_id] = job
        self.rev.jobs += 1
        if kind == "sla.breached":
            self._remember_breach(job, data.get("late_by_s"))
            self._note(
                "error",
                f"SLA breached: {_job_words(job)} is {float(data.get('late_by_s') or 0):.0f} s late "
                f"({job.get('status')}, phase {job.get('dispatch_phase') or '-'}, "
                f"{job.get('retry_count', 0)} retries)",
            )
        elif kind == "sla.at_risk":
            self.rev.sla += 1
            self._note("warning", f"at risk: {_job_words(job)} may miss its deadline")
        elif kind == "job.retrying":
            self._note("warning", f"retrying {_job_words(job)}: {data.get('reason', '')}")
        elif kind == "job.level_changed":
            self._note(
                "info",
                f"{_job_words(job)} moved from {str(data.get('from_level', '?')).upper()}",
            )

    def _finished_job(self, kind: str, data: Mapping[str, Any]) -> None:
        job_id = str(data.get("job_id"))
        job = dict(data)
        self.jobs.pop(job_id, None)
        self.recent[job_id] = job
        self.recent.move_to_end(job_id, last=False)
        self._trim_recent()
        if job_id in self.breaches:
            self.breaches[job_id] = self.breaches[job_id] | job
            self.rev.sla += 1
        self.rev.jobs += 1
        if kind == "job.failed":
            self._note(
                "error",
                f"failed: {_job_words(job)}: {job.get('error_message') or data.get('reason', '')}",
            )

    def _snapshot_created(self, data: Mapping[str, Any]) -> None:
        symbol = str(data.get("market_symbol"))
        self.snapshots[symbol] = dict(self.snapshots.get(symbol, {})) | dict(data)
        total = data.get("total_gex")
        if isinstance(total, int | float):
            self.gex_points.setdefault(symbol, deque(maxlen=self._gex_points_limit)).append(
                (str(data.get("snapshot_at", "")), float(total))
            )
        self.rev.snapshots += 1

    def _source_event(self, kind: str, data: Mapping[str, Any]) -> None:
        base_url = data.get("base_url")
        if not base_url:
            return
        self.sources[str(base_url)] = {k: v for k, v in data.items() if k != "message"}
        self.rev.sources += 1
        if kind in SOURCE_NOTICES:
            severity = "error" if kind in ("source.opened", "source.reopened") else "warning"
            if kind in ("source.closed", "source.enabled"):
                severity = "info"
            self._note(
                severity,
                f"{data.get('name', base_url)}: {data.get('message') or kind.split('.', 1)[1]}",
            )

    def _rule_event(self, kind: str, data: Mapping[str, Any]) -> None:
        rule_id = data.get("rule_id")
        if not rule_id:
            return
        if kind == "rule.deleted":
            self.rules.pop(str(rule_id), None)
        else:
            self.rules[str(rule_id)] = dict(data)
        self.rev.rules += 1
        self._note("info", f"rule {data.get('name')!r} {kind.split('.', 1)[1]}")

    # -- polled figures ------------------------------------------------------------------

    def apply_queues(self, queues: Mapping[str, Any], *, sample: bool = True) -> None:
        """The per-level queue figures (polled: the event stream does not carry them)."""
        self.queues = dict(queues)
        now = self.clock()
        self.last_update_at = now
        self.rev.queues += 1
        if not sample:
            return
        self.polls += 1
        for row in queues.get("levels") or ():
            series = self.series.get(str(row.get("level")))
            if series is None:
                continue
            series.depth.append(float(row.get("depth") or 0))
            series.throughput.append(float(row.get("throughput_per_min") or 0.0))
            ratio = row.get("sla_met_ratio")
            if ratio is not None:
                series.met_ratio.append(float(ratio))
        workers = queues.get("workers") or {}
        self.busy_workers.append(float(workers.get("busy") or 0))
        if self._sampled_at is not None:
            elapsed = (now - self._sampled_at).total_seconds()
            if elapsed > 0:
                self.events_per_s.append((self.events_seen - self._events_at_sample) / elapsed)
        self._sampled_at = now
        self._events_at_sample = self.events_seen

    def apply_sla(self, report: Mapping[str, Any]) -> None:
        """`GET /v1/sla`: recorded breaches (the store's), merged with those seen live."""
        for row in report.get("breaches") or ():
            job_id = str(row.get("job_id"))
            live = self.jobs.get(job_id) or self.recent.get(job_id) or {}
            self.breaches[job_id] = dict(live) | dict(row)
        self.sla_levels = list(report.get("levels") or ())
        self.rev.sla += 1

    def apply_gex_history(self, symbol: str, points: Iterable[Mapping[str, Any]]) -> None:
        history: deque[tuple[str, float]] = deque(maxlen=self._gex_points_limit)
        for point in points:
            total = point.get("total_gex")
            if isinstance(total, int | float):
                history.append((str(point.get("snapshot_at", "")), float(total)))
        self.gex_points[symbol] = history
        self.rev.snapshots += 1

    # -- reading -------------------------------------------------------------------------

    def level_rows(self) -> list[dict[str, Any]]:
        rows = {str(r.get("level")): r for r in self.queues.get("levels") or ()}
        return [rows.get(level, {"level": level}) for level in LEVELS]

    def daemon_live_total(self) -> int:
        """Live jobs the daemon holds (queued + in flight), from the polled queue figures."""
        return sum(
            int(r.get("depth") or 0) + int(r.get("in_flight") or 0) for r in self.level_rows()
        )

    def at_risk_jobs(self) -> list[dict[str, Any]]:
        risky = [j for j in self.jobs.values() if j.get("at_risk")]
        return sorted(
            risky,
            key=lambda j: (_level_rank(str(j.get("priority_level"))), j.get("deadline") or "~"),
        )

    def breach_rows(self) -> list[dict[str, Any]]:
        """Breaches by level, the most recent deadline first within a level."""
        newest_first = sorted(
            self.breaches.values(), key=lambda b: str(b.get("deadline") or ""), reverse=True
        )
        return sorted(newest_first, key=lambda b: _level_rank(str(b.get("priority_level"))))

    def seconds_since_update(self) -> float | None:
        if self.last_update_at is None:
            return None
        return max(0.0, (self.clock() - self.last_update_at).total_seconds())

    def symbols(self) -> list[str]:
        """Symbols with a snapshot, the big index complexes first."""
        preferred = {"SPX": 0, "NDX": 1, "SPY": 2, "QQQ": 3}
        return sorted(self.snapshots, key=lambda s: (preferred.get(s, 9), s))

    def dismiss_banner(self) -> None:
        self.banner = None
        self.rev.link += 1

    # -- helpers ---------------------------------------------------------------------------

    def _remember_breach(self, job: Mapping[str, Any], late_by_s: Any) -> None:
        job_id = str(job.get("job_id"))
        entry = dict(self.breaches.get(job_id, {})) | dict(job)
        if late_by_s is not None:
            entry["late_by_s"] = late_by_s
        self.breaches[job_id] = entry
        self.breaches.move_to_end(job_id, last=False)
        while len(self.breaches) > 500:
            self.breaches.popitem(last=True)
        self.rev.sla += 1

    def _seed_activity(self) -> None:
        """On first attach, the failures among the recently finished jobs, newest first."""
        failed = [j for j in self.recent.values() if j.get("status") == "failed"][:20]
        for job in reversed(failed):
            at = _instant(job.get("completed_at")) or self.clock()
            reason = job.get("error_message") or "no reason recorded"
            self.activity.appendleft(Activity(at, "error", f"failed: {_job_words(job)}: {reason}"))
        self.rev.activity += 1

    def _trim_recent(self) -> None:
        while len(self.recent) > self.recent_limit:
            self.recent.popitem(last=True)

    def _note(self, severity: str, text: str) -> None:
        self.activity.appendleft(Activity(self.clock(), severity, text))
        self.rev.activity += 1


def _job_words(job: Mapping[str, Any]) -> str:
    return (
        f"{str(job.get('priority_level', '?')).upper()} {job.get('market_symbol', '?')} "
        f"{job.get('data_type', '')} job {str(job.get('job_id', ''))[-8:]}"
    )


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
