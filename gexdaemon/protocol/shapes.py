"""Every shape that crosses the socket, as msgspec Structs: one definition each.

The daemon builds these from its domain models (`gexdaemon.api.present`), the
server encodes them, the client decodes answers into them, and the CLI, the
dashboard and the OpenAPI document read them. A field renamed here is renamed
everywhere at once, and mypy sees every reader; `tests/protocol` checks these
names against the domain models and the database columns.

Conventions: instants are RFC 3339 UTC; durations are seconds in fields ending
`_s` (the seed's `estimated_processing_time` and `processing_duration` keep
their names and are seconds too); market-local dates and times (New York) say
so in their description.

Every shape also reads like a mapping (`accepted["job_id"]`), as the client's
answers did when they were plain dicts; new code uses attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gexdaemon.core.vocab import (
    MAX_CONDITION_LENGTH,
    MAX_IDEMPOTENCY_KEY,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEY,
    MAX_METADATA_KEYS,
    MAX_URL_LENGTH,
    CircuitState,
    EventType,
    ExpiryFilter,
    GammaSource,
    GEXDataType,
    GexUnit,
    JobStatus,
    Origin,
    Phase,
    PriorityLevel,
    ShadowMode,
    SignModel,
    SlaStatus,
    SourceAccess,
)

Score = Annotated[float, Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, Meta(ge=0.0)]
Count = Annotated[int, Meta(ge=0)]
Price = Annotated[float, Meta(gt=0.0)]
ClockTime = Annotated[
    str,
    Meta(
        pattern=r"^\d{2}:\d{2}:\d{2}(\.\d{1,6})?$",
        description="market-local (New York) wall-clock time, HH:MM:SS[.ffffff]",
    ),
]
# Ids travel as text (a UUID's canonical form): scripts print, slice and compare them.
Id = Annotated[str, Meta(extra_json_schema={"format": "uuid"})]
# Values whose validity is the daemon's to judge (the rule language, DuckDB's SQL, the
# optionable symbols and allowed hosts of its config) carry a format that names the rule.
# Surrounding whitespace is trimmed, so a name needs one visible character.
RuleName = Annotated[
    str, Meta(min_length=1, max_length=80, pattern=r"\S", examples=["current-day index data"])
]
MarketSymbol = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=10,
        description="an optionable ticker ([symbols] in the config), any case; "
        "a vendor prefix (_SPX, ^SPX, $SPX) is dropped",
        examples=["SPX"],
        extra_json_schema={"format": "market-symbol"},
    ),
]
RuleCondition = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_CONDITION_LENGTH,
        description="a condition in the rule language (docs/rules.md), checked when saved",
        examples=["data_type == 'real_time' and market_symbol in ['NDX', 'SPX']"],
        extra_json_schema={"format": "rule-condition"},
    ),
]


class Shape(msgspec.Struct, kw_only=True):
    """Base of every wire shape: attribute access, and mapping-style reads for old scripts."""

    # The domain model (gexdaemon.core.models) a shape mirrors field for field, if any,
    # and the fields it adds; tests/protocol holds the two to the same names.
    mirrors: ClassVar[str] = ""
    extras: ClassVar[frozenset[str]] = frozenset()
    # A body that must set (not null) at least one of these fields; the OpenAPI document
    # says so, and the daemon refuses a body that sets none with a 422.
    needs_one_of: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key: str) -> Any:
        if key in self.__struct_fields__:
            return getattr(self, key)
        config = self.__struct_config__
        if config.tag_field is not None and key == config.tag_field:
            return config.tag  # {"type": "snapshot", ...} reads as it is written
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> tuple[str, ...]:
        config = self.__struct_config__
        tag = (config.tag_field,) if config.tag_field is not None else ()
        return tag + self.__struct_fields__

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self[name]) for name in self.keys()]

    def to_builtins(self) -> dict[str, Any]:
        """JSON-ready builtins (what `--json` prints)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ProblemDetail(Shape, kw_only=True):
    path: Annotated[
        str, Meta(description="where: a field path (requests.3.market_symbol), file, line")
    ]
    message: str
    rule: str | None = None
    value: str | int | float | bool | None = None


