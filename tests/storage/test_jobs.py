"""Jobs and requests read back from a real DuckDB file: listings, recovery, receipts, shadow
tests, and a trader's read-only SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.models import (
    DomainContext,
    JobStatus,
    PriorityLevel,
    PriorityRequest,
    ProcessingJob,
    SlaStatus,
)
from gexdaemon.storage.jobs import (
    job_detail,
    job_page,
    jobs_for_source_url,
    jobs_of_request,
    load_unfinished,
    recent_requests,
    sla_breaches,
)
from gexdaemon.storage.sql import run_read_only
from gexdaemon.storage.store import PutJob, PutRequest, Store
from tests.storage.seeding import queued_job

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CTX = DomainContext(now=T0)


def submit(store: Store, i: int, *, symbol: str = "SPX", level: str = "medium") -> ProcessingJob:
    request, job, created = queued_job(
        f"https://cdn.cboe.com/x/{i}.json",
        T0 - timedelta(minutes=i),
        context=CTX,
        symbol=symbol,
        level=level,
        queued_at=T0,
    )
    store.commit_sync([PutRequest(request), PutJob(job, created)])
    return job


def test_job_pages_filter_and_continue_below_the_last_id(store: Store) -> None:
    jobs = [submit(store, i, symbol="NDX" if i % 2 else "SPX") for i in range(5)]
    newest_first = sorted((j.job_id for j in jobs), reverse=True)
    first = store.read_sync(job_page, status=None, level=None, symbol=None, before=None, limit=3)
    assert [r["job_id"] for r in first.jobs] == newest_first[:3] and first.more
    rest = store.read_sync(
        job_page, status=None, level=None, symbol=None, before=newest_first[2], limit=3
    )
    assert [r["job_id"] for r in rest.jobs] == newest_first[3:] and not rest.more
    ndx = store.read_sync(
        job_page,
        status=JobStatus.QUEUED,
        level=PriorityLevel.MEDIUM,
        symbol="NDX",
        before=None,
        limit=10,
    )
    assert {r["market_symbol"] for r in ndx.jobs} == {"NDX"} and len(ndx.jobs) == 2
    none = store.read_sync(
        job_page, status=JobStatus.COMPLETED, level=None, symbol=None, before=None, limit=10
    )
    assert none.jobs == [] and not none.more


def test_a_job_in_detail_and_the_jobs_of_its_request(store: Store) -> None:
    job = submit(store, 1)
    detail = store.read_sync(job_detail, job.job_id)
    assert detail is not None
    assert detail.job == job and detail.request is not None
    assert detail.request.request_id == job.request_id
    assert [e.to_status for e in detail.history] == [JobStatus.QUEUED]
    assert detail.snapshot_id is None
    assert store.read_sync(job_detail, uuid.uuid4()) is None
    (brief,) = store.read_sync(jobs_of_request, job.request_id)
    assert brief == {
        "job_id": job.job_id,
        "status": "queued",
        "priority_level": "medium",
        "retry_count": 0,
        "sla_status": job.sla_status.value,
    }


def test_unfinished_jobs_come_back_with_their_requests(store: Store) -> None:
    queued = submit(store, 1)
    done = submit(store, 2)
    running, e1 = done.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1))
    finished, e2 = running.transition(JobStatus.COMPLETED, T0 + timedelta(seconds=2))
    store.commit_sync([PutJob(running, e1, previous=done)])
    store.commit_sync([PutJob(finished, e2, previous=running)])
    found = store.read_sync(load_unfinished)
    assert [(r.request_id, j) for r, j in found] == [(queued.request_id, queued)]


def test_breaches_and_drop_receipts(store: Store) -> None:
    job = submit(store, 3, level="high")
    late = job.evolve(sla_status=SlaStatus.BREACHED)
    store.commit_sync([PutJob(late, previous=job)])
    (breach,) = store.read_sync(sla_breaches, 200)
    assert breach["job_id"] == job.job_id and breach["sla_status"] == "breached"
    assert store.read_sync(jobs_for_source_url, "https://cdn.cboe.com/x/3.json") == [
        {
            "request_id": str(job.request_id),
            "job_id": str(job.job_id),
            "market_symbol": "SPX",
            "priority_level": "high",
        }
    ]
    assert store.read_sync(jobs_for_source_url, "https://cdn.cboe.com/x/4.json") == []


def test_read_only_sql_returns_rows_and_refuses_writes(store: Store) -> None:
    for i in range(3):
        submit(store, i)
    found = store.read_sync(
        run_read_only,
        "SELECT market_symbol FROM priority_requests ORDER BY requested_at",
        limit=2,
        timeout_s=30.0,
    )
    assert found.columns == ["market_symbol"]
    assert found.rows == [("SPX",), ("SPX",)] and found.truncated
    for sql in ("DELETE FROM priority_requests", "SELECT 1; SELECT 2", "SELEC 1"):
        with pytest.raises(InvalidInput) as exc:
            store.read_sync(run_read_only, sql, limit=10, timeout_s=30.0)
        assert exc.value.details[0].path == "sql"
    assert store.fetch_sync("SELECT count(*) AS n FROM priority_requests")[0]["n"] == 3


def test_recent_requests_are_newest_first_and_limited(store: Store) -> None:
    ctx = DomainContext(now=T0)
    made = []
    for i in range(5):
        req = PriorityRequest.parse(
            {
                "source_url": f"https://cdn.cboe.com/x/{i}.json",
                "data_type": "snapshot",
                "market_symbol": "SPX",
                "requested_at": T0 - timedelta(minutes=i),
                "priority_score": 0.5,
                "priority_level": "medium",
                "metadata": {"volume": i},
                "explanation": {"scored_at": T0.isoformat()},
            },
            context=ctx,
        )
        made.append(req)
    store.commit_sync([PutRequest(r) for r in reversed(made)])
    recent = store.read_sync(recent_requests, 3)
    assert [r.request_id for r in recent] == [r.request_id for r in made[:3]]
    assert recent[0].metadata == {"volume": 0}
    assert recent[0].explanation == {"scored_at": T0.isoformat()}
    with pytest.raises(InvalidInput, match="between 1 and"):
        store.read_sync(recent_requests, 0)


async def test_recent_requests_async(store: Store) -> None:
    assert await store.read(recent_requests, 10) == []
