"""Jobs and their requests as the store holds them: the reads the daemon and its API make.

Every function takes a cursor; run it with `Store.read` (or `read_sync`), for
example `await store.read(load_job, job_id)`. Listings return rows as dicts keyed
by column name, with DuckDB's values (UUIDs, instants, durations): the API turns
them into its wire shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.models import (
    JobEvent,
    JobStatus,
    PriorityLevel,
    PriorityRequest,
    ProcessingJob,
    SlaStatus,
    id_instant,
)
from gexdaemon.storage import rows
from gexdaemon.storage.snapshots import snapshot_id_of_job
from gexdaemon.storage.store import Connection, fetch_dicts

MAX_RECENT_REQUESTS = 100_000

JOB_LIST_COLUMNS = (
    "j.job_id, j.request_id, j.status, j.priority_level, j.queued_at, j.started_at, j.completed_at, "
    "j.processing_duration, j.retry_count, j.error_message, j.deadline, j.sla_status, j.at_risk, "
    "j.dispatch_phase, j.records_processed, j.next_attempt_at, r.market_symbol, r.data_type, "
    "r.source_url, r.priority_score, r.origin, r.requested_at, r.estimated_processing_time, "
    "g.snapshot_id"
)
_JOBS_WITH_REQUESTS = (
    "FROM processing_jobs j JOIN priority_requests r USING (request_id) "
    "LEFT JOIN gex_snapshots g ON g.job_id = j.job_id"
)


def load_job(cur: Connection, job_id: uuid.UUID) -> ProcessingJob | None:
    found = fetch_dicts(cur, rows.JOBS.select_sql() + " WHERE job_id = ?", (str(job_id),))
    return rows.job_from_row(found[0]) if found else None


def load_request(cur: Connection, request_id: uuid.UUID) -> PriorityRequest | None:
    found = fetch_dicts(
        cur, rows.REQUESTS.select_sql() + " WHERE request_id = ?", (str(request_id),)
    )
    return rows.request_from_row(found[0]) if found else None


def last_event_seqs(cur: Connection, job_ids: Sequence[str]) -> dict[str, int]:
    """The last history entry's number of each job (1: only its derived creation)."""
    if not job_ids:
        return {}
    marks = ", ".join("?" for _ in job_ids)
    found = cur.execute(
        f"SELECT CAST(job_id AS VARCHAR), max(seq) FROM job_events WHERE job_id IN ({marks}) "
        "GROUP BY job_id",
        list(job_ids),
    ).fetchall()
    last = dict.fromkeys(job_ids, 1)
    last.update({job_id: int(seq) for job_id, seq in found})
    return last


def job_history(cur: Connection, job_id: uuid.UUID) -> list[JobEvent]:
    """A job's state changes in order, its creation first (derived, see `PutJob`)."""
    found = fetch_dicts(
        cur,
        rows.EVENTS.select_sql() + " WHERE job_id = ? ORDER BY seq",
        (str(job_id),),
    )
    events = [rows.event_from_row(r) for r in found]
    if events and events[0].seq == 1:
        return events  # written by a build that stored the creation event
    job = fetch_dicts(
        cur, "SELECT requested_at FROM processing_jobs_all WHERE job_id = ?", (str(job_id),)
    )
    if job:
        created = id_instant(job_id) or job[0]["requested_at"]
        events.insert(
            0,
            JobEvent.model_construct(
                job_id=job_id,
                seq=1,
                occurred_at=created,
                from_status=None,
                to_status=JobStatus.QUEUED,
                reason="submitted",
            ),
        )
    return events


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job with its request, its history and the snapshot it produced, if any."""

    job: ProcessingJob
    request: PriorityRequest | None
    history: list[JobEvent]
    snapshot_id: uuid.UUID | None


def job_detail(cur: Connection, job_id: uuid.UUID) -> JobDetail | None:
    """Everything stored about one unarchived job, read in one go; None if there is no such job."""
    job = load_job(cur, job_id)
    if job is None:
        return None
    return JobDetail(
        job=job,
        request=load_request(cur, job.request_id),
        history=job_history(cur, job_id),
        snapshot_id=snapshot_id_of_job(cur, job_id),
    )


def jobs_of_request(cur: Connection, request_id: uuid.UUID) -> list[dict[str, Any]]:
    """A request's jobs, archived ones included, in id order, with their state in brief."""
    return fetch_dicts(
        cur,
        "SELECT job_id, status, priority_level, retry_count, sla_status FROM processing_jobs_all "
        "WHERE request_id = ? ORDER BY job_id",
        (str(request_id),),
    )


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job listing, newest job first (rows keyed by `JOB_LIST_COLUMNS`)."""

    jobs: list[dict[str, Any]]
    more: bool  # older jobs match too: the next page starts below the last job's id


def job_page(
    cur: Connection,
    *,
    status: JobStatus | None,
    level: PriorityLevel | None,
    symbol: str | None,
    before: uuid.UUID | None,
    limit: int,
) -> JobPage:
    """Unarchived jobs with their requests' fields, filtered, newest (highest id) first."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append("j.status = ?")
        params.append(status.value)
    if level is not None:
        clauses.append("j.priority_level = ?")
        params.append(level.value)
    if symbol:
        clauses.append("r.market_symbol = ?")
        params.append(symbol)
    if before is not None:
        clauses.append("j.job_id < CAST(? AS UUID)")
        params.append(str(before))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    found = fetch_dicts(
        cur,
        f"SELECT {JOB_LIST_COLUMNS} {_JOBS_WITH_REQUESTS}{where} ORDER BY j.job_id DESC LIMIT ?",
        [*params, limit + 1],
    )
    return JobPage(jobs=found[:limit], more=len(found) > limit)


