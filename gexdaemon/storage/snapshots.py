"""Persisting GEX snapshots (Parquet lake + DuckDB) and reading them back in the API's shape.

Write order, and why it is safe to repeat:
1. if the store already holds the snapshot id (the job was processed before), stop
   and return the lake path recorded with it: nothing is written twice;
2. write the lake file atomically (temporary name, fsync, rename) at
   `<lake_dir>/symbol=SYM/date=YYYY-MM-DD/snapshot_<ts>_<id>.parquet`; the name is
   derived from the snapshot id and instant, so a retry rewrites the same file;
3. commit `PutSnapshot` (the gex_snapshots row with its lake_path, and the
   gex_strikes rows), idempotent on snapshot_id: strikes are appended only when the
   snapshot row is new.
For files up to OVERLAP_MAX_LAKE_ROWS contracts, 2 and 3 run at the same time: the
writer inserts the rows while this thread writes the file, and COMMITs only once the
file is durable (`PutSnapshot.lake_written`), so what a crash can leave is the same.
A crash between 2 and 3 leaves a lake file without a row; the job's retry rewrites
the same file and commits, so the pair ends up consistent. Readers always start from
gex_snapshots, so such a file is never mistaken for a snapshot.

The readers return plain dicts shaped like surfaces.md "Snapshot fields"
(JSON-ready: ids and instants as strings), with `strikes` for single snapshots.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import msgspec

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.models import GEX_STRIKE_FIELDS, ExpiryFilter
from gexdaemon.storage import lake as lakefs
from gexdaemon.storage.snapshot_record import RECORD_KEY, STRIKES_KEY, SnapshotRecord, ipc_table
from gexdaemon.storage.store import PutSnapshot, Store

# Up to this many lake rows (contracts), the lake file is written while the writer inserts
# the rows, and the commit waits for the file: the writer then waits at most the time
# to write such a file (tens of ms), and the caller saves the shorter of the two. A
# larger file is written first, as before, so the writer never waits seconds.
OVERLAP_MAX_LAKE_ROWS = 200_000

SNAPSHOT_FIELDS = (
    "snapshot_id",
    "job_id",
    "market_symbol",
    "snapshot_date",
    "snapshot_time",
    "snapshot_at",
    "spot_price",
    "gex_unit",
    "sign_model",
    "gamma_source",
    "expiry_filter",
    "total_gex",
    "zero_gamma",
    "zero_gamma_crossings",
    "call_wall",
    "put_wall",
    "abs_gamma_strike",
    "total_open_interest",
    "total_volume",
    "data_quality_score",
    "processed_at",
    "lake_path",
    "source_format",
    "rows_read",
    "excluded_rows",
)


def _existing_lake_path(cur: Any, snapshot_id: uuid.UUID) -> str | None:
    found = cur.execute(
        "SELECT coalesce(lake_path, '') FROM gex_snapshots WHERE snapshot_id = ?",
        [str(snapshot_id)],
    ).fetchone()
    return None if found is None else str(found[0])


def _first_lake_folder(lake_dir: Path) -> bool:
    """Will this snapshot open the lake's first symbol folder (the views then need a refresh)?"""
    return not lake_dir.exists() or not any(lake_dir.glob("symbol=*"))


def _write_lake(lake_dir: Path, record: SnapshotRecord) -> tuple[Path, bool]:
    """Write the lake file; returns (path, whether this was the lake's first symbol folder)."""
    path = record.lake_path(lake_dir)
    first = _first_lake_folder(lake_dir)
    lakefs.write_parquet_atomic(record.lake_file(), path)
    return path, first


def _change(
    record: SnapshotRecord, path: Path, written: concurrent.futures.Future[None] | None = None
) -> PutSnapshot:
    row = dict(record.row)
    row["lake_path"] = str(path)
    return PutSnapshot(snapshot=row, strikes=record.strikes, lake_written=written)


def _overlaps(record: SnapshotRecord) -> bool:
    """Write the file and insert the rows at once? Only for files the writer can wait on."""
    return int(record.lake.num_rows) <= OVERLAP_MAX_LAKE_ROWS


def persist_snapshot(store: Store, lake_dir: Path, record: SnapshotRecord) -> Path:
    """Write the lake file and commit the rows (see the module docstring); returns the lake path.

    Blocking: call it from a worker thread, or use `persist_snapshot_async`.
    """
    existing = store.read_sync(lambda cur: _existing_lake_path(cur, record.snapshot_id))
    if existing is not None:
        return Path(existing) if existing else record.lake_path(lake_dir)
    if not _overlaps(record):
        path, first = _write_lake(lake_dir, record)
        store.commit_sync([_change(record, path)])
    else:
        path, first = record.lake_path(lake_dir), _first_lake_folder(lake_dir)
        written: concurrent.futures.Future[None] = concurrent.futures.Future()
        committed = store.submit([_change(record, path, written)])
        _write_lake_resolving(written, record, path)
        committed.result()
    if first:
        store.refresh_views().result()
    return path


