"""Schema migrations: an older file is upgraded in place, a newer one is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from gexdaemon.core.models import JobStatus
from gexdaemon.storage.errors import SchemaTooNew, StorageError
from gexdaemon.storage.jobs import load_job
from gexdaemon.storage.schema import LATEST, MIGRATIONS, current_version, migrate
from gexdaemon.storage.store import Store
from tests.storage.seeding import store_options

T0 = datetime(2026, 10, 1, 14, 0, tzinfo=UTC)


def make_v1_file(path: Path) -> None:
    """A database as a version-1 build left it: the seed's tables with data in them."""
    con = duckdb.connect(str(path))
    migrate(con, target=1)
    con.execute(
        "INSERT INTO priority_requests VALUES ('6f1d4c9a-0000-4000-8000-000000000001', "
        "'https://cdn.cboe.com/_SPX.json', 'real_time', 'SPX', ?, 0.9, 'critical', INTERVAL 2 SECOND, "
        "'{\"open_interest\": 12000}')",
        [T0],
    )
    con.execute(
        "INSERT INTO processing_jobs (job_id, request_id, status, started_at, completed_at, "
        "records_processed, data_size_bytes, retry_count) VALUES "
        "('6f1d4c9a-0000-4000-8000-0000000000aa', '6f1d4c9a-0000-4000-8000-000000000001', "
        "'completed', ?, ?, 500, 1024, 1)",
        [T0 + timedelta(seconds=1), T0 + timedelta(seconds=4)],
    )
    con.execute(
        "INSERT INTO data_sources (source_id, base_url, name, total_requests, successful_requests, is_active) "
        "VALUES ('6f1d4c9a-0000-4000-8000-0000000000bb', 'https://cdn.cboe.com', 'cboe', 10, 9, false)"
    )
    con.close()


def test_fresh_database_reaches_the_latest_version(tmp_path: Path) -> None:
    store = Store.open(store_options(tmp_path))
    try:
        versions = store.fetch_sync(
            "SELECT version, description FROM schema_version ORDER BY version"
        )
        assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]
        tables = {
            r["table_name"]
            for r in store.fetch_sync("SELECT table_name FROM information_schema.tables")
        }
        assert {
            "priority_requests",
            "processing_jobs",
            "data_sources",
            "priority_rules",
            "gex_snapshots",
            "gex_strikes",
            "job_events",
        } <= tables
        indexes = {
            r["index_name"] for r in store.fetch_sync("SELECT index_name FROM duckdb_indexes()")
        }
        assert {"priority_requests_score", "priority_requests_requested_at"} <= indexes
    finally:
        store.close()


def test_an_older_file_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    make_v1_file(tmp_path / "gex.duckdb")
    store = Store.open(store_options(tmp_path))
    try:
        assert store.read_sync(current_version) == LATEST
        job = store.read_sync(
            load_job, __import__("uuid").UUID("6f1d4c9a-0000-4000-8000-0000000000aa")
        )
        assert job is not None
        assert job.status is JobStatus.COMPLETED
        assert job.priority_level.value == "critical"  # back-filled from its request
        assert job.requested_at == T0
        assert job.processing_duration == timedelta(seconds=3)
        assert job.retry_count == 1
        src = store.fetch_sync(
            "SELECT reliability_score, manually_disabled, is_active FROM data_sources"
        )[0]
        assert src == {"reliability_score": 0.9, "manually_disabled": True, "is_active": False}
        req = store.fetch_sync(
            "SELECT metadata->>'open_interest' AS oi, origin FROM priority_requests"
        )[0]
        assert req == {"oi": "12000", "origin": "api"}
    finally:
        store.close()


def from_the_future(con: duckdb.DuckDBPyConnection) -> None:
    migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST + 5])


def foreign_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE priority_requests (x INT)")


@pytest.mark.parametrize(
    ("prepare", "refusal", "says"),
    [
        pytest.param(from_the_future, SchemaTooNew, "upgrade gexdaemon", id="a newer file"),
        pytest.param(foreign_tables, StorageError, "schema_version", id="no version"),
    ],
)
def test_a_file_it_cannot_own_is_refused(
    tmp_path: Path,
    prepare: Callable[[duckdb.DuckDBPyConnection], None],
    refusal: type[StorageError],
    says: str,
) -> None:
    con = duckdb.connect(str(tmp_path / "gex.duckdb"))
    prepare(con)
    con.close()
    with pytest.raises(refusal) as exc:
        Store.open(store_options(tmp_path))
    assert says in str(exc.value)


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "gex.duckdb"))
    assert [m.version for m in migrate(con)] == [m.version for m in MIGRATIONS]
    assert migrate(con) == []
    con.close()


CRASH_AFTER_MIGRATION = """
import os, sys, duckdb
from gexdaemon.storage.schema import migrate
con = duckdb.connect(sys.argv[1])
migrate(con, target=1)
con.execute("CHECKPOINT")
migrate(con)  # version 2 (ALTER TABLEs) ...
con.execute("INSERT INTO job_events VALUES ('6f1d4c9a-0000-4000-8000-0000000000aa', 1, now(), NULL, 'queued', '')")
os._exit(0)  # ... and a crash before any later checkpoint
"""


def test_wal_written_after_a_schema_change_replays(tmp_path: Path) -> None:
    # Regression: `completed_at - started_at` as a generated column broke WAL replay
    # after an ALTER TABLE (ICU functions are not loaded during replay).
    db = tmp_path / "gex.duckdb"
    subprocess.run([sys.executable, "-c", CRASH_AFTER_MIGRATION, str(db)], check=True)
    assert os.path.exists(str(db) + ".wal")
    store = Store.open(store_options(tmp_path))
    try:
        assert store.fetch_sync("SELECT count(*) AS n FROM job_events")[0]["n"] == 1
    finally:
        store.close()
