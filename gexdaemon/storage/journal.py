"""The intake journal: new requests are durable once one fsync'd append says so.

DuckDB pays about 1.5 ms per statement and 0.5 ms per commit, whatever the batch
size, so a submission acknowledged only after its DuckDB transaction waits 3 to 7 ms
and a daemon with 16 clients tops out near 1,500 submits/s. An append to a file and
one `fdatasync` cost about 0.15 ms, and one sync covers every record that arrived
while the previous one ran. So new requests (their request, job and source rows:
inserts only, nothing that changes an existing row) are written here first and
acknowledged once synced; the same changes go to the DuckDB writer at the same time,
in the same order, and a record is forgotten once DuckDB has committed it.

On disk: `journal/intake-<n>.log` segments of framed records (length, CRC-32,
msgpack payload). A torn record at the end of the newest segment is an append that
never finished and was never acknowledged; it is dropped. Anything else that does not
read back is kept aside (`*.damaged-<time>`), never deleted. At open, the store
replays every record still on disk with insert-if-missing, so a crash between the
sync and DuckDB's commit loses nothing and a replay of what DuckDB already holds
changes nothing. A record DuckDB refuses (a bug: every row was validated) is
written to `journal/refused-<n>.json` with the database's answer.

Threading: `append` may be called from any thread; one journal thread writes and
syncs; the store's writer thread reports what it committed with `applied`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from gexdaemon.storage import lake as lakefs
from gexdaemon.storage import rows

MAGIC = b"GEXJ1\n"
FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
SEGMENT_BYTES = 32 * 1024 * 1024  # start a new segment past this size
# The tables a journal record may hold rows of, and how replay writes them.
JOURNALED = (rows.SOURCES, rows.REQUESTS, rows.JOBS, rows.IDEMPOTENCY)  # in insert order
TABLES: dict[str, rows.TableSpec] = {spec.name: spec for spec in JOURNALED}
_DURATIONS = {
    spec.name: [c.name for c in spec.columns if c.arrow == rows.DUR] for spec in TABLES.values()
}

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()

JournalRows = Sequence[tuple[rows.TableSpec, Mapping[str, Any]]]


class JournalError(Exception):
    """The journal cannot be written (the disk refused); nothing was acknowledged."""


@dataclass(frozen=True)
class Replay:
    """What the journal held at open: each whole record, decoded, with its bytes."""

    found: list[tuple[bytes, dict[str, list[dict[str, Any]]]]]
    segments: list[Path]
    damaged: list[Path]
    refused: list[Path] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.found)


def encode(changes: JournalRows) -> bytes:
    by_table: dict[str, list[Mapping[str, Any]]] = {}
    for spec, row in changes:
        if spec.name not in TABLES:
            raise ValueError(f"the journal holds no rows of {spec.name}")
        by_table.setdefault(spec.name, []).append(row)
    payload = _ENCODER.encode(by_table)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> dict[str, list[dict[str, Any]]]:
    found = _DECODER.decode(payload)
    if not isinstance(found, dict):
        raise ValueError("a journal record is not a table map")
    out: dict[str, list[dict[str, Any]]] = {}
    for table, table_rows in found.items():
        if table not in TABLES or not isinstance(table_rows, list):
            raise ValueError(f"a journal record names an unknown table {table!r}")
        durations = _DURATIONS[table]
        for row in table_rows:
            for name in durations:
                if row.get(name) is not None:
                    row[name] = msgspec.convert(row[name], timedelta)
        out[table] = table_rows
    return out


def read_segment(path: Path) -> tuple[list[bytes], bool]:
    """The whole records of one segment and whether the file ended cleanly.

    The file ends cleanly when its last record is whole; a torn tail (a short frame or
    a payload whose CRC does not match, with nothing whole after it) is reported as
    not clean so the caller can tell a torn append from damage.
    """
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return [], len(data) == 0
    pos = len(MAGIC)
    records: list[bytes] = []
    while pos < len(data):
        if pos + FRAME.size > len(data):
            return records, False
        length, crc = FRAME.unpack_from(data, pos)
        start, end = pos + FRAME.size, pos + FRAME.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            return records, False
        records.append(data[start:end])
        pos = end
    return records, True


def segments_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("intake-*.log"), key=lambda p: int(p.stem.split("-", 1)[1]))


def replay(folder: Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Replay:
    """Read every record on disk; set aside (never delete) segments that do not read back."""
    found: list[tuple[bytes, dict[str, list[dict[str, Any]]]]] = []
    kept: list[Path] = []
    damaged: list[Path] = []
    segments = segments_in(folder) if folder.is_dir() else []
    for i, path in enumerate(segments):
        records, clean = read_segment(path)
        newest = i == len(segments) - 1
        try:
            decoded = [decode(r) for r in records]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
            decoded, clean, newest = [], False, False
        if not clean and not newest:
            stamp = now().strftime("%Y%m%dT%H%M%SZ")
            target = path.with_name(f"{path.name}.damaged-{stamp}")
            os.replace(path, target)
            damaged.append(target)
        else:
            kept.append(path)
        found += zip(records, decoded, strict=False)
    return Replay(found=found, segments=kept, damaged=damaged)


def keep_refused(folder: Path, name: str, payload: bytes, reason: str) -> Path:
    """Write a record the database would not take, with its reason, beside the journal."""
    target = folder / f"refused-{name}.json"
    try:
        record: Any = _plain(decode(payload))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
        record = {"undecodable_hex": payload.hex()}
    body = {"reason": reason, "record": record}
    target.write_bytes(msgspec.json.format(msgspec.json.encode(body)))
    return target


@dataclass
class _Entry:
    payload: bytes
    seq: int
    future: concurrent.futures.Future[None] | None = None
    aio: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None


@dataclass
class JournalStats:
    appends: int = 0
    syncs: int = 0
    bytes: int = 0
    segments_removed: int = 0
    refused: int = 0


_STOP = object()


@dataclass
class Journal:
    """Appends framed records, one fdatasync per group; forgets what DuckDB holds."""

    folder: Path
    segment_bytes: int = SEGMENT_BYTES
    stats: JournalStats = field(default_factory=JournalStats)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(init=False)
    _queue: list[Any] = field(default_factory=list)
    _next_seq: int = 1
    _applied: int = 0
    _pending_payloads: dict[int, bytes] = field(default_factory=dict)
    # segment path -> highest seq written to it
    _segments: dict[Path, int] = field(default_factory=dict)
    _current: Path | None = None
    _fd: int | None = None
    _size: int = 0
    _segment_no: int = 0
    _thread: threading.Thread | None = None
    _failed: BaseException | None = None
    _waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )
    _released: bool = False

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, first_segment_no: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._segment_no = first_segment_no
        self._open_segment()
        self._thread = threading.Thread(target=self._loop, name="gexd-journal", daemon=True)
        self._thread.start()

    def close(self, *, all_applied: bool) -> None:
        """Stop the thread; with everything applied in DuckDB, remove the segments too."""
        with self._cond:
            self._queue.append(_STOP)
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if all_applied:
            for path in list(self._segments):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self._segments.clear()
            lakefs.fsync_dir(self.folder)

    # -- appends -------------------------------------------------------------------------

    def append(self, changes: JournalRows) -> tuple[int, asyncio.Future[None]]:
        """Queue one record (all or nothing at replay); the future resolves once synced."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        return self._put(encode(changes), aio=fut, loop=loop), fut

    def append_sync(self, changes: JournalRows) -> tuple[int, concurrent.futures.Future[None]]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        return self._put(encode(changes), future=fut), fut

    def _put(self, payload: bytes, **how: Any) -> int:
        with self._cond:
            if self._failed is not None:
                raise JournalError(f"the intake journal cannot be written: {self._failed}")
            seq = self._next_seq
            self._next_seq += 1
            self._pending_payloads[seq] = payload
            self._queue.append(_Entry(payload, seq, **how))
            self._cond.notify()
        return seq

    # -- what DuckDB holds ------------------------------------------------------------

    def applied(self, seqs: Sequence[int]) -> None:
        """The store's writer committed these records (or set them aside as refused)."""
        with self._cond:
            for seq in seqs:
                self._pending_payloads.pop(seq, None)
            self._applied = (
                min(self._pending_payloads) - 1 if self._pending_payloads else self._next_seq - 1
            )
            ready = [w for w in self._waiters if w[0] <= self._applied]
            if ready:
                self._waiters = [w for w in self._waiters if w[0] > self._applied]
            self._cond.notify_all()
        _wake(ready)

    def release_waiters(self) -> None:
        """The database stopped taking writes: readers stop waiting for what will not come."""
        with self._cond:
            self._released = True
            ready, self._waiters = self._waiters, []
            self._cond.notify_all()
        _wake(ready)

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._next_seq - 1

    def wait_applied(self, seq: int) -> asyncio.Future[None] | None:
        """A future that resolves once DuckDB holds record `seq` (None: it already does)."""
        with self._lock:
            if self._applied >= seq or self._released:
                return None
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((seq, loop, fut))
            return fut

    def wait_applied_sync(self, seq: int, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._applied >= seq or self._released, timeout=timeout
            )

    def refused(self, seq: int, reason: str) -> Path | None:
        """DuckDB would not take this record: keep it with the reason, never drop it."""
        with self._lock:
            payload = self._pending_payloads.get(seq)
        if payload is None:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = keep_refused(self.folder, f"{stamp}-{seq:012d}", payload[FRAME.size :], reason)
        self.stats.refused += 1
        self.applied([seq])
        return target

    def payload_of(self, seq: int) -> bytes | None:
        with self._lock:
            return self._pending_payloads.get(seq)

    @property
    def backlog(self) -> int:
        with self._lock:
            return len(self._pending_payloads)

    # -- the thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue, []
            stop = any(item is _STOP for item in batch)
            entries = [item for item in batch if isinstance(item, _Entry)]
            if entries:
                self._write(entries)
            self._forget_applied_segments()
            if stop:
                return

    def _write(self, entries: list[_Entry]) -> None:
        error: BaseException | None = None
        try:
            assert self._fd is not None
            data = b"".join(e.payload for e in entries)
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
            self._size += len(data)
            assert self._current is not None
            self._segments[self._current] = entries[-1].seq
            self.stats.appends += len(entries)
            self.stats.syncs += 1
            self.stats.bytes += len(data)
        except OSError as exc:
            # The file may now hold part of this group: nothing after it can be trusted
            # to frame correctly, so the journal stops taking appends (the store says so).
            error = JournalError(f"the intake journal could not be written: {exc}")
            with self._lock:
                self._failed = exc
        _settle(entries, error)
        if error is None and self._size >= self.segment_bytes:
            self._rotate()  # the old segment goes once DuckDB holds all of it

    def _forget_applied_segments(self) -> None:
        with self._lock:
            applied = self._applied
        current = self._current
        if (
            current is not None
            and self._segments.get(current, 0) <= applied
            and self._size >= 1024 * 1024
        ):
            self._rotate()  # everything in it is in DuckDB: start afresh
        for path, last in list(self._segments.items()):
            if path != self._current and last <= applied:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                del self._segments[path]
                self.stats.segments_removed += 1

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._segment_no += 1
        self._open_segment()

    def _open_segment(self) -> None:
        path = self.folder / f"intake-{self._segment_no:08d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.write(fd, MAGIC)
        os.fsync(fd)
        lakefs.fsync_dir(self.folder)
        self._fd, self._current, self._size = fd, path, len(MAGIC)
        self._segments[path] = self._segments.get(path, 0)


def _settle(entries: list[_Entry], error: BaseException | None) -> None:
    per_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for e in entries:
        if e.future is not None:
            if error is None:
                e.future.set_result(None)
            else:
                e.future.set_exception(error)
        elif e.aio is not None and e.loop is not None:
            per_loop.setdefault(e.loop, []).append(e.aio)
    for loop, futures in per_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_on_loop, futures, error)


def _settle_on_loop(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


def _wake(ready: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for _seq, loop, fut in ready:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def next_segment_no(folder: Path) -> int:
    found = segments_in(folder) if folder.is_dir() else []
    return int(found[-1].stem.split("-", 1)[1]) + 1 if found else 1


def iter_rows(
    records: Sequence[Mapping[str, list[dict[str, Any]]]],
) -> Iterator[tuple[rows.TableSpec, dict[str, Any]]]:
    """Rows of records in the order they can be inserted (sources, requests, jobs, keys)."""
    for spec in JOURNALED:
        for record in records:
            for row in record.get(spec.name, ()):
                yield spec, row