def _write_lake_resolving(
    written: concurrent.futures.Future[None], record: SnapshotRecord, path: Path
) -> None:
    """Write the lake file and tell the waiting transaction how it went (whatever happens)."""
    try:
        lakefs.write_parquet_atomic(record.lake_file(), path)
    except BaseException as exc:
        written.set_exception(exc)
        raise
    written.set_result(None)


async def persist_snapshot_async(store: Store, lake_dir: Path, record: SnapshotRecord) -> Path:
    """`persist_snapshot` for the event loop: file I/O in a thread, the commit awaited."""
    existing = await store.read(lambda cur: _existing_lake_path(cur, record.snapshot_id))
    if existing is not None:
        return Path(existing) if existing else record.lake_path(lake_dir)
    if not _overlaps(record):
        path, first = await asyncio.to_thread(_write_lake, lake_dir, record)
        await store.commit([_change(record, path)])
    else:
        path, first = record.lake_path(lake_dir), _first_lake_folder(lake_dir)
        written: concurrent.futures.Future[None] = concurrent.futures.Future()
        committed = asyncio.ensure_future(store.commit([_change(record, path, written)]))
        try:
            await asyncio.to_thread(_write_lake_resolving, written, record, path)
        except BaseException:
            # The transaction rolls back on the failed future; collect its outcome so
            # the error raised is the file's, not a second one about the same failure.
            with contextlib.suppress(Exception):
                await committed
            raise
        await committed
    if first:
        await asyncio.wrap_future(store.refresh_views())
    return path


STAGED_SUFFIX = ".staged"


@dataclass(frozen=True)
class Staged:
    """A snapshot's lake file written under a staging name by one attempt (cluster mode):
    published (moved to its final name) only once that attempt's FINISH is accepted."""

    path: Path
    job_id: str
    token: int
    final: Path  # relative to the lake

    @classmethod
    def parse(cls, path: Path) -> Staged | None:
        """A staged file's attempt and final name, from its name (None: not one of ours)."""
        if not path.name.endswith(STAGED_SUFFIX):
            return None
        job_id, _, rest = path.name.partition(".")
        token, _, rel = rest.partition(".")
        if not token.isdigit() or not rel:
            return None
        return cls(
            path, job_id, int(token), Path(rel.removesuffix(STAGED_SUFFIX).replace("__", "/"))
        )


def stage_snapshot(
    staging_dir: Path, lake_dir: Path, record: SnapshotRecord, job_id: str, token: int
) -> Staged:
    """Write the lake file under a staging name. Blocking: call it from a thread."""
    final = record.lake_path(lake_dir).relative_to(lake_dir)
    name = f"{job_id}.{token}.{str(final).replace('/', '__')}{STAGED_SUFFIX}"
    staged = Staged(staging_dir / name, job_id, token, final)
    lakefs.write_parquet_atomic(record.lake_file(), staged.path)
    return staged


def publish_staged(lake_dir: Path, staged: Staged) -> Path:
    """Move a staged lake file to its final name. Blocking: call it from a thread."""
    final = lake_dir / staged.final
    final.parent.mkdir(parents=True, exist_ok=True)
    staged.path.replace(final)
    lakefs.fsync_dir(final.parent)
    return final


async def cache_snapshot(
    store: Store, record: SnapshotRecord, path: Path, *, first_in_lake: bool
) -> None:
    """Commit a published snapshot's rows to this node's DuckDB (its cache of the lake)."""
    await store.commit([_change(record, path)])
    if first_in_lake:
        await asyncio.wrap_future(store.refresh_views())


# ---------------------------------------------------------------------------
# The lake as the source of truth: a snapshot back from its file alone
# ---------------------------------------------------------------------------