class ErrorInfo(Shape, kw_only=True):
    code: str
    message: str
    details: list[ProblemDetail] = []
    request_id: str = ""


class ErrorBody(Shape, kw_only=True):
    error: ErrorInfo


# ---------------------------------------------------------------------------
# Requests (what clients send) and their receipts
# ---------------------------------------------------------------------------


class RequestSubmission(Shape, forbid_unknown_fields=True, kw_only=True):
    """One ingest request as a client sends it; the daemon assigns id, score and level."""

    mirrors: ClassVar[str] = "RequestSubmission"
    source_url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_URL_LENGTH,
            description="the chain's http(s) URL on a host of [sources] allowed_hosts: "
            "an optional port, no whitespace",
            examples=["http://127.0.0.1:8765/SPX_strikes.json"],  # the demo's feed server
            extra_json_schema={"format": "source-url"},
        ),
    ]
    data_type: GEXDataType
    market_symbol: MarketSymbol
    requested_at: (
        Annotated[
            datetime,
            Meta(
                description="when the data was asked for; not in the future",
                extra_json_schema={"format": "date-time"},
            ),
        ]
        | None
    ) = None
    metadata: Annotated[
        dict[Annotated[str, Meta(min_length=1, max_length=MAX_METADATA_KEY, pattern=r"\S")], Any],
        Meta(
            max_length=MAX_METADATA_KEYS,
            description=f"free-form facts for rules to read; at most {MAX_METADATA_BYTES} "
            "bytes as JSON",
        ),
    ] = {}
    idempotency_key: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=MAX_IDEMPOTENCY_KEY,
                pattern="^[!-~]+$",
                description="a repeat within 24 h returns the first job instead of making "
                "another; a key used for another request is a 409",
            ),
        ]
        | None
    ) = None


class RequestBatch(Shape, forbid_unknown_fields=True, kw_only=True):
    requests: Annotated[list[RequestSubmission], Meta(min_length=1)]


class Accepted(Shape, kw_only=True):
    """The receipt of one accepted request: durably committed and queued."""

    request_id: Id
    job_id: Id
    market_symbol: str
    priority_score: Score
    priority_level: PriorityLevel
    deadline: datetime | None
    estimated_processing_time_s: Seconds
    at_risk: bool
    at_risk_reason: str | None = None
    explanation: dict[str, Any] | None = None
    # True when an idempotency key matched an earlier request: this is that request's job.
    replayed: bool = False


class AcceptedBatch(Shape, kw_only=True):
    requests: list[Accepted]
    accepted: Count


class IngestAccepted(Accepted, kw_only=True):
    """The receipt of an uploaded chain file: its request, plus what the daemon saw in it."""

    format: str
    stored_as: str


class JobBrief(Shape, kw_only=True):
    job_id: Id
    status: JobStatus
    priority_level: PriorityLevel
    retry_count: Count
    sla_status: SlaStatus


class RequestView(Shape, kw_only=True):
    """A stored request (`PriorityRequest`), with its jobs."""

    mirrors: ClassVar[str] = "PriorityRequest"
    extras: ClassVar[frozenset[str]] = frozenset({"jobs"})
    request_id: Id
    source_url: str
    data_type: GEXDataType
    market_symbol: str
    requested_at: datetime
    priority_score: Score
    priority_level: PriorityLevel
    estimated_processing_time: Seconds
    metadata: dict[str, Any]
    source_id: Id | None
    deadline: datetime | None
    origin: Origin
    explanation: dict[str, Any]
    jobs: list[JobBrief] = []


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------


class JobView(Shape, kw_only=True):
    """A job as stored (`ProcessingJob`)."""

    mirrors: ClassVar[str] = "ProcessingJob"
    job_id: Id
    request_id: Id
    status: JobStatus
    priority_level: PriorityLevel
    requested_at: datetime
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    records_processed: Count
    data_size_bytes: Count
    error_message: str | None
    retry_count: Count
    deadline: datetime | None
    sla_status: SlaStatus
    at_risk: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    dispatch_phase: Phase | None
    next_attempt_at: datetime | None
    version: Annotated[int, Meta(ge=1)]
    updated_at: datetime | None
    processing_duration: Seconds | None


