"""Domain values as wire shapes: the one place a model becomes a `gexdaemon.protocol.shapes` Struct.

The API answers, the event stream and the CLI's `--json` all go through here,
so a job, a request, a rule, a source or a snapshot leaves the daemon in one
shape whatever asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

import msgspec

from gexdaemon.core import breaker
from gexdaemon.core.models import (
    DataSource,
    JobEvent,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
    base_url_of,
)
from gexdaemon.core.rulebook import RuleVersion
from gexdaemon.core.vocab import GEXDataType, JobStatus, Origin, Phase, PriorityLevel, SlaStatus
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.protocol import shapes as s

S = TypeVar("S", bound=s.Shape)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _from_model(model: Any, shape: type[S], **extra: Any) -> S:
    """A pydantic model's JSON form as `shape` (names are held equal by tests/protocol)."""
    data = model.model_dump(mode="json")
    data.update(extra)
    return msgspec.convert(data, shape)


# -- jobs --------------------------------------------------------------------------


def job_row(live: LiveJob) -> s.JobRow:
    """A live (or just finished) job as listings, the dashboard and events show it."""
    j, r = live.job, live.request
    return s.JobRow(
        job_id=str(j.job_id),
        request_id=str(r.request_id),
        status=j.status,
        priority_level=j.priority_level,
        priority_score=r.priority_score,
        market_symbol=r.market_symbol,
        data_type=r.data_type,
        source_url=r.source_url,
        source=live.source_key,
        origin=r.origin,
        requested_at=r.requested_at,
        queued_at=j.queued_at,
        started_at=j.started_at,
        completed_at=j.completed_at,
        deadline=j.deadline,
        sla_status=j.sla_status,
        at_risk=j.at_risk,
        at_risk_reason=live.at_risk_reason or None,
        retry_count=j.retry_count,
        error_message=j.error_message,
        dispatch_phase=j.dispatch_phase,  # type: ignore[arg-type]  # a Phase value, as stored
        next_attempt_at=j.next_attempt_at,
        estimated_processing_time_s=live.estimate_s,
        processing_duration_s=_seconds(j.processing_duration),
        records_processed=j.records_processed,
        snapshot_id=live.snapshot_id,
    )


def job_notice(live: LiveJob, **facts: Any) -> s.JobNotice:
    """A job event's data: the job's row plus what happened (`reason`, `ran_s`, ...)."""
    row = job_row(live)
    return s.JobNotice(**{name: getattr(row, name) for name in row.__struct_fields__}, **facts)


def stored_job_row(
    request: PriorityRequest,
    job: ProcessingJob,
    *,
    snapshot_id: str | None = None,
    at_risk_reason: str | None = None,
) -> s.JobRow:
    """A job read from the store (history, listings) in the same shape as a live one."""
    estimate = request.estimated_processing_time.total_seconds()
    live = LiveJob(
        request=request,
        job=job,
        source_key=base_url_of(request.source_url),
        estimate_s=estimate,
        enqueued_mono=0.0,
        deadline_mono=None,
        snapshot_id=snapshot_id,
        at_risk_reason=at_risk_reason or "",
    )
    return job_row(live)


