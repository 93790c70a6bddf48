"""The DuckDB store: one writer thread with group commit, reader threads beside it.

Threading rule (the one paragraph to read before touching this file): DuckDB
allows one connection per process to write, and duckdb 2.x raises if one
connection object is used by two threads at once. So the store owns one
connection; the writer thread uses its own cursor and is the only code that
writes; every reader thread gets its own cursor (thread-local). The asyncio
event loop never calls DuckDB: `commit()` hands changes to the writer and awaits
a future; `read()` runs on the reader pool; `edit()` runs a read-check-write on
the writer between group commits (see `Edit`).

Group commit: the writer takes whatever changes are waiting (up to
`group_commit_max_changes`, waiting at most `group_commit_window_ms` for more),
coalesces them per row, writes each table with one Arrow-backed statement and
commits once. Every caller whose changes were in that transaction is told
"durable" only after COMMIT returns. If the batch fails, each caller's changes
are retried in a transaction of their own, so one bad write never takes the
others down with it; a caller's own changes are all-or-nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

import duckdb

from gexdaemon.config import Config
from gexdaemon.core.models import (
    DataSource,
    JobEvent,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
)
from gexdaemon.core.settings import StorageSettings
from gexdaemon.storage import lake as lakefs
from gexdaemon.storage import rows
from gexdaemon.storage.archive import (
    ArchiveReport,
    archive_finished,
    finish_interrupted_batches,
    refresh_archive_views,
)
from gexdaemon.storage.errors import DataDirLocked, StorageError, StoreClosed, WalReplayFailed
from gexdaemon.storage.journal import (
    Journal,
    JournalError,
    Replay,
    keep_refused,
    next_segment_no,
)
from gexdaemon.storage.journal import iter_rows as iter_journal_rows
from gexdaemon.storage.journal import replay as journal_replay
from gexdaemon.storage.schema import migrate

if TYPE_CHECKING:
    import pyarrow as pa  # loaded with the first snapshot or big batch, not at start

T = TypeVar("T")
P = ParamSpec("P")
Connection = duckdb.DuckDBPyConnection


# ---------------------------------------------------------------------------
# Changes: what callers hand to the writer
# ---------------------------------------------------------------------------


class Change(Protocol):
    def add_to(self, plan: WritePlan) -> None: ...


class NewRows(Change, Protocol):
    """A change that only inserts (a new request, job or source): it may be journaled."""

    def journal_rows(self) -> list[tuple[rows.TableSpec, Mapping[str, Any]]]: ...


@dataclass(frozen=True, slots=True)
class PutRequest:
    request: PriorityRequest
    _row: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", rows.request_row(self.request))

    def add_to(self, plan: WritePlan) -> None:
        plan.upsert(rows.REQUESTS, (self._row["request_id"],), self._row)

    def journal_rows(self) -> list[tuple[rows.TableSpec, Mapping[str, Any]]]:
        return [(rows.REQUESTS, self._row)]


@dataclass(frozen=True, slots=True)
class PutJob:
    """Write a job's state; `event` is the history row of the transition, if any.

    A job whose event is its creation (no previous status) is inserted; any other
    is an update of an existing row, and updating a job the table does not hold
    is an error, never a silent no-op. With `previous` (the state before the
    transition) only the columns that changed are written. Rows are built here, on
    the caller's thread, so that work overlaps the writer's time inside DuckDB.

    The creation event (none -> QUEUED) is not stored: it is exactly the job row's
    `queued_at` and status, and `jobs.job_history` derives it. That keeps a
    submission to two statements (DuckDB pays about 1 ms per statement).
    """

    job: ProcessingJob
    event: JobEvent | None = None
    previous: ProcessingJob | None = None
    _row: dict[str, Any] = field(init=False, repr=False, compare=False)
    _event_row: dict[str, Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        row = (
            rows.job_row(self.job)
            if self.previous is None
            else rows.job_delta(self.previous, self.job)
        )
        object.__setattr__(self, "_row", row)
        creation = self.event is not None and self.event.from_status is None
        object.__setattr__(
            self,
            "_event_row",
            None if self.event is None or creation else rows.event_row(self.event),
        )

    def add_to(self, plan: WritePlan) -> None:
        key = (self._row["job_id"],)
        created = self.event is not None and self.event.from_status is None
        if created:
            plan.insert(rows.JOBS, key, rows.job_row(self.job) if self.previous else self._row)
        elif plan.has_insert(rows.JOBS, key):
            plan.insert(rows.JOBS, key, rows.job_row(self.job))
        else:
            plan.update(rows.JOBS, key, self._row)
        if self._event_row is not None:
            plan.append(rows.EVENTS, self._event_row)

    def journal_rows(self) -> list[tuple[rows.TableSpec, Mapping[str, Any]]]:
        if self.event is None or self.event.from_status is not None or self.previous is not None:
            raise TypeError("only a job's creation goes through the intake journal")
        return [(rows.JOBS, self._row)]


@dataclass(frozen=True, slots=True)
class MirrorJob:
    """A job as the cluster's board holds it, copied into this node's cache: the whole
    row, inserted or replaced (the board is the record in cluster mode), and the history
    entries the cluster announced for it."""

    job: ProcessingJob
    history: tuple[JobEvent, ...] = ()  # what the cluster announced since the last copy

    def add_to(self, plan: WritePlan) -> None:
        plan.upsert(rows.JOBS, (str(self.job.job_id),), rows.job_row(self.job))
        for event in self.history:
            plan.append(rows.EVENTS, rows.event_row(event))


@dataclass(frozen=True, slots=True)
class PutSource:
    source: DataSource

    def add_to(self, plan: WritePlan) -> None:
        plan.upsert(rows.SOURCES, (str(self.source.source_id),), rows.source_row(self.source))

    def journal_rows(self) -> list[tuple[rows.TableSpec, Mapping[str, Any]]]:
        return [(rows.SOURCES, rows.source_row(self.source))]


@dataclass(frozen=True, slots=True)
class PutIdempotencyKey:
    """An idempotency key and the request and job it stands for (journaled with them)."""

    key: str
    fingerprint: str
    request_id: uuid.UUID
    job_id: uuid.UUID
    created_at: datetime

    def _row(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.key,
            "fingerprint": self.fingerprint,
            "request_id": str(self.request_id),
            "job_id": str(self.job_id),
            "created_at": self.created_at,
        }

    def add_to(self, plan: WritePlan) -> None:
        plan.upsert(rows.IDEMPOTENCY, (self.key,), self._row())

    def journal_rows(self) -> list[tuple[rows.TableSpec, Mapping[str, Any]]]:
        return [(rows.IDEMPOTENCY, self._row())]


@dataclass(frozen=True, slots=True)
class ForgetKeysBefore:
    """Delete idempotency keys used before `cutoff` (past their window)."""

    cutoff: datetime

    def add_to(self, plan: WritePlan) -> None:
        plan.statement("DELETE FROM idempotency_keys WHERE created_at < ?", (self.cutoff,))


@dataclass(frozen=True, slots=True)
class PutRule:
    rule: PriorityRule

    def add_to(self, plan: WritePlan) -> None:
        plan.upsert(rows.RULES, (str(self.rule.rule_id),), rows.rule_row(self.rule))


@dataclass(frozen=True, slots=True)
class DeleteRule:
    rule_id: uuid.UUID

    def add_to(self, plan: WritePlan) -> None:
        plan.statement("DELETE FROM priority_rules WHERE rule_id = ?", (str(self.rule_id),))


@dataclass(frozen=True, slots=True)
class PutSnapshot:
    """A snapshot row and its strike rows; idempotent on `snapshot_id`.

    `lake_written`, when given, resolves once the snapshot's lake file is durable
    (or fails with why it is not): the writer inserts the rows meanwhile but commits
    only after it, so a committed row never names a file a crash could lose, while
    the file and the rows are written at the same time.
    """

    snapshot: Mapping[str, Any]
    strikes: pa.Table
    lake_written: concurrent.futures.Future[None] | None = None

    def add_to(self, plan: WritePlan) -> None:
        plan.snapshot(self.snapshot, self.strikes)
        if self.lake_written is not None:
            plan.before_commit(self.lake_written)


@dataclass(frozen=True, slots=True)
class Statement:
    """A parameterised statement for rare writes that have no typed change."""

    sql: str
    params: Sequence[Any] = ()

    def add_to(self, plan: WritePlan) -> None:
        plan.statement(self.sql, self.params)


@dataclass(frozen=True, slots=True)
class Edit(Generic[T]):
    """What a read-check-write returns: the caller's answer and the changes that go with it.

    Run with `Store.edit` (or `edit_sync`): the function reads through the writer's
    connection between group commits and its changes commit before the next batch,
    so no other write lands between the check and the write (two rules can never
    take one name) and no lock is needed.
    """

    result: T
    changes: Sequence[Change] = ()


class WritePlan:
    """Changes of one transaction, coalesced per row and grouped per table."""

    ORDER = (rows.SOURCES, rows.REQUESTS, rows.JOBS, rows.EVENTS, rows.RULES, rows.IDEMPOTENCY)

    def __init__(self) -> None:
        self._inserts: dict[str, dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self._updates: dict[str, dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self._upserts: dict[str, dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self._appends: dict[str, list[Mapping[str, Any]]] = {}
        self._snapshots: list[tuple[Mapping[str, Any], pa.Table]] = []
        self._statements: list[tuple[str, Sequence[Any]]] = []
        self._missing: dict[str, dict[tuple[str, ...], Mapping[str, Any]]] = {}
        self._prerequisites: list[concurrent.futures.Future[None]] = []
        self.size = 0

    def insert_missing(
        self, spec: rows.TableSpec, key: tuple[str, ...], row: Mapping[str, Any]
    ) -> None:
        """Insert unless a row with this key exists (a journal replay)."""
        self._missing.setdefault(spec.name, {})[key] = row
        self.size += 1

    def upsert(self, spec: rows.TableSpec, key: tuple[str, ...], row: Mapping[str, Any]) -> None:
        self._upserts.setdefault(spec.name, {})[key] = row
        self.size += 1

    def insert(self, spec: rows.TableSpec, key: tuple[str, ...], row: Mapping[str, Any]) -> None:
        self._inserts.setdefault(spec.name, {})[key] = row
        self._updates.get(spec.name, {}).pop(key, None)
        self.size += 1

    def has_insert(self, spec: rows.TableSpec, key: tuple[str, ...]) -> bool:
        return key in self._inserts.get(spec.name, {})

    def update(self, spec: rows.TableSpec, key: tuple[str, ...], row: Mapping[str, Any]) -> None:
        """Update of some columns of one row; updates of one row in a batch merge."""
        pending = self._updates.setdefault(spec.name, {})
        earlier = pending.get(key)
        pending[key] = row if earlier is None else {**earlier, **row}
        self.size += 1

    def append(self, spec: rows.TableSpec, row: Mapping[str, Any]) -> None:
        self._appends.setdefault(spec.name, []).append(row)
        self.size += 1

    def snapshot(self, row: Mapping[str, Any], strikes: pa.Table) -> None:
        self._snapshots.append((row, strikes))
        self.size += 1

    def statement(self, sql: str, params: Sequence[Any]) -> None:
        self._statements.append((sql, params))
        self.size += 1

    def before_commit(self, done: concurrent.futures.Future[None]) -> None:
        """Commit only once `done` resolves; if it fails, the transaction rolls back."""
        self._prerequisites.append(done)

    def wait_prerequisites(self) -> None:
        for done in self._prerequisites:
            done.result(timeout=PREREQUISITE_TIMEOUT_S)

    def execute(self, con: Connection) -> None:
        for spec in self.ORDER:
            missing = list(self._missing.get(spec.name, {}).values())
            if missing:
                _with_relation(con, spec, missing, None, spec.insert_missing_sql, fetch=False)
            fresh = list(self._inserts.get(spec.name, {}).values())
            if fresh:
                _insert_rows(con, spec, fresh, plain=True)
            batch = list(self._upserts.get(spec.name, {}).values())
            batch += self._appends.get(spec.name, [])
            if batch:
                _insert_rows(con, spec, batch)
            by_columns: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
            for row in self._updates.get(spec.name, {}).values():
                by_columns.setdefault(tuple(row), []).append(row)
            for columns, changed in by_columns.items():
                _update_rows(con, spec, changed, columns)
        if self._snapshots:
            self._write_snapshots(con)
        for sql, params in self._statements:
            con.execute(sql, list(params))

    def _write_snapshots(self, con: Connection) -> None:
        heads = rows.SNAPSHOTS.to_arrow([row for row, _ in self._snapshots])
        inserted = {
            str(r[0]) for r in _insert_arrow(con, rows.SNAPSHOTS, heads, returning="snapshot_id")
        }
        fresh = [t for row, t in self._snapshots if str(row["snapshot_id"]) in inserted]
        if fresh:
            import pyarrow  # noqa: PLC0415 - a snapshot already loaded it

            strikes = pyarrow.concat_tables([t.select(rows.STRIKES.column_names) for t in fresh])
            _insert_arrow(con, rows.STRIKES, strikes.cast(rows.STRIKES.arrow_schema()))


_relation_ids = itertools.count()


# How long a transaction waits for what must be durable before it commits (a lake file
# being written beside it); past this the transaction rolls back and the caller is told.
PREREQUISITE_TIMEOUT_S = 120.0

# Below this many rows a table's changes travel as a parameterised VALUES list; above it,
# as a registered Arrow table. DuckDB pays about 3 ms to set up an Arrow scan of one row
# and under 1 ms for a VALUES list, while Arrow wins by far for thousands of rows.
VALUES_MAX_ROWS = 48


def _insert_rows(
    con: Connection,
    spec: rows.TableSpec,
    batch: Sequence[Mapping[str, Any]],
    *,
    returning: str = "",
    plain: bool = False,
) -> list[tuple[Any, ...]]:
    make = spec.plain_insert_sql if plain else spec.insert_sql
    return _with_relation(
        con, spec, batch, None, lambda name: make(name, returning=returning), fetch=bool(returning)
    )


def _insert_arrow(
    con: Connection, spec: rows.TableSpec, table: pa.Table, *, returning: str = ""
) -> list[tuple[Any, ...]]:
    return _with_arrow(
        con, table, lambda name: spec.insert_sql(name, returning=returning), fetch=bool(returning)
    )


def _update_rows(
    con: Connection,
    spec: rows.TableSpec,
    batch: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
) -> None:
    found = _with_relation(
        con, spec, batch, columns, lambda name: spec.update_sql(name, columns), fetch=True
    )
    updated = int(found[0][0]) if found else 0
    if updated != len(batch):
        raise StorageError(
            f"{spec.name}: {len(batch) - updated} of {len(batch)} updated rows do not exist "
            "(an update of a row that was never inserted, or was archived)"
        )


def _with_relation(
    con: Connection,
    spec: rows.TableSpec,
    batch: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None,
    make_sql: Callable[[str], str],
    *,
    fetch: bool,
) -> list[tuple[Any, ...]]:
    """Run `make_sql(relation)` over the rows, as a VALUES list or an Arrow table by size."""
    names = list(columns) if columns is not None else spec.column_names
    if len(batch) > VALUES_MAX_ROWS:
        return _with_arrow(con, spec.to_arrow(batch, columns), make_sql, fetch=fetch)
    row_slots = "(" + ", ".join(["?"] * len(names)) + ")"
    relation = f"(VALUES {', '.join([row_slots] * len(batch))}) AS _v({', '.join(names)})"
    params = [row[name] for row in batch for name in names]
    result = con.execute(make_sql(relation), params)
    return result.fetchall() if fetch else []


def _with_arrow(
    con: Connection, table: pa.Table, make_sql: Callable[[str], str], *, fetch: bool
) -> list[tuple[Any, ...]]:
    name = f"_gexd_batch_{next(_relation_ids)}"
    con.register(name, table)
    try:
        result = con.execute(make_sql(f"{name} AS _v"))
        fetched = result.fetchall() if fetch else []
    except BaseException:
        # In an aborted transaction unregister fails too; keep the original error.
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)
    return fetched


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------


@dataclass
class _Pending:
    """One caller's changes and how to tell it the outcome (a thread future or a loop future)."""

    changes: Sequence[Change]
    future: concurrent.futures.Future[None] | None = None
    aio: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    journal_seq: int = 0  # > 0: these changes are also in the intake journal