class JobEventView(Shape, kw_only=True):
    """One state change in a job's history (`JobEvent`)."""

    mirrors: ClassVar[str] = "JobEvent"
    job_id: Id
    seq: Annotated[int, Meta(ge=1)]
    occurred_at: datetime
    from_status: JobStatus | None
    to_status: JobStatus
    reason: str


class JobRow(Shape, kw_only=True):
    """A job with its request's facts: the one shape of job listings, live jobs and job events."""

    job_id: Id
    request_id: Id
    status: JobStatus
    priority_level: PriorityLevel
    priority_score: Score
    market_symbol: str
    data_type: GEXDataType
    source_url: str
    source: str = msgspec.field(default="")  # the source's base URL
    origin: Origin
    requested_at: datetime
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    deadline: datetime | None
    sla_status: SlaStatus
    at_risk: bool
    at_risk_reason: str | None = None
    retry_count: Count
    error_message: str | None
    dispatch_phase: Phase | None
    next_attempt_at: datetime | None
    estimated_processing_time_s: Seconds
    processing_duration_s: Seconds | None
    records_processed: Count
    snapshot_id: Id | None = None


class JobPage(Shape, kw_only=True):
    jobs: list[JobRow]
    next_cursor: Annotated[
        str | None,
        Meta(description="pass as ?cursor= for the next (older) page; null on the last page"),
    ]


class JobDetail(Shape, kw_only=True):
    job: JobView
    request: RequestView | None
    history: list[JobEventView]
    snapshot_id: Id | None
    live: JobRow | None


class JobNotice(JobRow, kw_only=True, omit_defaults=True):
    """A job event's data: the job's row plus what happened (only the facts that apply)."""

    waited_s: Seconds | None = None
    ran_s: Seconds | None = None
    reason: str | None = None
    code: str | None = None
    delay_s: Seconds | None = None
    late_by_s: float | None = None
    from_level: PriorityLevel | None = None


class JobChange(Shape, forbid_unknown_fields=True, kw_only=True):
    """A trader's change of a queued job: its level (a bump)."""

    priority_level: PriorityLevel


# ---------------------------------------------------------------------------
# Queues and SLAs
# ---------------------------------------------------------------------------


class LevelFigures(Shape, kw_only=True):
    """One level's queue and SLA figures."""

    level: PriorityLevel
    depth: Count
    delayed: Count
    in_flight: Count
    at_risk: Count
    oldest_wait_s: Seconds | None
    next_deadline_in_s: float | None
    sla_s: Seconds | None
    sla_met_ratio: Score | None
    finished_last_hour: Count
    breaches_last_hour: Count
    throughput_per_min: Seconds
    met_total: Count
    breached_total: Count
    at_risk_precision: Score | None


class Workers(Shape, kw_only=True):
    total: Count
    busy: Count


class SourceLane(Shape, kw_only=True):
    """A source as the scheduler sees it: queued work, running work, cap and rate tokens."""

    source: str
    queued: Count
    in_flight: Count
    cap: Count
    tokens: float
    access: SourceAccess


class Queues(Shape, kw_only=True):
    levels: list[LevelFigures]
    workers: Workers
    phases: dict[Phase, Count]
    sources: list[SourceLane]


class Breach(JobRow, kw_only=True):
    late_by_s: float | None


class LevelSla(Shape, kw_only=True):
    level: PriorityLevel
    sla_met_ratio: Score | None
    finished_last_hour: Count
    breaches_last_hour: Count
    throughput_per_min: Seconds
    met_total: Count
    breached_total: Count
    at_risk_precision: Score | None


class SlaReport(Shape, kw_only=True):
    breaches: list[Breach]
    at_risk: list[JobRow]
    levels: list[LevelSla]


# ---------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------


class StoreFigures(Shape, kw_only=True):
    commits: Count
    changes: Count
    last_commit_ms: float | None


class EventFigures(Shape, kw_only=True):
    last_seq: Count
    subscribers: Count


class Health(Shape, kw_only=True):
    status: str
    version: str
    uptime_s: Seconds
    instance: str
    pid: int
    socket: str
    data_dir: str
    drop_dir: str
    workers: Count
    queued: Count
    in_flight: Count
    store: StoreFigures
    events: EventFigures


# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------


class ClusterNode(Shape, kw_only=True):
    """One node: its worker slots, how many are busy, how fresh its heartbeat is."""

    node_id: str
    host: str
    slots: Count
    busy: Count
    heartbeat_age_s: Seconds
    leader: bool
    version: str = ""


class ClusterRedis(Shape, kw_only=True):
    """The cluster's Redis, and whether it keeps every acknowledged request."""

    url: str
    version: str
    appendonly: bool
    appendfsync: str
    durable: bool
    used_memory: str
    ops_per_s: Count
    warning: str = ""


class ClusterStatus(Shape, kw_only=True):
    """`GET /v1/cluster`: embedded mode is a cluster of one with no Redis."""

    mode: Literal["cluster", "embedded"]
    cluster: str | None
    node_id: str
    leader: str | None
    epoch: Count
    nodes: list[ClusterNode]
    redis: ClusterRedis | None


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


class RuleView(Shape, kw_only=True):
    """A priority rule (`PriorityRule`)."""

    mirrors: ClassVar[str] = "PriorityRule"
    rule_id: Id
    name: str
    description: str
    condition: str
    priority_score: Score
    is_active: bool
    created_at: datetime
    updated_at: datetime
    version: Annotated[int, Meta(ge=1)]


class SavedRule(RuleView, kw_only=True):
    """A rule just saved, with what the condition compiler noticed."""

    extras: ClassVar[frozenset[str]] = frozenset({"metadata_names", "notes"})

    metadata_names: list[str] = []
    notes: list[str] = []


class RuleList(Shape, kw_only=True):
    rules: list[RuleView]
    fingerprint: str


class RuleDraft(Shape, forbid_unknown_fields=True, kw_only=True):
    """A new rule (or a candidate in a shadow test)."""

    name: RuleName
    condition: RuleCondition
    priority_score: Score
    description: Annotated[str, Meta(max_length=500)] = ""
    is_active: bool = True


class RuleChange(Shape, forbid_unknown_fields=True, kw_only=True):
    """A change to a rule; only the fields sent change (a new version)."""

    needs_one_of: ClassVar[tuple[str, ...]] = (
        "name",
        "condition",
        "priority_score",
        "description",
        "is_active",
    )

    name: RuleName | None = None
    condition: RuleCondition | None = None
    priority_score: Score | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None
    is_active: bool | None = None


class RuleVersionView(Shape, kw_only=True):
    rule_id: Id
    version: Annotated[int, Meta(ge=1)]
    change: str
    name: str
    description: str
    condition: str
    priority_score: Score
    is_active: bool
    changed_at: datetime


class RuleHistory(Shape, kw_only=True):
    history: list[RuleVersionView]


class ShadowTest(Shape, forbid_unknown_fields=True, kw_only=True):
    rules: list[RuleDraft] = []
    mode: ShadowMode = ShadowMode.MERGE
    limit: Annotated[int, Meta(ge=1, le=5000)] = 500


class MatchedRule(Shape, kw_only=True):
    rule_id: str
    name: str
    version: int
    score: Score


class ShadowSide(Shape, kw_only=True):
    score: Score
    level: PriorityLevel
    matched: list[MatchedRule]
    summary: str


class ShadowChange(Shape, kw_only=True):
    request_id: str
    market_symbol: str
    data_type: GEXDataType
    source_url: str
    requested_at: datetime
    direction: Annotated[str, Meta(description="up (more urgent) or down")]
    before: ShadowSide
    after: ShadowSide


class LevelTransition(Shape, kw_only=True):
    from_level: PriorityLevel = msgspec.field(name="from")
    to_level: PriorityLevel = msgspec.field(name="to")
    requests: Count


class RuleSetFigures(Shape, kw_only=True):
    active: Count
    fingerprint: str


class ShadowRules(Shape, kw_only=True):
    current: RuleSetFigures
    candidate: RuleSetFigures


class ShadowReport(Shape, kw_only=True):
    generated_at: datetime
    requests: Count
    levels_before: dict[PriorityLevel, Count]
    levels_after: dict[PriorityLevel, Count]
    changed: Count
    promoted: Count
    demoted: Count
    score_only_changes: Count
    transitions: list[LevelTransition]
    rules: ShadowRules
    changes: list[ShadowChange]
    mode: ShadowMode


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------


