"""Archive: finished jobs older than the retention move to Parquet and leave the hot tables.

Layout: `<data_dir>/archive/<table>/batch_<time>_<id>.parquet` for
`processing_jobs`, `job_events` and `priority_requests`; in cluster mode each node's
folder is `<lake_dir>/archive/node=<id>/` and every node reads them all (`shared_archive`). Views
`<table>_archive` read the files and `<table>_all` unions hot and archived rows,
so archived work stays queryable.

Crash safety, step by step:
1. rows are copied to a temporary dot-file next to the final name and fsynced;
2. one transaction records the batch in `archive_batches` and deletes the rows;
3. the temporary file is renamed to its final name.
A crash before 2 leaves the rows in place and an orphan temporary (ours, removed
at the next open); a crash between 2 and 3 is finished at the next open from the
manifest. Requests are archived in a transaction after their jobs because DuckDB
cannot delete a row and the rows referencing it in one transaction.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gexdaemon.storage.errors import StorageError
from gexdaemon.storage.lake import fsync_dir, sql_string

FINISHED = ("completed", "failed", "cancelled")
TABLES = ("processing_jobs", "job_events", "priority_requests")


@dataclass
class ArchiveReport:
    cutoff: datetime
    jobs: int = 0
    events: int = 0
    requests: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "jobs": self.jobs,
            "events": self.events,
            "requests": self.requests,
            "files": self.files,
        }


def archive_finished(
    con: Any, archive_dir: Path, cutoff: datetime, now: datetime | None = None
) -> ArchiveReport:
    """Move finished jobs (and then orphaned requests) older than `cutoff` to Parquet."""
    now = now or datetime.now(UTC)
    report = ArchiveReport(cutoff=cutoff)
    statuses = ", ".join(f"'{s}'" for s in FINISHED)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _archive_jobs AS SELECT job_id FROM processing_jobs "
        f"WHERE status IN ({statuses}) AND coalesce(completed_at, updated_at, queued_at) < ?",
        [cutoff],
    )
    try:
        report.jobs = _count(con, "SELECT count(*) FROM _archive_jobs")
        if report.jobs:
            report.events = _count(
                con,
                "SELECT count(*) FROM job_events WHERE job_id IN (SELECT job_id FROM _archive_jobs)",
            )
            report.files += _move_batch(
                con,
                archive_dir,
                cutoff,
                now,
                held=("_archive_jobs", "job_id"),
                tables=["processing_jobs", "job_events"],
                empty=() if report.events else ("job_events",),
            )
    finally:
        con.execute("DROP TABLE IF EXISTS _archive_jobs")

    con.execute(
        "CREATE OR REPLACE TEMP TABLE _archive_requests AS SELECT request_id FROM priority_requests r "
        "WHERE r.requested_at < ? AND NOT EXISTS "
        "(SELECT 1 FROM processing_jobs j WHERE j.request_id = r.request_id)",
        [cutoff],
    )
    try:
        report.requests = _count(con, "SELECT count(*) FROM _archive_requests")
        if report.requests:
            report.files += _move_batch(
                con,
                archive_dir,
                cutoff,
                now,
                held=("_archive_requests", "request_id"),
                tables=["priority_requests"],
            )
    finally:
        con.execute("DROP TABLE IF EXISTS _archive_requests")
    if report.files:
        refresh_archive_views(con, archive_dir)
    return report


def finish_interrupted_batches(con: Any, archive_dir: Path) -> list[Path]:
    """At open: finish renames a crash interrupted, and drop temporaries never committed.

    A temporary with no manifest row belongs to a run that crashed before its
    transaction: its rows are still in the hot tables, so the file is only ours.
    """
    finished: list[Path] = []
    batches = con.execute(
        "SELECT table_name, final_path, temp_path FROM archive_batches"
    ).fetchall()
    known_temps = {temp for _, _, temp in batches}
    for table, final_s, temp_s in batches:
        final, temp = Path(final_s), Path(temp_s)
        if final.exists():
            continue
        if temp.exists():
            os.replace(temp, final)
            fsync_dir(final.parent)
            finished.append(final)
            continue
        raise StorageError(
            f"archive batch of {table} is recorded as {final} but neither that file nor its "
            f"temporary {temp} exists; the archived rows are missing. Restore the file from a "
            "backup, or delete its row from archive_batches to acknowledge the loss."
        )
    for table in TABLES:
        folder = archive_dir / table
        if folder.exists():
            for orphan in folder.glob(".batch_*.parquet.tmp"):
                if str(orphan) not in known_temps:
                    with contextlib.suppress(FileNotFoundError):
                        orphan.unlink()
    return finished


# The key of a row in each archived table (cluster mode reads every node's copy once).
KEYS = {
    "processing_jobs": "job_id",
    "job_events": "job_id, seq",
    "priority_requests": "request_id",
}


def shared_archive(archive_dir: Path) -> bool:
    """Cluster mode: each node archives to `<lake>/archive/node=<id>/`, and every node reads
    all of them (every node mirrors every job, so a row may be in several nodes' files)."""
    return archive_dir.name.startswith("node=")


def refresh_archive_views(con: Any, archive_dir: Path) -> None:
    shared = shared_archive(archive_dir)
    roots = sorted(archive_dir.parent.glob("node=*")) if shared else [archive_dir]
    for table in TABLES:
        if any(any((root / table).glob("batch_*.parquet")) for root in roots):
            where = archive_dir.parent / "node=*" if shared else archive_dir
            glob = sql_string(str(where / table / "batch_*.parquet"))
            rows = f"SELECT * FROM read_parquet({glob}, union_by_name = true)"
            if shared:  # one row per key, and none the hot table still holds
                key = KEYS[table]
                rows = (
                    f"SELECT * FROM ({rows}) WHERE ({key}) NOT IN (SELECT {key} FROM {table}) "
                    f"QUALIFY row_number() OVER (PARTITION BY {key}) = 1"
                )
            con.execute(f"CREATE OR REPLACE VIEW {table}_archive AS {rows}")
        else:
            con.execute(
                f"CREATE OR REPLACE VIEW {table}_archive AS SELECT * FROM {table} WHERE false"
            )
        con.execute(
            f"CREATE OR REPLACE VIEW {table}_all AS "
            f"SELECT * FROM {table} UNION ALL BY NAME SELECT * FROM {table}_archive"
        )


# ---------------------------------------------------------------------------


def _count(con: Any, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _move_batch(
    con: Any,
    archive_dir: Path,
    cutoff: datetime,
    now: datetime,
    *,
    held: tuple[str, str],
    tables: list[str],
    empty: Collection[str] = (),
) -> list[str]:
    """Stage the rows of `tables` (parent first) whose key is in a temp table, then commit the
    batch: the rows deleted (children first) and the files renamed in. Returns the files.

    `held` names the temp table and the key column; `empty` the tables known to have no such
    rows (no file for them, their delete a no-op kept so the batch is the same either way).
    """
    temp, key = held
    where = f"WHERE {key} IN (SELECT {key} FROM {temp})"
    staged = [
        _stage(con, archive_dir, table, f"SELECT * FROM {table} {where}", now)
        for table in tables
        if table not in empty
    ]
    _commit_batch(
        con, staged, cutoff, now, [f"DELETE FROM {table} {where}" for table in reversed(tables)]
    )
    return [str(s[1]) for s in staged]


def _stage(
    con: Any, archive_dir: Path, table: str, select: str, now: datetime
) -> tuple[str, Path, Path, int]:
    folder = archive_dir / table
    folder.mkdir(parents=True, exist_ok=True)
    batch = uuid.uuid4()
    name = f"batch_{now.strftime('%Y%m%dT%H%M%S')}_{batch.hex[:12]}.parquet"
    final = folder / name
    temp = folder / f".{name}.tmp"
    con.execute(f"COPY ({select}) TO {sql_string(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
    with temp.open("rb") as fh:
        os.fsync(fh.fileno())
    rows = _count(con, f"SELECT count(*) FROM read_parquet({sql_string(str(temp))})")
    return str(batch), final, temp, rows


def _commit_batch(
    con: Any,
    staged: list[tuple[str, Path, Path, int]],
    cutoff: datetime,
    now: datetime,
    deletes: list[str],
) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        for batch_id, final, temp, count in staged:
            table = final.parent.name
            con.execute(
                "INSERT INTO archive_batches VALUES (?, ?, ?, ?, ?, ?, ?)",
                [batch_id, table, str(final), str(temp), count, cutoff, now],
            )
        for statement in deletes:
            con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        for _, _, temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        raise
    for _, final, temp, _ in staged:
        os.replace(temp, final)
        fsync_dir(final.parent)