def sla_breaches(cur: Connection, limit: int) -> list[dict[str, Any]]:
    """Unarchived jobs that breached their SLA, latest deadline first (rows as `job_page`)."""
    return fetch_dicts(
        cur,
        f"SELECT {JOB_LIST_COLUMNS} {_JOBS_WITH_REQUESTS} "
        "WHERE j.sla_status = 'breached' ORDER BY j.deadline DESC LIMIT ?",
        (limit,),
    )


def load_unfinished(cur: Connection) -> list[tuple[PriorityRequest, ProcessingJob]]:
    """Every QUEUED or PROCESSING job with its request, in id order: what a start recovers."""
    found = fetch_dicts(
        cur,
        "SELECT "
        + ", ".join(f"j.{c}" for c in rows.JOBS.column_names)
        + ", "
        + ", ".join(f"r.{c} AS r_{c}" for c in rows.REQUESTS.column_names)
        + f" {_JOBS_WITH_REQUESTS} WHERE j.status IN ('queued', 'processing') ORDER BY j.job_id",
    )
    return [
        (
            rows.request_from_row({c: row[f"r_{c}"] for c in rows.REQUESTS.column_names}),
            rows.job_from_row({c: row[c] for c in rows.JOBS.column_names}),
        )
        for row in found
    ]


def jobs_for_source_url(cur: Connection, source_url: str) -> list[dict[str, Any]]:
    """The requests made for one source URL and their jobs, ids as text, as a drop receipt lists them."""
    return fetch_dicts(
        cur,
        "SELECT CAST(r.request_id AS VARCHAR) AS request_id, "
        "CAST(j.job_id AS VARCHAR) AS job_id, r.market_symbol, r.priority_level "
        "FROM priority_requests r JOIN processing_jobs j USING (request_id) "
        "WHERE r.source_url = ? ORDER BY j.job_id",
        (source_url,),
    )


def recent_requests(cur: Connection, limit: int) -> list[PriorityRequest]:
    """The `limit` most recently requested stored requests, newest first (for shadow tests)."""
    if not 1 <= limit <= MAX_RECENT_REQUESTS:
        raise InvalidInput.from_problems(
            "shadow test",
            [
                Problem(
                    path="limit",
                    message=f"must be between 1 and {MAX_RECENT_REQUESTS} (got {limit})",
                )
            ],
        )
    found = fetch_dicts(
        cur,
        rows.REQUESTS.select_sql() + " ORDER BY requested_at DESC, request_id LIMIT ?",
        (limit,),
    )
    return [rows.request_from_row(r) for r in found]