class SourceView(Shape, kw_only=True):
    """A data source (`DataSource`) with its breaker's access."""

    mirrors: ClassVar[str] = "DataSource"
    extras: ClassVar[frozenset[str]] = frozenset({"average_response_time_s", "access"})
    source_id: Id
    base_url: str
    name: str
    total_requests: Count
    successful_requests: Count
    last_successful_fetch: datetime | None
    average_response_time: Seconds | None
    consecutive_failures: Count
    circuit_state: CircuitState
    circuit_opened_at: datetime | None
    manually_disabled: bool
    created_at: datetime
    updated_at: datetime
    is_active: bool
    reliability_score: Score
    average_response_time_s: Seconds | None
    access: SourceAccess


class SourceNotice(SourceView, kw_only=True, omit_defaults=True):
    """A source event's data: the source, and what its breaker or a trader just did."""

    extras: ClassVar[frozenset[str]] = SourceView.extras | {"message"}

    message: str | None = None


class SourceList(Shape, kw_only=True):
    sources: list[SourceView]


class SourceChange(Shape, forbid_unknown_fields=True, kw_only=True):
    """Enable or disable a source (`enabled` is the older spelling of `is_active`)."""

    needs_one_of: ClassVar[tuple[str, ...]] = ("is_active", "enabled")

    is_active: bool | None = None
    enabled: bool | None = None


# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------


class StrikeRow(Shape, kw_only=True):
    """One strike of a snapshot (`GEXStrike`): the seed's fields plus call, put and net GEX."""

    mirrors: ClassVar[str] = "GEXStrike"
    strike_price: Price
    call_open_interest: Count
    put_open_interest: Count
    call_volume: Count
    put_volume: Count
    call_bid: Seconds
    call_ask: Seconds
    put_bid: Seconds
    put_ask: Seconds
    gamma: float
    delta: float
    theta: float
    vega: float
    call_gex: float | None
    put_gex: float | None
    net_gex: float | None


class SnapshotSummary(Shape, kw_only=True):
    """A snapshot's levels and provenance, without its strikes."""

    snapshot_id: Id
    job_id: Id
    market_symbol: str
    snapshot_date: Annotated[date, Meta(description="market-local (New York) date")]
    snapshot_time: ClockTime
    snapshot_at: datetime
    spot_price: Price
    gex_unit: GexUnit
    sign_model: SignModel
    gamma_source: GammaSource
    expiry_filter: ExpiryFilter
    total_gex: float
    zero_gamma: Price | None
    zero_gamma_crossings: list[Price]
    call_wall: Price | None
    put_wall: Price | None
    abs_gamma_strike: Price | None
    total_open_interest: Count
    total_volume: Count
    data_quality_score: Score
    processed_at: datetime
    lake_path: str | None = None
    source_format: str | None = None
    rows_read: Count | None = None
    excluded_rows: dict[str, Count] | None = None


class SnapshotView(SnapshotSummary, kw_only=True):
    """A snapshot with its levels and every strike (`GEXSnapshot`)."""

    mirrors: ClassVar[str] = "GEXSnapshot"
    extras: ClassVar[frozenset[str]] = frozenset(
        {"snapshot_at", "lake_path", "source_format", "rows_read", "excluded_rows"}
    )
    strikes: list[StrikeRow]


class SnapshotList(Shape, kw_only=True):
    snapshots: list[SnapshotSummary]


class SnapshotNotice(SnapshotSummary, kw_only=True, omit_defaults=True):
    """The data of a `snapshot.created` event: the summary, the job and its level."""

    priority_level: PriorityLevel | None = None


class GexPoint(Shape, kw_only=True):
    snapshot_at: datetime
    total_gex: float


class GexHistory(Shape, kw_only=True):
    symbol: str
    points: list[GexPoint]


# ---------------------------------------------------------------------------
# SQL and admin
# ---------------------------------------------------------------------------


