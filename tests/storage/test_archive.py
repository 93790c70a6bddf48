"""Archive: old finished jobs move to Parquet, stay queryable, and a crash mid-way loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gexdaemon.core.models import DomainContext, JobStatus, ProcessingJob
from gexdaemon.storage import archive
from gexdaemon.storage.store import PutJob, PutRequest, Store, StoreOptions
from tests.storage.seeding import queued_job, store_options

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CTX = DomainContext(now=NOW)


def options(d: Path) -> StoreOptions:
    return store_options(d, retention_days=30)


def seed(store: Store, age_days: float, final: JobStatus | None, n: int = 1) -> list[ProcessingJob]:
    jobs = []
    for _ in range(n):
        t = NOW - timedelta(days=age_days)
        req, job, ev = queued_job(
            "http://127.0.0.1:8000/_SPX.json",
            t,
            context=CTX,
            data_type="historical",
            score=0.2,
            level="low",
        )
        changes: list[object] = [PutRequest(req), PutJob(job, ev)]
        if final is not None:
            job, ev = job.transition(JobStatus.PROCESSING, t + timedelta(seconds=1))
            changes.append(PutJob(job, ev))
            if final is not JobStatus.PROCESSING:
                job, ev = job.transition(final, t + timedelta(seconds=2), reason="x")
                changes.append(PutJob(job, ev))
        store.commit_sync(changes)  # type: ignore[arg-type]
        jobs.append(job)
    return jobs


def count(store: Store, table: str) -> int:
    return int(store.fetch_sync(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def test_old_finished_jobs_move_to_parquet_and_stay_queryable(tmp_path: Path) -> None:
    store = Store.open(options(tmp_path))
    try:
        old_done = seed(store, 40, JobStatus.COMPLETED, 3)
        seed(store, 40, JobStatus.FAILED, 2)
        seed(store, 40, JobStatus.CANCELLED, 1)
        seed(store, 40, JobStatus.PROCESSING, 1)  # unfinished: never archived, however old
        seed(store, 40, None, 1)  # queued
        seed(store, 5, JobStatus.COMPLETED, 2)  # recent
        report = store.archive(now=NOW).result()
        assert (report.jobs, report.requests) == (6, 6)
        assert report.events == 3 * 2 + 2 * 2 + 1 * 2  # processing and final (creation is derived)
        assert all(Path(f).exists() and Path(f).name.startswith("batch_") for f in report.files)
        assert count(store, "processing_jobs") == 4
        assert count(store, "processing_jobs_archive") == 6
        assert count(store, "processing_jobs_all") == 10
        assert count(store, "priority_requests_all") == 10
        assert count(store, "job_events") == 1 + 0 + 2 * 2
        row = store.fetch_sync(
            "SELECT status, processing_duration FROM processing_jobs_all WHERE job_id = ?",
            [str(old_done[0].job_id)],
        )[0]
        assert row == {"status": "completed", "processing_duration": timedelta(seconds=1)}
        again = store.archive(now=NOW).result()
        assert (again.jobs, again.requests, again.files) == (0, 0, [])
        assert count(store, "processing_jobs_all") == 10
    finally:
        store.close()
    reopened = Store.open(options(tmp_path))
    try:
        assert count(reopened, "processing_jobs_all") == 10
    finally:
        reopened.close()


def archive_crashing_at(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, module: object, name: str, when: str
) -> None:
    """Two old finished jobs, then an archive run that dies (a KeyboardInterrupt) at `module.name`."""
    store = Store.open(options(data_dir))
    seed(store, 40, JobStatus.COMPLETED, 2)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt(f"simulated crash {when}")

    with monkeypatch.context() as patched:
        patched.setattr(module, name, crash)
        with pytest.raises(KeyboardInterrupt):
            store.archive(now=NOW).result()
    store.close()


def test_crash_between_commit_and_rename_is_finished_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_crashing_at(
        tmp_path, monkeypatch, archive.os, "replace", "after the archive transaction committed"
    )
    temps = list((tmp_path / "archive" / "processing_jobs").glob(".batch_*.tmp"))
    assert len(temps) == 1 and not list((tmp_path / "archive" / "processing_jobs").glob("batch_*"))

    reopened = Store.open(options(tmp_path))
    try:
        assert count(reopened, "processing_jobs") == 0
        assert count(reopened, "processing_jobs_archive") == 2
        assert not list((tmp_path / "archive" / "processing_jobs").glob(".batch_*.tmp"))
    finally:
        reopened.close()


def test_crash_before_commit_keeps_rows_hot_and_drops_the_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_crashing_at(
        tmp_path, monkeypatch, archive, "_commit_batch", "before the archive transaction"
    )
    assert list((tmp_path / "archive" / "processing_jobs").glob(".batch_*.tmp"))
    reopened = Store.open(options(tmp_path))
    try:
        assert count(reopened, "processing_jobs") == 2
        assert count(reopened, "processing_jobs_archive") == 0
        assert not list((tmp_path / "archive" / "processing_jobs").glob(".batch_*"))
        assert reopened.archive(now=NOW).result().jobs == 2
        assert count(reopened, "processing_jobs_all") == 2
    finally:
        reopened.close()


def test_a_missing_archive_file_is_reported_not_ignored(tmp_path: Path) -> None:
    store = Store.open(options(tmp_path))
    seed(store, 40, JobStatus.COMPLETED, 1)
    report = store.archive(now=NOW).result()
    store.close()
    for f in report.files:
        Path(f).unlink()
    with pytest.raises(archive.StorageError) as exc:
        Store.open(options(tmp_path))
    assert "archived rows are missing" in str(exc.value)
