"""The desk's vocabulary, defined once: levels, states, data types, units, and the job state machine.

Every layer uses these enums as enums: the domain models, the scheduler, the
store, the wire shapes, the CLI and the dashboard. Their values are the wire
and database spelling. This module imports nothing beyond the standard
library, so the CLI and the client can speak it without loading the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

# Limits of what a client sends, checked by the domain models and stated by the wire shapes.
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY = 64  # characters in a metadata key
MAX_METADATA_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048
MAX_CONDITION_LENGTH = 2000
MAX_IDEMPOTENCY_KEY = 200


class GEXDataType(StrEnum):
    HISTORICAL = "historical"
    REAL_TIME = "real_time"
    SNAPSHOT = "snapshot"


class PriorityLevel(StrEnum):
    """Service levels. The order of declaration is the order of urgency."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for CRITICAL ... 3 for LOW."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {level: i for i, level in enumerate(PriorityLevel)}


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """No transition leaves this state (COMPLETED, CANCELLED)."""
        return not TRANSITIONS[self]

    @property
    def is_live(self) -> bool:
        """Waiting or running: the scheduler holds it (QUEUED, PROCESSING)."""
        return self in (JobStatus.QUEUED, JobStatus.PROCESSING)

    @property
    def is_finished(self) -> bool:
        """Not live: it ended, for now (FAILED) or for good (COMPLETED, CANCELLED)."""
        return not self.is_live

    def can_become(self, target: JobStatus) -> bool:
        return target in TRANSITIONS[self]


TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # The seed's four transitions ...
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    # ... plus CANCELLED from QUEUED or PROCESSING (a trader's cancel), and FAILED from
    # QUEUED: a job whose source stayed down (breaker open, disabled) past its deadline
    # fails then, with that reason, instead of waiting unseen. COMPLETED and CANCELLED
    # are final. A PROCESSING job whose lease expired (its worker died) goes
    # PROCESSING -> FAILED -> QUEUED, two seed transitions, so the attempt is counted.
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class SlaStatus(StrEnum):
    NONE = "none"  # LOW: best effort, no deadline
    PENDING = "pending"
    MET = "met"
    BREACHED = "breached"


class CircuitState(StrEnum):
    CLOSED = "closed"  # fetching normally
    OPEN = "open"  # too many consecutive failures: no fetches until the cool-down ends
    HALF_OPEN = "half_open"  # cool-down over: one probe fetch decides


class SourceAccess(StrEnum):
    """How the scheduler may use a source (see `gexdaemon.core.breaker.access`)."""

    ALLOWED = "allowed"
    PROBE = "probe"  # half-open breaker: one job may go, then the source waits for the verdict
    BLOCKED = "blocked"  # breaker open or disabled by a trader: its jobs wait


class Phase(StrEnum):
    """Which rule chose a dispatch (persisted as ProcessingJob.dispatch_phase)."""

    CRITICAL = "critical"  # CRITICAL that can still make its deadline, earliest first
    CRITICAL_LATE = "critical_late"  # CRITICAL past hope, after the ones that can still make it
    FLOOR = "floor"  # MEDIUM or LOW below its guaranteed share
    URGENT = "urgent"  # HIGH or MEDIUM close to its deadline
    FAIR = "fair"  # weighted fair share across levels and sources


class Origin(StrEnum):
    """Where a request came from."""

    API = "api"  # the socket API (scripts, curl)
    DROP = "drop"  # the drop folder
    CLI = "cli"
    TUI = "tui"  # the dashboard
    INGEST = "ingest"  # `gexdaemon ingest` / POST /v1/ingest
    DEMO = "demo"


class GexUnit(StrEnum):
    USD_PER_1PCT = "usd_per_1pct"
    USD_PER_POINT = "usd_per_point"
    SHARES_PER_POINT = "shares_per_point"

    @property
    def words(self) -> str:
        """What the unit means, for a header: "$ per 1% move"."""
        return _UNIT_WORDS[self]


_UNIT_WORDS = {
    GexUnit.USD_PER_1PCT: "$ per 1% move",
    GexUnit.USD_PER_POINT: "$ per 1-point move",
    GexUnit.SHARES_PER_POINT: "shares per 1-point move",
}


class SignModel(StrEnum):
    DEALER_LONG_CALLS_SHORT_PUTS = "dealer_long_calls_short_puts"
    DEALER_SHORT_CALLS_LONG_PUTS = "dealer_short_calls_long_puts"
    DEALER_SHORT_BOTH = "dealer_short_both"


class GammaSource(StrEnum):
    MODEL = "model"
    VENDOR = "vendor"


class ExpiryFilter(StrEnum):
    ALL = "all"
    ZERO_DTE = "0dte"
    EX_NEXT = "ex_next"
    EX_NEXT_MONTHLY = "ex_next_monthly"


class ShadowMode(StrEnum):
    """How `rules test` builds its candidate rule set."""

    MERGE = "merge"  # the current rules, with the candidates replacing same-named ones
    REPLACE = "replace"  # exactly the candidates


class EventType(StrEnum):
    """Every event the daemon publishes on `/v1/events`."""

    DAEMON_STARTED = "daemon.started"
    DAEMON_STOPPING = "daemon.stopping"
    JOB_QUEUED = "job.queued"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_RETRYING = "job.retrying"
    JOB_LEVEL_CHANGED = "job.level_changed"
    SLA_AT_RISK = "sla.at_risk"
    SLA_RISK_CLEARED = "sla.risk_cleared"  # the forecast recovered: the job will make it after all
    SLA_BREACHED = "sla.breached"
    SNAPSHOT_CREATED = "snapshot.created"
    SOURCE_CREATED = "source.created"
    SOURCE_UPDATED = "source.updated"
    SOURCE_OPENED = "source.opened"
    SOURCE_HALF_OPENED = "source.half_opened"
    SOURCE_CLOSED = "source.closed"
    SOURCE_REOPENED = "source.reopened"
    SOURCE_DISABLED = "source.disabled"
    SOURCE_ENABLED = "source.enabled"
    RULE_CREATED = "rule.created"
    RULE_UPDATED = "rule.updated"
    RULE_DELETED = "rule.deleted"
    DROP_REJECTED = "drop.rejected"
    RESYNC = "resync"  # not an event: the marker a lagging subscriber gets before a new snapshot

    @property
    def family(self) -> str:
        """The part before the dot: job, sla, source, rule, snapshot, daemon, drop."""
        return self.value.split(".", 1)[0]