@dataclass
class _Exclusive:
    fn: Callable[[Connection], Any]
    future: concurrent.futures.Future[Any]


_STOP = object()


@dataclass
class WriterStats:
    commits: int = 0
    changes: int = 0
    callers: int = 0
    failed_batches: int = 0
    last_batch_callers: int = 0
    last_commit_ms: float = 0.0
    max_batch_callers: int = 0


@dataclass
class StoreOptions:
    path: Path
    lake_dir: Path
    archive_dir: Path
    memory_limit: str = "1GB"
    threads: int = 2
    window_ms: float = 1.0
    max_changes: int = 5000
    read_threads: int = 2
    retention_days: float = 30.0
    journal: bool = True  # new requests are durable in the intake journal (see journal.py)
    journal_window_ms: float = 20.0  # how long journaled rows may wait to share a commit

    @property
    def journal_dir(self) -> Path:
        return self.path.parent / "journal"

    @classmethod
    def from_config(cls, config: Config) -> StoreOptions:
        s: StorageSettings = config.settings.storage
        return cls(
            path=config.duckdb_path,
            lake_dir=config.lake_dir,
            archive_dir=config.archive_dir,
            memory_limit=s.memory_limit,
            threads=s.threads,
            window_ms=s.group_commit_window_ms,
            max_changes=s.group_commit_max_changes,
            read_threads=s.read_threads,
            retention_days=s.retention_days,
            journal_window_ms=s.journal_window_ms,
        )