class QueryBody(Shape, forbid_unknown_fields=True, kw_only=True):
    sql: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100_000,
            description="one read-only SELECT (or WITH ... SELECT) in DuckDB's SQL",
            examples=["SELECT priority_level, count(*) AS jobs FROM processing_jobs GROUP BY 1"],
            extra_json_schema={"format": "sql-select"},
        ),
    ]
    limit: Annotated[int, Meta(ge=1, le=100_000)] = 1000


class QueryResult(Shape, kw_only=True):
    columns: list[str]
    rows: list[list[Any]]
    row_count: Count
    truncated: bool


class ArchiveResult(Shape, kw_only=True):
    cutoff: datetime
    jobs: Count
    events: Count
    requests: Count
    files: list[str]


class LakeRebuildResult(Shape, kw_only=True):
    """What a rebuild of this node's DuckDB from the Parquet lake found and did."""

    lake: str
    files: Count  # snapshot files in the lake
    added: Count  # snapshots put back into this node's database
    present: Count  # already there
    without_record: list[str]  # written before lake files carried their snapshot
    unreadable: list[str]  # "path: why"; left where they are


# ---------------------------------------------------------------------------
# The drop folder's receipts and rejection reports (files beside the dropped file)
# ---------------------------------------------------------------------------


class ReceiptEntry(Shape, kw_only=True, omit_defaults=True):
    """One request a drop file created (a receipt recovered after a crash has fewer facts)."""

    request_id: Id
    job_id: Id
    market_symbol: str
    priority_level: PriorityLevel
    priority_score: Score | None = None
    deadline: datetime | None = None
    estimated_processing_time_s: Seconds | None = None
    at_risk: bool | None = None
    at_risk_reason: str | None = None
    replayed: bool = False  # its idempotency key was used before: this is the first job


class DropReceipt(Shape, kw_only=True, omit_defaults=True):
    """`<name>.receipt.json` beside a file moved to processed/."""

    file: str
    accepted_at: datetime | None
    requests: list[ReceiptEntry]
    sha256: str | None = None
    format: str | None = None
    recovered: str | None = None  # set when the receipt was written after a crash


class DropRejection(Shape, kw_only=True):
    """`<name>.error.json` beside a file moved to rejected/: what was wrong and where."""

    file: str
    moved_to: str
    rejected_at: datetime
    error: ErrorInfo


class DropNotice(Shape, kw_only=True):
    """A `drop.rejected` event's data."""

    file: str  # the file's name
    error: ErrorInfo


class DaemonNotice(Shape, kw_only=True):
    """A `daemon.started` / `daemon.stopping` event's data."""

    instance: str
    version: str


# ---------------------------------------------------------------------------
# The event stream
# ---------------------------------------------------------------------------


class DeskState(Shape, kw_only=True):
    """Everything a dashboard needs to draw itself (the event stream's first message)."""

    health: Health
    queues: Queues
    jobs: list[JobRow]
    recent: list[JobRow]
    sources: list[SourceView]
    rules: list[RuleView]
    snapshots: list[SnapshotSummary]


class StateMessage(Shape, tag="snapshot", tag_field="type", kw_only=True):
    seq: Count
    at: datetime
    state: DeskState


class EventMessage(Shape, kw_only=True):
    """One numbered event; `data` is the shape `EVENT_DATA` names for its type."""

    seq: Count
    type: EventType
    at: datetime
    data: dict[str, Any]


class ResyncRequest(Shape, tag="resync", tag_field="type", kw_only=True):
    """What a client sends on the event stream to ask for a fresh state."""


EVENT_DATA: dict[EventType, type[Shape] | None] = {
    **{
        t: JobNotice
        for t in EventType
        if t.family in ("job", "sla")  # every job.* and sla.* event carries the job's row
    },
    EventType.SNAPSHOT_CREATED: SnapshotNotice,
    **{t: SourceNotice for t in EventType if t.family == "source"},
    **{t: RuleView for t in EventType if t.family == "rule"},
    EventType.DAEMON_STARTED: DaemonNotice,
    EventType.DAEMON_STOPPING: DaemonNotice,
    EventType.DROP_REJECTED: DropNotice,
    EventType.RESYNC: None,
}
"""The shape of each event type's `data` (the resync marker's is a small free-form object)."""