@dataclass(frozen=True, slots=True)
class SlaRecord:
    """The SLA record the daemon's figures start from (so they survive a restart)."""

    finished: list[tuple[PriorityLevel, datetime, SlaStatus]]  # since the window start
    breaches: list[tuple[PriorityLevel, datetime]]  # SLAs missed since the window start, and when
    # Per level, over every job ever finished (archived too): met, breached, flagged at
    # risk and met or missed, flagged and missed.
    totals: dict[PriorityLevel, tuple[int, int, int, int]]


def sla_record(cur: Connection, since: datetime) -> SlaRecord:
    finished = [
        (PriorityLevel(r["priority_level"]), r["completed_at"], SlaStatus(r["sla_status"]))
        for r in fetch_dicts(
            cur,
            "SELECT priority_level, completed_at, sla_status FROM processing_jobs_all "
            "WHERE status IN ('completed', 'failed') AND completed_at >= ? ORDER BY completed_at",
            (since,),
        )
    ]
    breaches = [
        (PriorityLevel(r["priority_level"]), r["deadline"])
        for r in fetch_dicts(
            cur,
            # A breach happens when the deadline passes unfinished, or earlier when the job
            # fails for good: whichever came first.
            "SELECT priority_level, least(deadline, coalesce(completed_at, deadline)) AS deadline "
            "FROM processing_jobs_all WHERE sla_status = 'breached' "
            "AND least(deadline, coalesce(completed_at, deadline)) >= ? ORDER BY 2",
            (since,),
        )
    ]
    totals = {
        PriorityLevel(r["priority_level"]): (
            r["met"],
            r["breached"],
            r["flagged"],
            r["flagged_missed"],
        )
        for r in fetch_dicts(
            cur,
            "SELECT priority_level, "
            "count(*) FILTER (WHERE sla_status = 'met') AS met, "
            "count(*) FILTER (WHERE sla_status = 'breached') AS breached, "
            "count(*) FILTER (WHERE at_risk AND sla_status IN ('met', 'breached')) AS flagged, "
            "count(*) FILTER (WHERE at_risk AND sla_status = 'breached') AS flagged_missed "
            "FROM processing_jobs_all WHERE status IN ('completed', 'failed') GROUP BY 1",
        )
    }
    return SlaRecord(finished=finished, breaches=breaches, totals=totals)


IdKind = Literal["job", "request", "snapshot"]


@dataclass(frozen=True, slots=True)
class IdMatch:
    """An id that a short form matched, with a few words to tell it from the others."""

    id: uuid.UUID
    summary: str

    def describe(self) -> str:
        return self.summary


# Per kind: where its ids live (archived rows included) and how a match is summarised.
_ID_SOURCES: dict[str, tuple[str, str, str]] = {
    "job": (
        "processing_jobs_all j JOIN priority_requests_all r USING (request_id)",
        "j.job_id",
        "r.market_symbol || ' ' || upper(j.priority_level) || ' ' || upper(j.status) "
        "|| ' queued ' || strftime(j.queued_at, '%Y-%m-%d %H:%M:%S UTC')",
    ),
    "request": (
        "priority_requests_all r",
        "r.request_id",
        "r.market_symbol || ' ' || upper(r.priority_level) "
        "|| ' requested ' || strftime(r.requested_at, '%Y-%m-%d %H:%M:%S UTC')",
    ),
    "snapshot": (
        "gex_snapshots g",
        "g.snapshot_id",
        "g.market_symbol || ' ' || strftime(g.snapshot_at, '%Y-%m-%d %H:%M:%S UTC')",
    ),
}


def ids_matching(cur: Connection, kind: IdKind, hex_text: str, limit: int = 10) -> list[IdMatch]:
    """Ids of `kind` that a short form names: up to 8 hex digits match the start of the short
    id (an id's last 8 hex digits, the random part of a time-ordered id); more digits match
    the start of the whole id. `hex_text` is lower-case hex without dashes."""
    table, column, summary = _ID_SOURCES[kind]
    digits = f"replace(CAST({column} AS VARCHAR), '-', '')"
    where = f"substr({digits}, 25, 8)" if len(hex_text) <= 8 else digits
    found = fetch_dicts(
        cur,
        f"SELECT {column} AS id, {summary} AS summary FROM {table} "
        f"WHERE starts_with({where}, ?) ORDER BY {column} DESC LIMIT ?",
        (hex_text, limit),
    )
    return [IdMatch(uuid.UUID(str(r["id"])), str(r["summary"])) for r in found]