LAKE_EMPTY_COLUMNS = {
    "symbol": "VARCHAR",
    "date": "DATE",
    "snapshot_id": "UUID",
    "snapshot_at": "TIMESTAMPTZ",
    "strike_price": "DOUBLE",
    "net_gex": "DOUBLE",
}


@dataclass
class Store:
    """Open with `Store.open(options)`; close with `close()` (or use as a context manager)."""

    options: StoreOptions
    _con: Connection
    _queue: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    _writer: threading.Thread | None = None
    _readers: concurrent.futures.ThreadPoolExecutor | None = None
    _local: threading.local = field(default_factory=threading.local)
    _cursors: list[Connection] = field(default_factory=list)
    _cursor_lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False
    _fatal: BaseException | None = None
    _journal: Journal | None = None
    stats: WriterStats = field(default_factory=WriterStats)
    # What the intake journal held at open (replayed with insert-if-missing).
    journal_replay: Replay | None = None

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    def open(cls, options: StoreOptions, *, auto_migrate: bool = True) -> Store:
        options.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(options)
        store = cls(options=options, _con=con)
        try:
            if auto_migrate:
                migrate(con)
            finish_interrupted_batches(con, options.archive_dir)
            lakefs.remove_stale_temporaries(options.lake_dir)
            store._refresh_views(con)
            if options.journal:
                store.journal_replay = replay_journal(con, options.journal_dir)
        except BaseException:
            con.close()
            raise
        store._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.read_threads, thread_name_prefix="gexd-read"
        )
        store._writer = threading.Thread(target=store._writer_loop, name="gexd-writer", daemon=True)
        store._writer.start()
        if options.journal:
            store._journal = Journal(options.journal_dir)
            store._journal.start(next_segment_no(options.journal_dir))
        return store

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        if self._journal is not None:
            # The writer drained its queue: unless the database failed, DuckDB holds every
            # journaled record and the segments can go.
            self._journal.close(all_applied=self._fatal is None and self._journal.backlog == 0)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with contextlib.suppress(duckdb.Error):
            if self._fatal is None:
                self._con.execute("CHECKPOINT")
        for cur in self._cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------

    def submit(self, changes: Sequence[Change]) -> concurrent.futures.Future[None]:
        """Queue changes for the next group commit; the future resolves once durable."""
        self._check_open()
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(_Pending(tuple(changes), future=fut))
        return fut

    async def commit(self, changes: Sequence[Change]) -> None:
        """Write `changes` atomically; returns only after they are committed.

        Once queued, the changes are written even if the awaiting task is cancelled
        (a caller that goes away must not make an accepted write half-happen).
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(tuple(changes), aio=fut, loop=loop))
        await fut  # if the caller is cancelled here, the writer still writes and skips the wake-up

    async def accept(self, changes: Sequence[NewRows]) -> None:
        """Write new rows; returns once they are durable (journaled or committed).

        The rows go to the intake journal and to the writer at once, in the same order
        as every other change, so a later update of the same row always lands after
        them. The journal's sync (about 0.15 ms) usually answers first; if the journal
        cannot be written, the answer waits for DuckDB's commit instead.
        """
        self._check_open()
        journal = self._journal
        if journal is None:
            await self.commit(changes)
            return
        try:
            seq, synced = journal.append([row for c in changes for row in c.journal_rows()])
        except JournalError:
            await self.commit(changes)
            return
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        committed.add_done_callback(_observed)
        self._queue.put(_Pending(tuple(changes), aio=committed, loop=loop, journal_seq=seq))
        try:
            await synced
        except JournalError:
            await committed

    def commit_sync(self, changes: Sequence[Change], timeout: float | None = None) -> None:
        self.submit(changes).result(timeout)

    def run_exclusive(self, fn: Callable[[Connection], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on the writer's connection between group commits (archive, checkpoint)."""
        self._check_open()
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Exclusive(fn, fut))
        return fut

    def edit_sync(
        self, fn: Callable[Concatenate[Connection, P], Edit[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Read, check and write in one step on the writer (see `Edit`); returns the result."""
        return self._queue_edit(lambda con: fn(con, *args, **kwargs)).result()

    async def edit(
        self, fn: Callable[Concatenate[Connection, P], Edit[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await asyncio.wrap_future(self._queue_edit(lambda con: fn(con, *args, **kwargs)))

    def _queue_edit(self, decide: Callable[[Connection], Edit[T]]) -> concurrent.futures.Future[T]:
        def run(wcon: Connection) -> T:
            edit = decide(wcon)  # its own errors (a taken name, a bad condition) reach the caller
            if edit.changes:
                written: concurrent.futures.Future[None] = concurrent.futures.Future()
                self._flush(wcon, [_Pending(tuple(edit.changes), future=written)])
                written.result()
            return edit.result

        return self.run_exclusive(run)

    # -- reads ----------------------------------------------------------------

    def read_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(cursor, *args, **kwargs)` on this thread's reader cursor."""
        self._check_open()
        if self._journal is not None:
            self._journal.wait_applied_sync(self._journal.last_seq)
        return fn(self._cursor(), *args, **kwargs)

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(cursor, *args, **kwargs)` on the reader pool, off the event loop.

        A read sees every request accepted before it was called (it waits, a few ms at
        most, for DuckDB to hold what the journal already acknowledged).
        """
        self._check_open()
        assert self._readers is not None
        if self._journal is not None:
            behind = self._journal.wait_applied(self._journal.last_seq)
            if behind is not None:
                await behind
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, lambda: fn(self._cursor(), *args, **kwargs)
        )

    def fetch_sync(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one statement as dicts: for scripts, tests and benchmarks."""
        return self.read_sync(fetch_dicts, sql, params)

    # -- internals -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")
        if self._fatal is not None:
            raise StorageError(
                f"the database stopped accepting writes after a fatal error ({self._fatal}); "
                "restart the daemon (committed data is safe)"
            )

    def _cursor(self) -> Connection:
        cur: Connection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
            with self._cursor_lock:
                self._cursors.append(cur)
        return cur

    def _writer_loop(self) -> None:
        wcon = self._con.cursor()
        window = self.options.window_ms / 1000.0
        journal_window = max(window, self.options.journal_window_ms / 1000.0)
        held: Any = None
        stopping = False
        try:
            while not stopping:
                item = held if held is not None else self._queue.get()
                held = None
                if item is _STOP:
                    break
                if isinstance(item, _Exclusive):
                    self._run_exclusive(wcon, item)
                    continue
                batch: list[_Pending] = [item]
                size = len(item.changes)
                first = time.monotonic()
                deadline = first + window
                # Rows the journal already made durable have nobody waiting on DuckDB:
                # while only they are in the batch, wait longer and write one bigger
                # transaction (DuckDB's cost is per statement, not per row). Anything
                # a caller awaits ends the wait.
                only_journaled = item.journal_seq > 0
                while size < self.options.max_changes:
                    if only_journaled:
                        deadline = first + journal_window
                    remaining = deadline - time.monotonic()
                    try:
                        nxt = (
                            self._queue.get(timeout=remaining)
                            if remaining > 0
                            else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    if isinstance(nxt, _Exclusive):
                        held = nxt
                        break
                    batch.append(nxt)
                    size += len(nxt.changes)
                    if not nxt.journal_seq and only_journaled:
                        only_journaled = False
                        deadline = min(deadline, time.monotonic() + window)
                self._flush_or_stop(wcon, batch)
            # Drain what was queued before the stop so nothing accepted is dropped.
            leftovers: list[_Pending] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Pending):
                    leftovers.append(item)
                elif isinstance(item, _Exclusive):
                    item.future.set_exception(StoreClosed("the store closed before this ran"))
            if leftovers:
                self._flush_or_stop(wcon, leftovers)
        finally:
            wcon.close()

    def _flush_or_stop(self, wcon: Connection, batch: list[_Pending]) -> None:
        """A flush that fails in our own code (not in DuckDB) stops writes, not the thread:
        a dead writer would leave every caller waiting for an answer that never comes."""
        try:
            self._flush(wcon, batch)
        except Exception as exc:
            self._fatal = exc
            _settle([(p, _wrap_write_error(exc)) for p in batch])
            if self._journal is not None:
                self._journal.release_waiters()

    def _run_exclusive(self, wcon: Connection, item: _Exclusive) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        try:
            item.future.set_result(item.fn(wcon))
        except BaseException as exc:
            item.future.set_exception(exc)

    def _flush(self, wcon: Connection, batch: list[_Pending]) -> None:
        if self._fatal is not None:
            error = StorageError(f"database unavailable: {self._fatal}")
            _settle([(p, error) for p in batch])
            if self._journal is not None:
                self._journal.release_waiters()  # journaled rows wait for the next start
            return
        started = time.perf_counter()
        plan = WritePlan()
        for p in batch:
            for change in p.changes:
                change.add_to(plan)
        try:
            self._transaction(wcon, plan)
        except Exception as exc:
            self.stats.failed_batches += 1
            if len(batch) == 1 or self._fatal is not None:
                failed = [(p, _wrap_write_error(exc)) for p in batch]
                self._journal_outcomes(failed)
                _settle(failed)
                return
            outcomes: list[tuple[_Pending, BaseException | None]] = []
            for p in batch:  # isolate the bad caller; the others still commit
                single = WritePlan()
                for change in p.changes:
                    change.add_to(single)
                try:
                    self._transaction(wcon, single)
                except Exception as one_exc:
                    outcomes.append((p, _wrap_write_error(one_exc)))
                else:
                    outcomes.append((p, None))
            self._journal_outcomes(outcomes)
            _settle(outcomes)
            return
        self._journal_applied([p.journal_seq for p in batch if p.journal_seq])
        elapsed = (time.perf_counter() - started) * 1000
        st = self.stats
        st.commits += 1
        st.changes += plan.size
        st.callers += len(batch)
        st.last_batch_callers = len(batch)
        st.max_batch_callers = max(st.max_batch_callers, len(batch))
        st.last_commit_ms = elapsed
        _settle([(p, None) for p in batch])

    def _journal_applied(self, seqs: list[int]) -> None:
        if seqs and self._journal is not None:
            self._journal.applied(seqs)

    def _journal_outcomes(self, outcomes: Sequence[tuple[_Pending, BaseException | None]]) -> None:
        """Journaled changes DuckDB committed are done; those it refused are set aside."""
        journal = self._journal
        if journal is None:
            return
        if self._fatal is not None:
            journal.release_waiters()  # kept in the journal: replayed at the next start
            return
        done = []
        for p, error in outcomes:
            if not p.journal_seq:
                continue
            if error is None:
                done.append(p.journal_seq)
            else:
                journal.refused(p.journal_seq, str(error))
        journal.applied(done)

    def _transaction(self, wcon: Connection, plan: WritePlan) -> None:
        wcon.execute("BEGIN TRANSACTION")
        try:
            plan.execute(wcon)
            plan.wait_prerequisites()
            wcon.execute("COMMIT")
        except duckdb.FatalException as exc:
            self._fatal = exc
            raise
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                wcon.execute("ROLLBACK")
            raise

    def _refresh_views(self, con: Connection) -> None:
        """(Re)create the views over the lake and the archive (paths are absolute)."""
        opts = self.options
        con.execute(
            lakefs.view_sql(
                "gex_lake",
                opts.lake_dir / "symbol=*" / "date=*" / "*.parquet",
                LAKE_EMPTY_COLUMNS,
                present=next(lakefs.snapshot_files(opts.lake_dir), None) is not None,
                hive=True,
            )
        )
        refresh_archive_views(con, opts.archive_dir)

    def refresh_views(self) -> concurrent.futures.Future[None]:
        return self.run_exclusive(self._refresh_views)

    def archive(
        self, now: datetime | None = None, retention_days: float | None = None
    ) -> concurrent.futures.Future[ArchiveReport]:
        """Archive finished jobs older than the retention, serialised with group commits."""
        now = now or datetime.now(UTC)
        days = self.options.retention_days if retention_days is None else retention_days
        cutoff = now - timedelta(days=days)
        return self.run_exclusive(
            lambda con: archive_finished(con, self.options.archive_dir, cutoff, now)
        )


def _settle(outcomes: Sequence[tuple[_Pending, BaseException | None]]) -> None:
    """Tell every caller its outcome: one wake-up per event loop, not one per caller."""
    per_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]
    ] = {}
    for pending, error in outcomes:
        if pending.future is not None:
            if pending.future.done():
                continue
            if error is None:
                pending.future.set_result(None)
            else:
                pending.future.set_exception(error)
        elif pending.aio is not None and pending.loop is not None:
            per_loop.setdefault(pending.loop, []).append((pending.aio, error))
    for loop, items in per_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_on_loop, items)


def _settle_on_loop(items: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for fut, error in items:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


def _observed(fut: asyncio.Future[None]) -> None:
    """The writer's answer to an accepted change is a fallback; nobody may await it."""
    if not fut.cancelled():
        fut.exception()


def replay_journal(con: Connection, folder: Path) -> Replay:
    """Insert what the intake journal holds and DuckDB does not; then drop the segments.

    All records go in one transaction; if the database refuses it, each record goes
    on its own and a record it still refuses is kept beside the journal with the
    reason (`refused-*.json`), so one bad record never stops the daemon from starting.
    """
    found = journal_replay(folder)
    refused: list[Path] = []
    if found.records:
        cur = con.cursor()
        try:
            try:
                _insert_missing(cur, [record for _raw, record in found.found])
            except duckdb.FatalException:
                raise
            except duckdb.Error:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                for i, (raw, record) in enumerate(found.found):
                    try:
                        _insert_missing(cur, [record])
                    except duckdb.FatalException:
                        raise
                    except duckdb.Error as exc:
                        reason = str(_wrap_write_error(exc))
                        refused.append(keep_refused(folder, f"{stamp}-replay-{i:06d}", raw, reason))
        finally:
            cur.close()
    for path in found.segments:
        path.unlink()
    if found.segments:
        lakefs.fsync_dir(folder)
    return Replay(
        found=found.found, segments=found.segments, damaged=found.damaged, refused=refused
    )


def _insert_missing(cur: Connection, records: Sequence[Mapping[str, list[dict[str, Any]]]]) -> None:
    plan = WritePlan()
    for spec, row in iter_journal_rows(records):
        key = tuple(str(row[k]) for k in spec.key)
        if spec is rows.IDEMPOTENCY:
            # Keys are only ever written through the journal, in order: the last use wins
            # (a key may be taken again once its 24 hours are over).
            plan.upsert(spec, key, row)
        else:  # rows DuckDB may hold a newer state of: never replace them
            plan.insert_missing(spec, key, row)
    cur.execute("BEGIN TRANSACTION")
    try:
        plan.execute(cur)
        cur.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise


def fetch_dicts(cur: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of one parameterised statement as dicts keyed by column name."""
    result = cur.execute(sql, list(params))
    names = [d[0] for d in result.description or ()]
    return rows.rows_as_dicts(names, result.fetchall())


def _wrap_write_error(exc: BaseException) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    err = StorageError(f"write refused by the database: {exc}")
    err.__cause__ = exc
    return err


# ---------------------------------------------------------------------------
# Opening the file
# ---------------------------------------------------------------------------


def connect(options: StoreOptions, *, read_only: bool = False) -> Connection:
    """Open the DuckDB file with explicit limits; turn known failures into clear errors."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": options.memory_limit,
        "threads": options.threads,
    }
    try:
        con = duckdb.connect(str(options.path), read_only=read_only, config=config)
        # Instants are TIMESTAMPTZ; casts and date parts must mean UTC whatever the host's
        # zone is (see processing_duration in schema.py).
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        # Sandbox: SQL may touch files only inside the data directory (the lake, the
        # archive, DuckDB's own spill files). `gexdaemon query` and POST /v1/query run
        # user SQL; read_csv('/etc/passwd'), COPY ... TO elsewhere, ATTACH and INSTALL
        # all fail, and the setting cannot be turned back on while the database runs.
        allowed = sorted(
            {str(d) + "/" for d in (options.path.parent, options.lake_dir, options.archive_dir)}
        )
        con.execute("SET allowed_directories = ?", [allowed])
        con.execute("SET enable_external_access = false")
        return con
    except duckdb.Error as exc:
        text = str(exc)
        wal = wal_path(options.path)
        if "WAL" in text and wal.exists():
            raise WalReplayFailed(
                f"DuckDB could not replay the write-ahead log {wal}: {text.splitlines()[0]}. "
                "Nothing has been moved or deleted. Everything up to the last checkpoint is in "
                f"{options.path}; the WAL holds the changes after it. To start anyway, run "
                "`gexdaemon recover --move-wal`: it moves the WAL aside to a "
                "`.unreplayable-<time>` file (kept for support, never deleted) and opens the "
                "database at its last checkpoint. Changes in that WAL will be missing."
            ) from exc
        if "lock" in text.lower():
            raise DataDirLocked(
                f"{options.path} is open in another process: {text.splitlines()[0]}"
            ) from exc
        raise StorageError(f"cannot open {options.path}: {text.splitlines()[0]}") from exc


def wal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")


def move_wal_aside(db_path: Path, now: datetime | None = None) -> Path | None:
    """Move an unreplayable WAL out of the way (never delete it); returns its new path."""
    wal = wal_path(db_path)
    if not wal.exists():
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = wal.with_name(f"{wal.name}.unreplayable-{stamp}")
    os.replace(wal, target)
    lakefs.fsync_dir(wal.parent)
    return target