def listed_job(row: Mapping[str, Any]) -> s.JobRow:
    """A job listing's row (a join of processing_jobs and priority_requests) as a JobRow."""
    estimate = row.get("estimated_processing_time")
    duration = row.get("processing_duration")
    snapshot = row.get("snapshot_id")
    return s.JobRow(
        job_id=str(row["job_id"]),
        request_id=str(row["request_id"]),
        status=JobStatus(row["status"]),
        priority_level=PriorityLevel(row["priority_level"]),
        priority_score=row["priority_score"],
        market_symbol=row["market_symbol"],
        data_type=GEXDataType(row["data_type"]),
        source_url=row["source_url"],
        source=base_url_of(row["source_url"]),
        origin=Origin(row["origin"]),
        requested_at=row["requested_at"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        deadline=row["deadline"],
        sla_status=SlaStatus(row["sla_status"]),
        at_risk=bool(row["at_risk"]),
        retry_count=row["retry_count"],
        error_message=row["error_message"],
        dispatch_phase=Phase(row["dispatch_phase"]) if row["dispatch_phase"] else None,
        next_attempt_at=row["next_attempt_at"],
        estimated_processing_time_s=_seconds(estimate) or 0.0,
        processing_duration_s=_seconds(duration),
        records_processed=row["records_processed"],
        snapshot_id=str(snapshot) if snapshot is not None else None,
    )


def job_view(job: ProcessingJob) -> s.JobView:
    return _from_model(job, s.JobView)


def job_event(event: JobEvent) -> s.JobEventView:
    return _from_model(event, s.JobEventView)


def request_view(request: PriorityRequest, jobs: list[s.JobBrief] | None = None) -> s.RequestView:
    return _from_model(request, s.RequestView, jobs=jobs or [])


def job_brief(job: ProcessingJob) -> s.JobBrief:
    return s.JobBrief(
        job_id=str(job.job_id),
        status=job.status,
        priority_level=job.priority_level,
        retry_count=job.retry_count,
        sla_status=job.sla_status,
    )


def accepted(live: LiveJob, at_risk_reason: str, *, explain: bool) -> s.Accepted:
    """The receipt of an accepted request; a batch leaves the explanation out."""
    return _receipt(
        live.request,
        live.job,
        level=live.request.priority_level,
        estimate_s=live.estimate_s,
        at_risk_reason=at_risk_reason,
        explain=explain,
    )


def accepted_stored(request: PriorityRequest, job: ProcessingJob, *, explain: bool) -> s.Accepted:
    """The receipt of a request accepted earlier whose job is no longer live (a key's repeat)."""
    return _receipt(
        request,
        job,
        level=job.priority_level,
        estimate_s=request.estimated_processing_time.total_seconds(),
        at_risk_reason="",
        explain=explain,
    )


def _receipt(
    request: PriorityRequest,
    job: ProcessingJob,
    *,
    level: PriorityLevel,
    estimate_s: float,
    at_risk_reason: str,
    explain: bool,
) -> s.Accepted:
    return s.Accepted(
        request_id=str(request.request_id),
        job_id=str(job.job_id),
        market_symbol=request.market_symbol,
        priority_score=request.priority_score,
        priority_level=level,
        deadline=job.deadline,
        estimated_processing_time_s=estimate_s,
        at_risk=job.at_risk,
        at_risk_reason=at_risk_reason or None,
        explanation=dict(request.explanation) if explain else None,
    )


# -- rules and sources -----------------------------------------------------------------


def rule_view(rule: PriorityRule) -> s.RuleView:
    return _from_model(rule, s.RuleView)


def saved_rule(rule: PriorityRule, *, metadata_names: list[str], notes: list[str]) -> s.SavedRule:
    return _from_model(rule, s.SavedRule, metadata_names=metadata_names, notes=notes)


def rule_version(version: RuleVersion) -> s.RuleVersionView:
    return msgspec.convert(version.as_dict(), s.RuleVersionView)


def source_view(source: DataSource) -> s.SourceView:
    return _source(source, s.SourceView)


def source_notice(source: DataSource, message: str = "") -> s.SourceNotice:
    return _source(source, s.SourceNotice, message=message or None)


def _source(source: DataSource, shape: type[S], **extra: Any) -> S:
    return _from_model(
        source,
        shape,
        average_response_time_s=_seconds(source.average_response_time),
        access=breaker.access(source).value,
        **extra,
    )


# -- snapshots ---------------------------------------------------------------------------


def snapshot_summary(row: Mapping[str, Any]) -> s.SnapshotSummary:
    """A `gex_snapshots` row (as computed or as stored) as the wire summary."""
    fields = s.SnapshotSummary.__struct_fields__
    return msgspec.convert(_row_builtins(row, fields), s.SnapshotSummary)


def snapshot_view(row: Mapping[str, Any]) -> s.SnapshotView:
    """A snapshot row with its `strikes`."""
    return msgspec.convert(_row_builtins(row, s.SnapshotView.__struct_fields__), s.SnapshotView)


def _row_builtins(row: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A snapshot row's values as JSON values (the excluded-rows column is JSON text)."""
    data = {k: v for k, v in row.items() if k in fields}
    if isinstance(data.get("excluded_rows"), str):
        data["excluded_rows"] = msgspec.json.decode(data["excluded_rows"])
    out: dict[str, Any] = msgspec.to_builtins(data)
    return out


def snapshot_notice(summary: s.SnapshotSummary, live: LiveJob) -> s.SnapshotNotice:
    return s.SnapshotNotice(
        **{name: getattr(summary, name) for name in summary.__struct_fields__},
        priority_level=live.job.priority_level,
    )
