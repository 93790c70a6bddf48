"""The DuckDB store: round trips, group commit, isolation of bad writes, SIGKILL durability."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gexdaemon.core.models import (
    DataSource,
    DomainContext,
    JobStatus,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
)
from gexdaemon.storage.errors import StorageError, StoreClosed
from gexdaemon.storage.jobs import job_history, load_job, load_request
from gexdaemon.storage.store import (
    DeleteRule,
    PutJob,
    PutRequest,
    PutRule,
    PutSource,
    Statement,
    Store,
)
from tests.conftest import REPO
from tests.storage.seeding import store_options

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
CTX = DomainContext(now=datetime(2026, 11, 26, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store.open(store_options(tmp_path))
    yield s
    s.close()


def make_request(i: int = 0, **kw: object) -> PriorityRequest:
    data: dict[str, object] = {
        "source_url": f"http://127.0.0.1:8000/feeds/_SPX_{i}.json",
        "data_type": "real_time",
        "market_symbol": "SPX",
        "requested_at": T0,
        "priority_score": 0.9,
        "priority_level": "critical",
        "deadline": T0 + timedelta(seconds=30),
        "metadata": {"open_interest": 12000, "desk": "vol"},
        "explanation": {"matched": [{"rule": "index", "score": 0.9}]},
        "estimated_processing_time": timedelta(seconds=1.5),
    }
    data.update(kw)
    return PriorityRequest.parse(data, context=CTX)


def test_request_and_job_round_trip(store: Store) -> None:
    req = make_request()
    job, event = ProcessingJob.for_request(req, T0, context=CTX)
    store.commit_sync([PutRequest(req), PutJob(job, event)])
    running, e2 = job.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1), lease_owner="w1")
    store.commit_sync([PutJob(running, e2)])

    loaded_req = store.read_sync(load_request, req.request_id)
    loaded_job = store.read_sync(load_job, job.job_id)
    assert loaded_req == req
    assert loaded_job == running
    history = store.read_sync(job_history, job.job_id)
    assert [(e.from_status, e.to_status) for e in history] == [
        (None, JobStatus.QUEUED),
        (JobStatus.QUEUED, JobStatus.PROCESSING),
    ]


def test_derived_columns_are_computed_by_the_database(store: Store) -> None:
    req = make_request()
    job, ev = ProcessingJob.for_request(req, T0, context=CTX)
    job2, ev2 = job.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1))
    job3, ev3 = job2.transition(JobStatus.COMPLETED, T0 + timedelta(seconds=4))
    src = DataSource.parse(
        {"base_url": "http://127.0.0.1:8000", "name": "local", "created_at": T0, "updated_at": T0}
    ).record_fetch(success=False, response_time=timedelta(seconds=1), at=T0)
    store.commit_sync(
        [PutRequest(req), PutJob(job, ev), PutJob(job2, ev2), PutJob(job3, ev3), PutSource(src)]
    )
    row = store.fetch_sync("SELECT processing_duration FROM processing_jobs")[0]
    assert row["processing_duration"] == timedelta(seconds=3)
    rel = store.fetch_sync("SELECT reliability_score, is_active FROM data_sources")[0]
    assert rel == {"reliability_score": 0.0, "is_active": True}


def test_the_database_refuses_what_the_model_refuses(store: Store) -> None:
    # Belt and braces: a bypassed model still meets the table's CHECK constraints.
    req = make_request()
    store.commit_sync([PutRequest(req)])
    with pytest.raises(StorageError) as exc:
        store.commit_sync([Statement("UPDATE priority_requests SET priority_score = 2 WHERE true")])
    assert "write refused" in str(exc.value)


def test_one_bad_caller_does_not_sink_the_batch(tmp_path: Path) -> None:
    async def run() -> tuple[list[object], Store]:
        store = Store.open(store_options(tmp_path, window_ms=20.0))
        good = [make_request(i) for i in range(20)]
        orphan_job, created = ProcessingJob.for_request(
            make_request(99), T0, context=CTX
        )  # no request row
        calls = [store.commit([PutRequest(r)]) for r in good[:10]]
        calls.append(store.commit([PutJob(orphan_job, created)]))
        calls += [store.commit([PutRequest(r)]) for r in good[10:]]
        return await asyncio.gather(*calls, return_exceptions=True), store

    results, store = asyncio.run(run())
    try:
        assert sum(r is None for r in results) == 20
        failures = [r for r in results if r is not None]
        assert len(failures) == 1 and isinstance(failures[0], StorageError)
        assert "foreign key" in str(failures[0]).lower()
        assert store.fetch_sync("SELECT count(*) AS n FROM priority_requests")[0]["n"] == 20
        assert store.stats.failed_batches >= 1
    finally:
        store.close()


def test_many_concurrent_callers_share_commits(tmp_path: Path) -> None:
    async def run() -> Store:
        store = Store.open(store_options(tmp_path, window_ms=2.0))
        reqs = [make_request(i) for i in range(400)]
        await asyncio.gather(*(store.commit([PutRequest(r)]) for r in reqs))
        return store

    store = asyncio.run(run())
    try:
        assert store.fetch_sync("SELECT count(*) AS n FROM priority_requests")[0]["n"] == 400
        assert store.stats.callers == 400
        assert store.stats.commits < 400  # grouped
    finally:
        store.close()


def test_updating_a_job_that_was_never_written_is_an_error(store: Store) -> None:
    req = make_request()
    job, _ = ProcessingJob.for_request(req, T0, context=CTX)
    running, ev = job.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1))
    store.commit_sync([PutRequest(req)])
    with pytest.raises(StorageError) as exc:
        store.commit_sync([PutJob(running, ev)])
    assert "do not exist" in str(exc.value)
    assert store.fetch_sync("SELECT count(*) AS n FROM job_events")[0]["n"] == 0  # all or nothing


def test_changes_to_one_row_in_one_batch_coalesce(store: Store) -> None:
    req = make_request()
    job, ev = ProcessingJob.for_request(req, T0, context=CTX)
    job2, ev2 = job.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1))
    job3, ev3 = job2.transition(JobStatus.COMPLETED, T0 + timedelta(seconds=2))
    store.commit_sync([PutRequest(req), PutJob(job, ev), PutJob(job2, ev2), PutJob(job3, ev3)])
    assert store.read_sync(load_job, job.job_id) == job3
    assert len(store.read_sync(job_history, job.job_id)) == 3


def test_partial_updates_write_only_what_changed_and_merge_in_a_batch(tmp_path: Path) -> None:
    store = Store.open(store_options(tmp_path, window_ms=30.0))
    try:
        req = make_request()
        job, ev = ProcessingJob.for_request(req, T0, context=CTX)
        store.commit_sync([PutRequest(req), PutJob(job, ev)])
        running, e2 = job.transition(
            JobStatus.PROCESSING, T0 + timedelta(seconds=1), lease_owner="w1"
        )
        done, e3 = running.transition(
            JobStatus.COMPLETED, T0 + timedelta(seconds=2), records_processed=7
        )
        # Two callers in one group commit, each sending only its delta.
        f1 = store.submit([PutJob(running, e2, previous=job)])
        f2 = store.submit([PutJob(done, e3, previous=running)])
        f1.result(5)
        f2.result(5)
        assert store.read_sync(load_job, job.job_id) == done
        # A delta whose insert is in the same batch still writes the whole row.
        req2 = make_request(2)
        new, created = ProcessingJob.for_request(req2, T0, context=CTX)
        started, e4 = new.transition(JobStatus.PROCESSING, T0 + timedelta(seconds=1))
        store.commit_sync(
            [PutRequest(req2), PutJob(new, created), PutJob(started, e4, previous=new)]
        )
        assert store.read_sync(load_job, new.job_id) == started
    finally:
        store.close()


def test_rules_put_and_delete(store: Store) -> None:
    rule = PriorityRule.parse(
        {
            "name": "r",
            "condition": "volume > 5000",
            "priority_score": 0.7,
            "created_at": T0,
            "updated_at": T0,
        }
    )
    store.commit_sync([PutRule(rule)])
    store.commit_sync(
        [PutRule(rule.evolve(priority_score=0.8, version=2, updated_at=T0 + timedelta(1)))]
    )
    rows = store.fetch_sync("SELECT priority_score, version FROM priority_rules")
    assert rows == [{"priority_score": 0.8, "version": 2}]
    store.commit_sync([DeleteRule(rule.rule_id)])
    assert store.fetch_sync("SELECT count(*) AS n FROM priority_rules")[0]["n"] == 0


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = Store.open(store_options(tmp_path))
    store.close()
    with pytest.raises(StoreClosed):
        store.submit([PutRequest(make_request())])


def test_pending_writes_are_flushed_on_close(tmp_path: Path) -> None:
    store = Store.open(store_options(tmp_path, window_ms=50.0))
    futures = [store.submit([PutRequest(make_request(i))]) for i in range(50)]
    store.close()
    assert all(f.result(timeout=5) is None for f in futures)
    again = Store.open(store_options(tmp_path))
    try:
        assert again.fetch_sync("SELECT count(*) AS n FROM priority_requests")[0]["n"] == 50
    finally:
        again.close()


def _acked_state(lines: list[str]) -> dict[str, str]:
    order = {"queued": 0, "processing": 1, "completed": 2}
    state: dict[str, str] = {}
    for line in lines:
        if line.startswith("ACK "):
            _, job_id, status = line.split()
            if order[status] >= order.get(state.get(job_id, "queued"), 0):
                state[job_id] = status
    return state


@pytest.mark.slow
@pytest.mark.parametrize("how", ["commit", "accept"])
def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path, how: str) -> None:
    rng = random.Random(7)
    total_acks = 0
    for cycle in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.killable_writer", str(tmp_path), how],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        lines: list[str] = []
        target = rng.randint(300, 3000)
        while len(lines) < target:
            line = proc.stdout.readline()
            assert line, "writer died before it was killed"
            lines.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        lines += [ln.strip() for ln in proc.stdout.read().splitlines()]  # acks already printed
        acked = _acked_state(lines)
        total_acks += len(lines)

        store = Store.open(store_options(tmp_path))
        try:
            rows = store.fetch_sync(
                "SELECT job_id::VARCHAR AS job_id, status FROM processing_jobs WHERE job_id IN "
                "(SELECT unnest(?::UUID[]))",
                [list(acked)],
            )
        finally:
            store.close()
        found = {r["job_id"]: r["status"] for r in rows}
        order = {"queued": 0, "processing": 1, "completed": 2}
        missing = [j for j in acked if j not in found]
        behind = [j for j, s in acked.items() if j in found and order[found[j]] < order[s]]
        assert not missing, f"cycle {cycle}: {len(missing)} acknowledged jobs lost"
        assert not behind, f"cycle {cycle}: {len(behind)} jobs lost an acknowledged transition"
    assert total_acks > 900


def test_uuid_column_types(store: Store) -> None:
    req = make_request()
    store.commit_sync([PutRequest(req)])
    row = store.fetch_sync("SELECT request_id, metadata FROM priority_requests")[0]
    assert row["request_id"] == req.request_id and isinstance(row["request_id"], uuid.UUID)