def read_lake_record(path: Path) -> PutSnapshot | None:
    """The snapshot a lake file holds (its row and strike rows, from the file's metadata),
    ready to commit; None for a file written before files carried their record."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - loaded when a lake file is read

    metadata = pq.read_schema(path).metadata or {}
    if RECORD_KEY not in metadata or STRIKES_KEY not in metadata:
        return None
    row = ipc_table(metadata[RECORD_KEY]).to_pylist()[0]
    row["lake_path"] = str(path)
    return PutSnapshot(snapshot=row, strikes=ipc_table(metadata[STRIKES_KEY]))


@dataclass
class LakeRebuild:
    """What `rebuild_from_lake` found and did."""

    lake: str
    files: int = 0
    added: int = 0
    present: int = 0
    without_record: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: why"


def _known_snapshots(cur: Any) -> tuple[set[str], set[str]]:
    found = cur.execute("SELECT CAST(snapshot_id AS VARCHAR), lake_path FROM gex_snapshots")
    ids, names = set(), set()
    for snapshot_id, lake_path in found.fetchall():
        ids.add(snapshot_id)
        if lake_path:
            names.add(Path(lake_path).name)
    return ids, names


def rebuild_from_lake(store: Store, lake_dir: Path, *, batch: int = 64) -> LakeRebuild:
    """Put every snapshot the lake holds and this DuckDB does not back into it (another
    node's, or one whose database was lost). Idempotent; files are only read. Blocking:
    call it from a thread."""
    report = LakeRebuild(lake=str(lake_dir))
    ids, names = store.read_sync(_known_snapshots)
    pending: list[PutSnapshot] = []

    def flush() -> None:
        if pending:
            store.commit_sync(list(pending))
            report.added += len(pending)
            pending.clear()

    for path in sorted(lakefs.snapshot_files(lake_dir)):
        report.files += 1
        if path.name in names:
            report.present += 1
            continue
        try:
            change = read_lake_record(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors are both; the file stays
            report.unreadable.append(f"{path}: {type(exc).__name__}")
            continue
        if change is None:
            report.without_record.append(str(path))
            continue
        snapshot_id = str(change.snapshot["snapshot_id"])
        if snapshot_id in ids:
            report.present += 1
            continue
        ids.add(snapshot_id)
        pending.append(change)
        if len(pending) >= batch:
            flush()
    flush()
    if report.added:
        store.refresh_views().result()
    return report


# ---------------------------------------------------------------------------
# Readers (take a DuckDB cursor: call them through Store.read / Store.read_sync)
# ---------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _fetch(cur: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    result = cur.execute(sql, list(params))
    names = [d[0] for d in result.description or ()]
    out = [
        {name: _json_value(v) for name, v in zip(names, row, strict=True)}
        for row in result.fetchall()
    ]
    for item in out:
        raw = item.get("excluded_rows")
        if isinstance(raw, str):  # a JSON column comes back as text
            item["excluded_rows"] = msgspec.json.decode(raw)
    return out


_SELECT = f"SELECT {', '.join(SNAPSHOT_FIELDS)} FROM gex_snapshots"
_STRIKES_SELECT = f"SELECT {', '.join(GEX_STRIKE_FIELDS)} FROM gex_strikes"


def _with_strikes(cur: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    snapshot["strikes"] = _fetch(
        cur,
        _STRIKES_SELECT + " WHERE snapshot_id = ? ORDER BY strike_price",
        [snapshot["snapshot_id"]],
    )
    return snapshot


def load_snapshot(cur: Any, snapshot_id: uuid.UUID | str) -> dict[str, Any] | None:
    """One snapshot with its levels and strikes, or None."""
    found = _fetch(cur, _SELECT + " WHERE snapshot_id = ?", [str(snapshot_id)])
    return _with_strikes(cur, found[0]) if found else None


def latest_snapshot(
    cur: Any, symbol: str, expiry_filter: ExpiryFilter | str | None = None
) -> dict[str, Any] | None:
    """The most recent snapshot (by market instant, then processing time) of a symbol."""
    sql = _SELECT + " WHERE market_symbol = ?"
    params: list[Any] = [symbol.upper()]
    if expiry_filter is not None:
        sql += " AND expiry_filter = ?"
        params.append(ExpiryFilter(expiry_filter).value)
    sql += " ORDER BY snapshot_at DESC, processed_at DESC LIMIT 1"
    found = _fetch(cur, sql, params)
    return _with_strikes(cur, found[0]) if found else None


def list_snapshots(
    cur: Any, symbol: str | None = None, date: date | str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Snapshots newest first, levels only (no strikes), filtered by symbol and market date."""
    clauses: list[str] = []
    params: list[Any] = []
    if symbol:
        clauses.append("market_symbol = ?")
        params.append(symbol.upper())
    if date is not None:
        clauses.append("snapshot_date = ?")
        params.append(date if not isinstance(date, str) else _parse_date(date))
    sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "")
    sql += " ORDER BY snapshot_at DESC, processed_at DESC LIMIT ?"
    params.append(max(1, min(int(limit), 10_000)))
    return _fetch(cur, sql, params)


def snapshot_id_of_job(cur: Any, job_id: uuid.UUID) -> uuid.UUID | None:
    """The snapshot a job produced, if it has finished one."""
    found = cur.execute(
        "SELECT snapshot_id FROM gex_snapshots WHERE job_id = ?", [str(job_id)]
    ).fetchone()
    return None if found is None else uuid.UUID(str(found[0]))


def gex_history(cur: Any, symbol: str, limit: int) -> list[tuple[str, float]]:
    """(snapshot_at ISO string, total_gex) oldest first: the last `limit` snapshots of a symbol."""
    found = cur.execute(
        "SELECT snapshot_at, total_gex FROM ("
        " SELECT snapshot_at, total_gex, processed_at FROM gex_snapshots WHERE market_symbol = ?"
        " ORDER BY snapshot_at DESC, processed_at DESC LIMIT ?) ORDER BY snapshot_at",
        [symbol.upper(), max(1, int(limit))],
    ).fetchall()
    return [(_json_value(at), float(total)) for at, total in found]


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput.from_problems(
            "date", [Problem(path="date", message=f"{text!r} is not a date (YYYY-MM-DD)")]
        ) from None
