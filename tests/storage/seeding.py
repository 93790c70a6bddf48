"""What the storage tests and benches seed a store with: a data directory's layout, queued jobs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gexdaemon.core.models import DomainContext, JobEvent, PriorityRequest, ProcessingJob
from gexdaemon.storage.store import StoreOptions


def store_options(data_dir: Path, **kw: Any) -> StoreOptions:
    """The daemon's layout of a data directory: gex.duckdb, the gex/ lake and archive/."""
    return StoreOptions(
        path=data_dir / "gex.duckdb",
        lake_dir=data_dir / "gex",
        archive_dir=data_dir / "archive",
        **kw,
    )


def queued_job(
    source_url: str,
    at: datetime,
    *,
    context: DomainContext,
    data_type: str = "snapshot",
    symbol: str = "SPX",
    score: float = 0.5,
    level: str = "medium",
    queued_at: datetime | None = None,
) -> tuple[PriorityRequest, ProcessingJob, JobEvent]:
    """A request scored `level` at `at`, its new job (QUEUED at `at` unless `queued_at` says
    later) and that job's first event."""
    request = PriorityRequest.parse(
        {
            "source_url": source_url,
            "data_type": data_type,
            "market_symbol": symbol,
            "requested_at": at,
            "priority_score": score,
            "priority_level": level,
        },
        context=context,
    )
    job, queued = ProcessingJob.for_request(request, queued_at or at, context=context)
    return request, job, queued
