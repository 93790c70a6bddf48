"""Every operation of the socket API, declared once: method, path, body, query and answers.

The server registers its handlers against these routes (and refuses to start if
one is missing), the client calls them by route, and the OpenAPI document is
generated from them. Error answers are documented per route from what the route
can actually meet (a body, an id in the path, a state change, a write).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from msgspec import Meta

from gexdaemon.core.vocab import ExpiryFilter, JobStatus, PriorityLevel
from gexdaemon.protocol import shapes as s

JSON: Final = "application/json"
TEXT: Final = "text/plain"
BYTES: Final = "application/octet-stream"

Limit50 = Annotated[int, Meta(ge=1, le=1000)]
Symbol = Annotated[
    str, Meta(min_length=1, max_length=10, pattern=r"^[A-Za-z_^$][A-Za-z0-9._/^-]*$")
]


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
SubmissionList = Annotated[list[s.RequestSubmission], Meta(min_length=1)]


class JobFilter(s.Shape, forbid_unknown_fields=True, kw_only=True):
    status: JobStatus | None = None
    level: PriorityLevel | None = None
    symbol: Symbol | None = None
    limit: Limit50 = 50
    cursor: (
        Annotated[
            str,
            Meta(
                pattern=UUID_PATTERN,
                description="next_cursor of the previous page",
                extra_json_schema={"format": "uuid"},
            ),
        ]
        | None
    ) = None


class SnapshotFilter(s.Shape, forbid_unknown_fields=True, kw_only=True):
    symbol: Symbol | None = None
    date: Annotated[dt.date, Meta(description="market date (New York), YYYY-MM-DD")] | None = None
    limit: Limit50 = 50


class LatestQuery(s.Shape, forbid_unknown_fields=True, kw_only=True):
    symbol: Symbol
    expiry_filter: ExpiryFilter | None = None


class HistoryQuery(s.Shape, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=5000)] = 200


class IngestQuery(s.Shape, forbid_unknown_fields=True, kw_only=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255)] = "upload"
    symbol: s.MarketSymbol | None = None
    level: PriorityLevel | None = None


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str
    uuid: bool = False  # an id this daemon issued (a UUID); otherwise free text


JOB_ID = PathParam("id", "a job id", uuid=True)
REQUEST_ID = PathParam("id", "a request id", uuid=True)
SNAPSHOT_ID = PathParam("id", "a snapshot id", uuid=True)
RULE_REF = PathParam("id", "a rule's id or name")
SOURCE_REF = PathParam("id", "a source's id, base URL or host")
SYMBOL = PathParam("symbol", "an underlying symbol, e.g. SPX")


@dataclass(frozen=True)
class HeaderParam:
    name: str
    description: str
    max_length: int = 200
    pattern: str = "^[!-~]+$"  # visible ASCII


@dataclass(frozen=True)
class Route:
    name: str  # the operation id; the client method and the handler share it
    method: str
    path: str
    summary: str
    answer: Any  # the success shape (a Shape type, a union of them, or None for no schema)
    status: int = 200
    body: Any = None  # the request body's shape, or BYTES for an upload
    query: type[s.Shape] | None = None
    params: tuple[PathParam, ...] = ()
    content: str = JSON  # the success answer's media type
    conflicts: bool = False  # can answer 409 (a state that does not allow the change)
    writes: bool = False  # refused with 503 while the daemon shuts down
    links: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # name -> (route, $response path)
    # Other success statuses with the same answer shape: status -> when.
    also: dict[int, str] = field(default_factory=dict)
    headers: tuple[HeaderParam, ...] = ()  # request headers the route reads
    # Error statuses the route meets beyond those its body, path and flags imply.
    refusals: tuple[int, ...] = ()

    def url(self, **values: Any) -> str:
        """The path with its parameters filled in (quoted)."""
        return self.path.format(
            **{k: urllib.parse.quote(str(v), safe="") for k, v in values.items()}
        )

    @property
    def error_statuses(self) -> tuple[int, ...]:
        found = {403, 405}
        if self.body is not None:
            found |= {400, 408, 413, 422}
        if self.query is not None:
            found.add(422)
        if self.params:
            found.add(404)
        if self.conflicts:
            found.add(409)
        if self.writes:
            found.add(503)
        found.update(self.refusals)
        return tuple(sorted(found))


# What a new job's receipt leads to: the job, what can be done to it, and its request.
JOB_LINKS: Final = {
    **{name: (name, "$response.body#/job_id") for name in ("job", "cancel", "retry", "set_level")},
    "request": ("request", "$response.body#/request_id"),
}

HEALTH = Route(
    "health", "GET", "/v1/health", "Daemon health, version, uptime, queue totals", s.Health
)
SUBMIT = Route(
    "submit",
    "POST",
    "/v1/requests",
    'Submit one request, a list, or {"requests": [...]}; 201 = durably committed; '
    "a batch is all or nothing; an idempotency key's repeat within 24 h answers with "
    "the first job",
    s.Accepted | s.AcceptedBatch,
    status=201,
    body=s.RequestSubmission | s.RequestBatch | SubmissionList,
    writes=True,
    conflicts=True,
    also={200: "every request was made before under its idempotency key: the first jobs"},
    headers=(
        HeaderParam(
            "Idempotency-Key",
            "a repeat within 24 h returns the first job; a key used for another request is a "
            "409; in a batch, entry i's key is <key>#<i>; a request (or entry) that carries "
            "its own idempotency_key keeps it",
        ),
    ),
    links=JOB_LINKS,
)
GET_REQUEST = Route(
    "request",
    "GET",
    "/v1/requests/{id}",
    "A request with its jobs",
    s.RequestView,
    params=(REQUEST_ID,),
)
LIST_JOBS = Route("jobs", "GET", "/v1/jobs", "Jobs, newest first", s.JobPage, query=JobFilter)
GET_JOB = Route(
    "job",
    "GET",
    "/v1/jobs/{id}",
    "A job with its request, its state history and its live row",
    s.JobDetail,
    params=(JOB_ID,),
    links={
        **{name: (name, "$response.body#/job/job_id") for name in ("cancel", "retry")},
        "request": ("request", "$response.body#/job/request_id"),
    },
)
CHANGE_JOB = Route(
    "set_level",
    "PATCH",
    "/v1/jobs/{id}",
    "Move a QUEUED job to another level (a bump); its deadline runs from the bump",
    s.JobRow,
    body=s.JobChange,
    params=(JOB_ID,),
    conflicts=True,
    writes=True,
)
CANCEL_JOB = Route(
    "cancel",
    "POST",
    "/v1/jobs/{id}/cancel",
    "Cancel a QUEUED or PROCESSING job (409 once it has finished)",
    s.JobRow,
    params=(JOB_ID,),
    conflicts=True,
    writes=True,
)
RETRY_JOB = Route(
    "retry",
    "POST",
    "/v1/jobs/{id}/retry",
    "Retry a FAILED job (409 in any other state)",
    s.JobRow,
    params=(JOB_ID,),
    conflicts=True,
    writes=True,
)
QUEUES = Route(
    "queues",
    "GET",
    "/v1/queues",
    "Per level: depth, in flight, oldest wait, next deadline, SLA figures; workers; sources",
    s.Queues,
)
SLA = Route(
    "sla", "GET", "/v1/sla", "Breached jobs (how late), jobs at risk, SLA figures", s.SlaReport
)
LIST_RULES = Route("rules", "GET", "/v1/rules", "Priority rules", s.RuleList)
CREATE_RULE = Route(
    "create_rule",
    "POST",
    "/v1/rules",
    "Create a rule (its condition is checked at save time)",
    s.SavedRule,
    status=201,
    body=s.RuleDraft,
    conflicts=True,
    writes=True,
    links={
        name: (name, "$response.body#/rule_id")
        for name in ("rule", "update_rule", "delete_rule", "rule_history")
    },
)
TEST_RULES = Route(
    "test_rules",
    "POST",
    "/v1/rules/test",
    "Shadow-test candidate rules on recent requests; nothing is saved",
    s.ShadowReport,
    body=s.ShadowTest,
)
GET_RULE = Route(
    "rule", "GET", "/v1/rules/{id}", "A rule by id or name", s.RuleView, params=(RULE_REF,)
)
UPDATE_RULE = Route(
    "update_rule",
    "PATCH",
    "/v1/rules/{id}",
    "Change a rule's fields (a new version)",
    s.SavedRule,
    body=s.RuleChange,
    params=(RULE_REF,),
    conflicts=True,
    writes=True,
)
DELETE_RULE = Route(
    "delete_rule",
    "DELETE",
    "/v1/rules/{id}",
    "Delete a rule (its history stays readable)",
    s.RuleView,
    params=(RULE_REF,),
    writes=True,
)
RULE_HISTORY = Route(
    "rule_history",
    "GET",
    "/v1/rules/{id}/history",
    "Every version of a rule, deleted rules included",
    s.RuleHistory,
    params=(RULE_REF,),
)
LIST_SOURCES = Route(
    "sources",
    "GET",
    "/v1/sources",
    "Data sources: reliability, response time, circuit",
    s.SourceList,
)
CHANGE_SOURCE = Route(
    "set_source_active",
    "PATCH",
    "/v1/sources/{id}",
    'Enable or disable a source: {"is_active": true|false}',
    s.SourceView,
    body=s.SourceChange,
    params=(SOURCE_REF,),
    writes=True,
)
LIST_SNAPSHOTS = Route(
    "snapshots",
    "GET",
    "/v1/snapshots",
    "Snapshots, newest first (levels only)",
    s.SnapshotList,
    query=SnapshotFilter,
)
LATEST_SNAPSHOT = Route(
    "latest_snapshot",
    "GET",
    "/v1/snapshots/latest",
    "The latest snapshot of a symbol (by the chain's market time), with strikes",
    s.SnapshotView,
    query=LatestQuery,
    refusals=(404,),  # no snapshot of the symbol yet
    links={
        "snapshot": ("snapshot", "$response.body#/snapshot_id"),
        "job": ("job", "$response.body#/job_id"),
        "gex_history": ("gex_history", "$response.body#/market_symbol"),
    },
)
GET_SNAPSHOT = Route(
    "snapshot",
    "GET",
    "/v1/snapshots/{id}",
    "A snapshot with its levels and strikes",
    s.SnapshotView,
    params=(SNAPSHOT_ID,),
)
GEX_HISTORY = Route(
    "gex_history",
    "GET",
    "/v1/gex/{symbol}/history",
    "Total GEX over time for a symbol, oldest first",
    s.GexHistory,
    query=HistoryQuery,
    params=(SYMBOL,),
)
QUERY = Route(
    "query",
    "POST",
    "/v1/query",
    "Read-only SQL over the daemon's DuckDB: one SELECT",
    s.QueryResult,
    body=s.QueryBody,
)
INGEST = Route(
    "ingest_bytes",
    "POST",
    "/v1/ingest",
    "Upload a chain file (the body is the file's bytes) and queue it as a snapshot request",
    s.IngestAccepted,
    status=201,
    body=BYTES,
    query=IngestQuery,
    writes=True,
    links={
        **JOB_LINKS,
        "latest_snapshot": ("latest_snapshot", "$response.body#/market_symbol"),
    },
)
ARCHIVE = Route(
    "archive",
    "POST",
    "/v1/admin/archive",
    "Archive finished jobs older than the retention to Parquet",
    s.ArchiveResult,
    writes=True,
)
REBUILD_LAKE = Route(
    "rebuild_lake",
    "POST",
    "/v1/admin/lake/rebuild",
    "Put every snapshot the Parquet lake holds and this node's database does not back into it",
    s.LakeRebuildResult,
    writes=True,
)
EVENTS = Route(
    "events",
    "GET",
    "/v1/events",
    "WebSocket: a state message, then numbered events (job.*, sla.*, snapshot.created, "
    'source.*, rule.*); send {"type": "resync"} for a fresh state',
    None,
    status=101,
    refusals=(400,),  # a plain GET, not a WebSocket upgrade
)
CLUSTER = Route(
    "cluster",
    "GET",
    "/v1/cluster",
    "The cluster: mode, leader and epoch, nodes with their slots and heartbeats, and Redis "
    "(embedded mode: a cluster of one, no Redis)",
    s.ClusterStatus,
)
METRICS = Route("metrics", "GET", "/metrics", "Prometheus text format", None, content=TEXT)
OPENAPI = Route("openapi", "GET", "/v1/openapi.json", "This document (OpenAPI 3.1)", dict[str, Any])

ROUTES: tuple[Route, ...] = (
    HEALTH,
    SUBMIT,
    GET_REQUEST,
    LIST_JOBS,
    GET_JOB,
    CHANGE_JOB,
    CANCEL_JOB,
    RETRY_JOB,
    QUEUES,
    SLA,
    LIST_RULES,
    CREATE_RULE,
    TEST_RULES,
    GET_RULE,
    UPDATE_RULE,
    DELETE_RULE,
    RULE_HISTORY,
    LIST_SOURCES,
    CHANGE_SOURCE,
    LIST_SNAPSHOTS,
    LATEST_SNAPSHOT,
    GET_SNAPSHOT,
    GEX_HISTORY,
    QUERY,
    INGEST,
    ARCHIVE,
    REBUILD_LAKE,
    EVENTS,
    CLUSTER,
    METRICS,
    OPENAPI,
)
BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
