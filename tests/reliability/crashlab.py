"""Crash lab: a real daemon under mixed load, SIGKILLed at random moments, and what must hold after.

`run_crash_cycles` drives the cycles for the CI test (tests/reliability/test_crash.py,
a handful) and for bench/crash.py (hundreds). Each cycle:

1. start (or restart) the daemon on the same data directory;
2. mixed load for a random 0.5-3 s: socket submits through the client (single and
   batches, a few cancels), request and chain files (and junk) dropped in the drop
   folder, jobs fetching from the local feed server with slow, failing, truncated and
   dripping URLs;
3. SIGKILL;
4. with the daemon down, inspect a copy of the DuckDB file (the copy replays the
   write-ahead log exactly as the next start will, without touching the original),
   the Parquet lake and the drop folder.

What must hold (each breach is a `Finding`, and `lost` counts acknowledged work gone):
- every acknowledged request (a 201, or a drop receipt) and its job are in the database;
- every acknowledged cancel left its job CANCELLED;
- no request was accepted twice (each carries a unique `load_tag` in its metadata);
- at most one snapshot per job, and every COMPLETED job has its snapshot;
- every lake file under a final name reads with pyarrow; every snapshot's lake file exists;
- after a restart, the fetch spool (`tmp/`) and the lake hold no leftovers of the dead
  instance;
- a PROCESSING job whose lease expired went back to QUEUED with the attempt counted
  (`worker_lost` in its history), or failed for good when its retries were used up;
  no PROCESSING job is left behind under an instance that died before it;
- every dropped file is in the drop folder, `processed/` (with its receipt) or
  `rejected/` (with its `.error.json`), exactly once;
- drains (every `drain_every` cycles and at the end): with the load stopped, every job
  ends COMPLETED, FAILED or CANCELLED and the drop folder empties; a job that never
  ends is stuck.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from gexdaemon.client import ApiError, Client, DaemonUnreachable
from gexdaemon.storage.store import StoreOptions, connect
from tests.daemon.harness import SAMPLE_FEEDS, FeedServer, RunningDaemon, make_daemon, wait_until

# Short leases, so expiries happen within a cycle or two, and a short breaker cool-down,
# so the failing source does not hold the drains up; the rest is the test harness's base
# configuration (2 workers, 50-200 ms retry backoff).
CRASH_CONFIG = """
[daemon]
lease_s = 3.0
heartbeat_s = 0.5

[sources]
breaker_failures = 4
breaker_cooldown_s = 0.25
"""

# (path on the feed server, symbol): every format, small and large
GOOD_FEEDS = (
    ("SPX_strikes.csv", "SPX"),
    ("SPX_strikes.json", "SPX"),
    ("SPX_strikes.parquet", "SPX"),
    ("SPY_quotedata.csv", "SPY"),
    ("NDX_quotedata.csv", "NDX"),
    ("SPX_contracts.parquet", "SPX"),
    ("SPY.json", "SPY"),
    ("_NDX.json", "NDX"),
)
DROP_CHAINS = (
    ("SPX_strikes.csv", "SPX", ".csv"),
    ("SPX_strikes.ndjson", "SPX", ".ndjson"),
    ("NDX_quotedata.csv", "NDX", ".csv"),
    ("SPY_contracts.csv", "SPY", ".csv"),
)
LEASE_SLACK_S = 1.5  # reaper wake-up + commit, on a busy 2-core machine


@dataclass(frozen=True)
class Finding:
    cycle: int
    kind: str  # lost | duplicate | stuck | lease | lake | drop | leftover | crash | refused
    message: str

    def __str__(self) -> str:
        return f"cycle {self.cycle}: [{self.kind}] {self.message}"


@dataclass
class HeldLease:
    job_id: str
    retry_count: int
    expires_at: datetime
    owner: str
    cycle: int


@dataclass
class Life:
    """One daemon instance between its start (health ok) and its kill."""

    instance: str
    started: datetime
    ended: datetime | None = None


@dataclass
class Ledger:
    """Everything the daemon acknowledged, and what is still to be verified."""

    acked: dict[str, str] = field(default_factory=dict)  # job_id -> request_id
    acked_by_receipt: int = 0
    cancels: set[str] = field(default_factory=set)
    drop_files: dict[str, str] = field(default_factory=dict)  # name -> requests|chain|junk
    leases: dict[str, HeldLease] = field(default_factory=dict)
    lives: list[Life] = field(default_factory=list)
    submits_unanswered: int = 0
    leases_verified: int = 0
    lake_files_verified: int = 0
    receipts_checked: set[Path] = field(default_factory=set)
    lake_seen: dict[Path, tuple[int, int]] = field(default_factory=dict)
    unreceipted: set[Path] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, answer: dict[str, Any]) -> None:
        with self.lock:
            self.acked[answer["job_id"]] = answer["request_id"]

    def recent_jobs(self, n: int) -> list[str]:
        with self.lock:
            return list(self.acked)[-n:]


@dataclass
class CrashReport:
    cycles: int = 0
    kills: int = 0  # stops by `stop_signal`: SIGKILLs, or SIGTERMs for the baseline
    stop_signal: str = "SIGKILL"
    drains: int = 0
    acked_requests: int = 0
    acked_by_receipt: int = 0
    acked_cancels: int = 0
    drop_files: int = 0
    leases_verified: int = 0
    lake_files_verified: int = 0
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    findings: list[Finding] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    drain_s: list[float] = field(default_factory=list)
    # Lake files no snapshot row names: written, then the process died before the row's
    # commit and the job's retry did not come (cancelled, or failed for good). Readers
    # start from gex_snapshots, so these are never shown; `gex_lake` does list them.
    orphan_lake_files: int = 0
    inspect_s: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(1 for f in self.findings if f.kind == "lost")

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------


class MixedLoad:
    """Client threads that submit, cancel and drop files until stopped or the daemon dies."""

    def __init__(
        self,
        daemon: RunningDaemon,
        feeds: FeedServer,
        ledger: Ledger,
        cycle: int,
        rng: random.Random,
        *,
        api_pause_s: tuple[float, float] = (0.08, 0.3),
        drop_pause_s: tuple[float, float] = (0.25, 0.7),
    ) -> None:
        self.d = daemon
        self.ok_base = feeds.url  # http://127.0.0.1:PORT/
        # The faulty URLs go to the same server under another host name: another source,
        # so its breaker opening does not pause the healthy traffic.
        self.bad_base = feeds.url.replace("127.0.0.1", "localhost")
        self.ledger = ledger
        self.cycle = cycle
        self.api_rng = random.Random(rng.random())
        self.drop_rng = random.Random(rng.random())
        self.api_pause_s = api_pause_s
        self.drop_pause_s = drop_pause_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._api, name=f"load-api-{cycle}", daemon=True),
            threading.Thread(target=self._drop, name=f"load-drop-{cycle}", daemon=True),
        ]
        self.refusals: list[str] = []

    def start(self) -> MixedLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def request(self, tag: str, rng: random.Random) -> dict[str, Any]:
        path, symbol = rng.choice(GOOD_FEEDS)
        roll = rng.random()
        url = f"{self.ok_base}{path}"
        if roll < 0.15:
            url += f"?delay={rng.uniform(0.3, 2.5):.2f}"
        elif roll < 0.22:
            url = f"{self.bad_base}{path}?status=503"
        elif roll < 0.25:
            url = f"{self.bad_base}{path}?status=404"
        elif roll < 0.29:
            url = f"{self.bad_base}{path}?truncate=2000"
        elif roll < 0.33:
            url += "?drip=400000"
        data_type = rng.choices(["real_time", "snapshot", "historical"], [0.25, 0.45, 0.3])[0]
        metadata: dict[str, Any] = {"load_tag": tag}
        if rng.random() < 0.2:
            metadata |= {"open_interest": 20_000, "volume": 9_000}
        return {
            "source_url": url,
            "data_type": data_type,
            "market_symbol": symbol,
            "metadata": metadata,
        }

    def _api(self) -> None:
        rng = self.api_rng
        c = Client(self.d.socket, timeout=20)
        n = 0
        try:
            # A slow CRITICAL fetch first: some job holds a lease at every kill.
            with contextlib.suppress(DaemonUnreachable, ApiError):
                anchor = self.request(f"c{self.cycle}-anchor", rng)
                path = GOOD_FEEDS[0][0]
                anchor |= {
                    "source_url": f"{self.ok_base}{path}?delay=4",
                    "data_type": "real_time",
                    "market_symbol": "SPX",
                }
                self.ledger.ack(c.submit(anchor))
            while not self._stop.is_set():
                n += 1
                tag = f"c{self.cycle}-a{n}"
                roll = rng.random()
                try:
                    if roll < 0.07:
                        recent = self.ledger.recent_jobs(40)
                        if recent:
                            job_id = rng.choice(recent)
                            with contextlib.suppress(ApiError):  # 409: it finished first
                                c.cancel(job_id)
                                with self.ledger.lock:
                                    self.ledger.cancels.add(job_id)
                    elif roll < 0.2:
                        batch = [self.request(f"{tag}-{k}", rng) for k in range(rng.randint(2, 4))]
                        for answer in c.submit(batch)["requests"]:
                            self.ledger.ack(answer)
                    else:
                        self.ledger.ack(c.submit(self.request(tag, rng)))
                except DaemonUnreachable:
                    with self.ledger.lock:
                        self.ledger.submits_unanswered += 1
                    return  # killed under us: the answer never came, so nothing was promised
                except ApiError as exc:
                    if exc.code == "shutting_down":
                        return  # a graceful stop: refused, so nothing was promised
                    self.refusals.append(f"{exc.status} {exc.code}: {exc.message}")
                self._stop.wait(rng.uniform(*self.api_pause_s))
        finally:
            c.close()

    def _drop(self) -> None:
        rng = self.drop_rng
        n = 0
        while not self._stop.is_set():
            n += 1
            roll = rng.random()
            if roll < 0.45:
                entries = [
                    self.request(f"c{self.cycle}-d{n}-{k}", rng) for k in range(rng.randint(1, 3))
                ]
                name = f"req_c{self.cycle}_{n}.json"
                data = json.dumps({"requests": entries}).encode()
                kind = "requests"
            elif roll < 0.6:
                entry = self.request(f"c{self.cycle}-d{n}-0", rng)
                name = f"req_c{self.cycle}_{n}.toml"
                data = _toml_request(entry).encode()
                kind = "requests"
            elif roll < 0.9:
                source, symbol, suffix = rng.choice(DROP_CHAINS)
                name = f"{symbol}_c{self.cycle}_{n}{suffix}"
                data = (SAMPLE_FEEDS / source).read_bytes()
                kind = "chain"
            else:
                name = f"junk_c{self.cycle}_{n}.csv"
                data = bytes(rng.randrange(256) for _ in range(2048))
                kind = "junk"
            part = self.d.drop / f".{name}.part"
            part.write_bytes(data)
            os.replace(part, self.d.drop / name)
            with self.ledger.lock:
                self.ledger.drop_files[name] = kind
            self._stop.wait(rng.uniform(*self.drop_pause_s))


def _toml_request(entry: dict[str, Any]) -> str:
    meta = ", ".join(
        f"{k} = {json.dumps(v)}" for k, v in entry["metadata"].items()
    )  # JSON strings and integers are valid TOML
    return (
        f'source_url = "{entry["source_url"]}"\n'
        f'data_type = "{entry["data_type"]}"\n'
        f'market_symbol = "{entry["market_symbol"]}"\n'
        f"metadata = {{ {meta} }}\n"
    )


# ---------------------------------------------------------------------------
# Inspection with the daemon down
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def database_copy(data_dir: Path) -> Iterator[Any]:
    """A connection to a copy of the daemon's DuckDB file and WAL (the original is untouched)."""
    scratch = Path(tempfile.mkdtemp(prefix="gxd-crashdb-"))
    try:
        for name in ("gex.duckdb", "gex.duckdb.wal"):
            if (data_dir / name).exists():
                shutil.copyfile(data_dir / name, scratch / name)
        con = connect(
            StoreOptions(
                path=scratch / "gex.duckdb", lake_dir=scratch / "gex", archive_dir=scratch / "arc"
            )
        )
        try:
            jobs, requests = journaled_ids(data_dir / "journal")
            con.execute("CREATE TEMP TABLE journal_jobs (job_id UUID)")
            con.execute("CREATE TEMP TABLE journal_requests (request_id UUID)")
            if jobs:
                con.executemany("INSERT INTO journal_jobs VALUES (?)", [[j] for j in jobs])
            if requests:
                con.executemany("INSERT INTO journal_requests VALUES (?)", [[r] for r in requests])
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def journaled_ids(folder: Path) -> tuple[list[str], list[str]]:
    """Job and request ids the intake journal holds on disk, read without the daemon's code.

    An acknowledged request may be in the journal (synced) and not yet in DuckDB when the
    daemon dies; the next start replays it. The format, from gexdaemon/storage/journal.py:
    the magic line, then records of <u32 length, u32 CRC-32> and a msgpack map of table
    name to rows; a torn record can only be the last one.
    """
    jobs: list[str] = []
    requests: list[str] = []
    for segment in sorted(folder.glob("intake-*.log")) if folder.is_dir() else []:
        data = segment.read_bytes()
        if not data.startswith(b"GEXJ1\n"):
            continue
        pos = len(b"GEXJ1\n")
        while pos + 8 <= len(data):
            length, crc = struct.unpack_from("<II", data, pos)
            payload = data[pos + 8 : pos + 8 + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            record = msgspec.msgpack.decode(payload)
            jobs += [row["job_id"] for row in record.get("processing_jobs", [])]
            requests += [row["request_id"] for row in record.get("priority_requests", [])]
            pos += 8 + length
    return jobs, requests


def _rows(con: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return list(con.execute(sql, params or []).fetchall())


def inspect_down(d: RunningDaemon, ledger: Ledger, cycle: int, findings: list[Finding]) -> None:
    """Everything that must hold on disk while no daemon runs."""
    with database_copy(d.data_dir) as con:
        _check_acknowledged(con, ledger, cycle, findings)
        _check_snapshots(con, cycle, findings)
        _check_leases(con, ledger, cycle, findings)
        lake_paths = {Path(p) for (p,) in _rows(con, "SELECT lake_path FROM gex_snapshots")}
        _check_receipts(con, d, ledger, cycle, findings)
    _check_lake(d.data_dir / "gex", lake_paths, ledger, cycle, findings)
    _check_drop_folder(d, ledger, cycle, findings)


def _check_acknowledged(con: Any, ledger: Ledger, cycle: int, findings: list[Finding]) -> None:
    with ledger.lock:
        acked = dict(ledger.acked)
        cancels = set(ledger.cancels)
    if acked:
        table = pa.table({"job_id": list(acked), "request_id": list(acked.values())})
        con.register("acked", table)
        for job_id, request_id in _rows(
            con,
            "SELECT a.job_id, a.request_id FROM acked a "
            "LEFT JOIN processing_jobs j ON j.job_id = CAST(a.job_id AS UUID) "
            "LEFT JOIN journal_jobs jj ON jj.job_id = CAST(a.job_id AS UUID) "
            "LEFT JOIN priority_requests r ON r.request_id = CAST(a.request_id AS UUID) "
            "LEFT JOIN journal_requests jr ON jr.request_id = CAST(a.request_id AS UUID) "
            "WHERE (j.job_id IS NULL AND jj.job_id IS NULL) "
            "OR (r.request_id IS NULL AND jr.request_id IS NULL)",
        ):
            findings.append(
                Finding(cycle, "lost", f"acknowledged request {request_id} / job {job_id} is gone")
            )
        con.unregister("acked")
    if cancels:
        con.register("cancels", pa.table({"job_id": sorted(cancels)}))
        for job_id, status in _rows(
            con,
            "SELECT CAST(j.job_id AS VARCHAR), j.status FROM cancels c "
            "JOIN processing_jobs j ON j.job_id = CAST(c.job_id AS UUID) "
            "WHERE j.status <> 'cancelled'",
        ):
            findings.append(
                Finding(cycle, "lost", f"job {job_id}: cancel answered 200 but it is {status}")
            )
        con.unregister("cancels")
    for tag, n in _rows(
        con,
        "SELECT json_extract_string(metadata, '$.load_tag') AS tag, count(*) FROM "
        "priority_requests WHERE tag IS NOT NULL GROUP BY tag HAVING count(*) > 1",
    ):
        findings.append(Finding(cycle, "duplicate", f"request {tag} was accepted {n} times"))


def _check_snapshots(con: Any, cycle: int, findings: list[Finding]) -> None:
    for job_id, n in _rows(
        con, "SELECT job_id, count(*) FROM gex_snapshots GROUP BY job_id HAVING count(*) > 1"
    ):
        findings.append(Finding(cycle, "duplicate", f"job {job_id} has {n} snapshots"))
    for (job_id,) in _rows(
        con,
        "SELECT j.job_id FROM processing_jobs j LEFT JOIN gex_snapshots s USING (job_id) "
        "WHERE j.status = 'completed' AND s.snapshot_id IS NULL",
    ):
        findings.append(Finding(cycle, "lost", f"job {job_id} is COMPLETED without its snapshot"))


def _check_leases(con: Any, ledger: Ledger, cycle: int, findings: list[Finding]) -> None:
    """Leases held at earlier kills must be reaped by a daemon that outlived their expiry."""
    killed = ledger.lives[-1] if ledger.lives else None
    for job_id, held in list(ledger.leases.items()):
        if killed is None or killed.ended is None or killed.instance == held.owner:
            continue
        if held.expires_at + timedelta(seconds=LEASE_SLACK_S) > killed.ended:
            continue  # that daemon died before the lease ran out: the next one must reap it
        del ledger.leases[job_id]
        found = _rows(
            con,
            "SELECT status, retry_count, lease_owner FROM processing_jobs WHERE job_id = ?",
            [job_id],
        )
        if not found:
            findings.append(Finding(cycle, "lost", f"job {job_id} vanished"))
            continue
        status, retries, owner = found[0]
        if status == "cancelled":
            ledger.leases_verified += 1
            continue
        reaped = _rows(
            con,
            "SELECT count(*) FROM job_events WHERE job_id = ? AND from_status = 'processing' "
            "AND to_status = 'failed' AND reason LIKE '%worker_lost%' AND occurred_at >= ?",
            [job_id, held.expires_at - timedelta(seconds=LEASE_SLACK_S)],
        )[0][0]
        counted = retries > held.retry_count or (status == "failed" and held.retry_count >= 3)
        if status == "processing" and owner == held.owner:
            findings.append(
                Finding(
                    cycle,
                    "stuck",
                    f"job {job_id}: the lease of dead instance {held.owner} expired at "
                    f"{held.expires_at:%H:%M:%S.%f}, {killed.instance} ran until "
                    f"{killed.ended:%H:%M:%S.%f}, and the job is still PROCESSING under it",
                )
            )
        elif not reaped or not counted:
            findings.append(
                Finding(
                    cycle,
                    "lease",
                    f"job {job_id}: lease expired at {held.expires_at:%H:%M:%S.%f} but "
                    f"reaped={reaped}, retries {held.retry_count} -> {retries} ({status})",
                )
            )
        else:
            ledger.leases_verified += 1
    for job_id, retries, owner, expires in _rows(
        con,
        "SELECT CAST(job_id AS VARCHAR), retry_count, lease_owner, lease_expires_at "
        "FROM processing_jobs WHERE status = 'processing'",
    ):
        if job_id not in ledger.leases and expires is not None:
            ledger.leases[job_id] = HeldLease(job_id, retries, expires, owner, cycle)


def _check_receipts(
    con: Any, d: RunningDaemon, ledger: Ledger, cycle: int, findings: list[Finding]
) -> None:
    processed = d.drop / "processed"
    if not processed.exists():
        return
    for receipt in sorted(processed.glob("*/*.receipt.json")):
        if receipt in ledger.receipts_checked:
            continue
        try:
            body = json.loads(receipt.read_bytes())
        except ValueError as exc:
            findings.append(Finding(cycle, "drop", f"receipt {receipt.name} is not JSON: {exc}"))
            continue
        ledger.receipts_checked.add(receipt)
        for item in body.get("requests", []):
            with ledger.lock:
                if item["job_id"] not in ledger.acked:
                    ledger.acked[item["job_id"]] = item["request_id"]
                    ledger.acked_by_receipt += 1
            found = _rows(
                con,
                "SELECT (SELECT count(*) FROM processing_jobs WHERE job_id = ?) "
                "+ (SELECT count(*) FROM journal_jobs WHERE job_id = ?)",
                [item["job_id"], item["job_id"]],
            )
            if not found[0][0]:
                findings.append(
                    Finding(
                        cycle, "lost", f"job {item['job_id']} of receipt {receipt.name} is gone"
                    )
                )


def _check_lake(
    lake: Path, lake_paths: set[Path], ledger: Ledger, cycle: int, findings: list[Finding]
) -> None:
    for path in lake_paths:
        if not path.exists():
            findings.append(Finding(cycle, "lost", f"snapshot lake file {path} is missing"))
    if not lake.exists():
        return
    for path in lake.rglob("*.parquet"):
        if path.name.startswith("."):
            continue  # a temporary: removed when the store next opens (checked after restart)
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns)
        if ledger.lake_seen.get(path) == key:
            continue
        try:
            pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            findings.append(Finding(cycle, "lake", f"{path} does not read: {exc}"))
            continue
        ledger.lake_seen[path] = key
        ledger.lake_files_verified += 1


def _drop_places(d: RunningDaemon, name: str) -> list[Path]:
    places = [d.drop / name, d.drop / "rejected" / name]
    places += (
        list((d.drop / "processed").glob(f"*/{name}")) if (d.drop / "processed").exists() else []
    )
    stem, _dot, suffix = name.rpartition(".")
    # A second copy gets a -N name (`_free_name`): that would be the file handled twice.
    for folder in [d.drop / "rejected", *(d.drop / "processed").glob("*")]:
        if folder.is_dir():
            places += list(folder.glob(f"{stem}-[0-9]*.{suffix}"))
    return [p for p in places if p.exists()]


def without_companion(folder: Path, pattern: str, suffix: str) -> set[Path]:
    """Files in `folder` (hidden and partial ones aside) with no `<name><suffix>` beside them."""
    missing: set[Path] = set()
    for path in folder.glob(pattern) if folder.exists() else []:
        if path.name.endswith((suffix, ".tmp")) or path.name.startswith("."):
            continue
        if not path.with_name(path.name + suffix).exists():
            missing.add(path)
    return missing


def _check_drop_folder(
    d: RunningDaemon, ledger: Ledger, cycle: int, findings: list[Finding]
) -> None:
    with ledger.lock:
        files = dict(ledger.drop_files)
    for name in files:
        places = _drop_places(d, name)
        if not places:
            findings.append(Finding(cycle, "lost", f"dropped file {name} is nowhere"))
        elif len(places) > 1:
            where = ", ".join(str(p.relative_to(d.drop)) for p in places)
            findings.append(Finding(cycle, "duplicate", f"dropped file {name} is in {where}"))
    # A file in processed/ without its receipt (or in rejected/ without its report) for a
    # whole daemon life means the daemon did not finish handling it and never will.
    missing = without_companion(d.drop / "processed", "*/*", ".receipt.json")
    missing |= without_companion(d.drop / "rejected", "*", ".error.json")
    for path in sorted(missing & ledger.unreceipted):
        findings.append(
            Finding(
                cycle,
                "drop",
                f"{path.relative_to(d.drop)} has had no receipt or error report for a whole "
                "daemon life",
            )
        )
    ledger.unreceipted = missing


# ---------------------------------------------------------------------------
# After a restart, and drains
# ---------------------------------------------------------------------------


def check_after_restart(
    d: RunningDaemon, killed_at: datetime, cycle: int, findings: list[Finding]
) -> None:
    """Leftovers of the dead instance that start-up must have cleared."""
    before = killed_at.timestamp()
    spool = d.data_dir / "tmp"
    for path in spool.iterdir() if spool.exists() else []:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime <= before:
                findings.append(
                    Finding(cycle, "leftover", f"fetch spool file {path.name} of a dead instance")
                )
    lake = d.data_dir / "gex"
    for path in lake.rglob(".*.tmp") if lake.exists() else []:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime <= before:
                findings.append(
                    Finding(cycle, "leftover", f"lake temporary {path.name} of a dead instance")
                )


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def check_orphans(pids: set[int], cycle: int, findings: list[Finding]) -> None:
    """Processes the killed daemon started must not outlive it (compute pool, forkserver)."""

    def alive() -> set[int]:
        return {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not alive(), timeout=10, what="the killed daemon's processes to end")
    for pid in sorted(alive()):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80]
        findings.append(
            Finding(cycle, "leftover", f"process {pid} outlived the killed daemon: {cmd!r}")
        )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def drain(
    d: RunningDaemon, ledger: Ledger, cycle: int, findings: list[Finding], timeout: float
) -> dict[str, int]:
    """With no new load: every job must finish and the drop folder empty, within `timeout`."""
    c = d.client(timeout=30)

    def settled() -> bool:
        open_jobs = c.query(
            "SELECT count(*) FROM processing_jobs WHERE status IN ('queued', 'processing')"
        )["rows"][0][0]
        waiting = [p for p in d.drop.iterdir() if p.is_file() and not p.name.startswith(".")]
        return open_jobs == 0 and not waiting

    try:
        wait_until(settled, timeout=timeout, every=0.25, what="every job to finish")
    except AssertionError:
        stuck = c.query(
            "SELECT CAST(j.job_id AS VARCHAR), j.status, j.retry_count, j.lease_owner, "
            "CAST(j.lease_expires_at AS VARCHAR), CAST(j.next_attempt_at AS VARCHAR), r.source_url "
            "FROM processing_jobs j JOIN priority_requests r USING (request_id) "
            "WHERE j.status IN ('queued', 'processing') ORDER BY j.job_id LIMIT 50"
        )["rows"]
        health = c.health()
        for row in stuck:
            findings.append(
                Finding(
                    cycle,
                    "stuck",
                    f"job {row[0]} still {row[1]} after {timeout:.0f} s of drain "
                    f"(retries {row[2]}, lease {row[3]} until {row[4]}, next attempt {row[5]}, "
                    f"{row[6]}; daemon queued={health['queued']} in_flight={health['in_flight']})",
                )
            )
        for p in d.drop.iterdir():
            if p.is_file() and not p.name.startswith("."):
                findings.append(Finding(cycle, "stuck", f"drop file {p.name} was never taken"))
    rows = c.query("SELECT status, count(*) FROM processing_jobs GROUP BY status")["rows"]
    return dict(rows)


# ---------------------------------------------------------------------------
# The cycles
# ---------------------------------------------------------------------------


def _start(d: RunningDaemon, ledger: Ledger, report: CrashReport) -> Life:
    began = time.monotonic()
    d.start()
    report.restart_s.append(time.monotonic() - began)
    c = d.client(timeout=10)
    life = Life(instance=c.health()["instance"], started=datetime.now(UTC))
    ledger.lives.append(life)
    return life


def run_crash_cycles(
    cycles: int,
    *,
    feeds: FeedServer,
    seed: int = 8,
    load_s: tuple[float, float] = (0.5, 3.0),
    drain_every: int = 0,
    drain_timeout_s: float = 180.0,
    root: Path | None = None,
    progress: Callable[[int, CrashReport], None] | None = None,
    stop_signal: int = signal.SIGKILL,
) -> tuple[CrashReport, RunningDaemon]:
    """Run `cycles` kill/restart cycles on one data directory; drain every `drain_every`
    cycles (0: only at the end) and once more at the end, then stop gracefully.

    `stop_signal` SIGTERM turns the kills into graceful stops: the baseline the crash
    figures are compared with."""
    rng = random.Random(seed)
    d = make_daemon(CRASH_CONFIG, root=root)
    ledger = Ledger()
    report = CrashReport(stop_signal=signal.Signals(stop_signal).name)
    findings = report.findings
    life = _start(d, ledger, report)
    try:
        for cycle in range(1, cycles + 1):
            load = MixedLoad(d, feeds, ledger, cycle, rng).start()
            time.sleep(rng.uniform(*load_s))  # the load runs; the kill lands at a random moment
            assert d.proc is not None
            family = descendants(d.proc.pid)
            code = d.stop(stop_signal)
            if stop_signal != signal.SIGKILL and code != 0:
                findings.append(Finding(cycle, "crash", f"a graceful stop exited {code}"))
            life.ended = datetime.now(UTC)
            load.stop()
            for refusal in load.refusals:
                findings.append(Finding(cycle, "refused", refusal))
            report.kills += 1
            began = time.monotonic()
            try:
                inspect_down(d, ledger, cycle, findings)
            except Exception as exc:  # the database or lake would not even open
                findings.append(Finding(cycle, "crash", f"inspection failed: {exc!r}"))
            report.inspect_s.append(time.monotonic() - began)
            killed_at = life.ended
            try:
                life = _start(d, ledger, report)
            except AssertionError as exc:
                findings.append(Finding(cycle, "crash", f"the daemon did not restart: {exc}"))
                break
            check_after_restart(d, killed_at, cycle, findings)
            check_orphans(family, cycle, findings)
            report.cycles = cycle
            if drain_every and cycle % drain_every == 0 and cycle < cycles:
                began = time.monotonic()
                report.jobs_by_status = drain(d, ledger, cycle, findings, drain_timeout_s)
                report.drain_s.append(time.monotonic() - began)
                report.drains += 1
            if progress is not None:
                progress(cycle, report)
        began = time.monotonic()
        report.jobs_by_status = drain(d, ledger, report.cycles, findings, drain_timeout_s)
        report.drain_s.append(time.monotonic() - began)
        report.drains += 1
        report.snapshots = d.client().query("SELECT count(*) FROM gex_snapshots")["rows"][0][0]
    finally:
        code = d.stop()
        if life.ended is None:
            life.ended = datetime.now(UTC)
    if code != 0:
        findings.append(Finding(report.cycles, "crash", f"graceful stop exited {code}"))
    inspect_down(d, ledger, report.cycles, findings)
    report.orphan_lake_files = len(orphan_lake_files(d.data_dir))
    report.acked_requests = len(ledger.acked)
    report.acked_by_receipt = ledger.acked_by_receipt
    report.acked_cancels = len(ledger.cancels)
    report.drop_files = len(ledger.drop_files)
    report.leases_verified = ledger.leases_verified
    report.lake_files_verified = ledger.lake_files_verified
    return report, d


def orphan_lake_files(data_dir: Path) -> list[Path]:
    """Final lake files that no gex_snapshots row names (call with the daemon down)."""
    lake = data_dir / "gex"
    files = (
        {p for p in lake.rglob("*.parquet") if not p.name.startswith(".")}
        if lake.exists()
        else set()
    )
    with database_copy(data_dir) as con:
        named = {Path(p) for (p,) in _rows(con, "SELECT lake_path FROM gex_snapshots")}
    return sorted(files - named)


def summarize(report: CrashReport) -> str:
    kinds = Counter(f.kind for f in report.findings)
    lines = [
        f"cycles {report.cycles}, {report.stop_signal}s {report.kills}, drains {report.drains}",
        f"acknowledged: {report.acked_requests} requests ({report.acked_by_receipt} by drop "
        f"receipt), {report.acked_cancels} cancels; {report.drop_files} files dropped",
        f"jobs at the end: {json.dumps(report.jobs_by_status, sort_keys=True)}; "
        f"snapshots {report.snapshots}; lake files read back {report.lake_files_verified}; "
        f"expired leases verified requeued {report.leases_verified}; "
        f"lake files without a snapshot row {report.orphan_lake_files}",
        f"lost {report.lost}; findings by kind: {dict(kinds) or 'none'}",
    ]
    if report.drain_s:
        lines.append(
            f"drains took {', '.join(f'{s:.1f}' for s in report.drain_s[-5:])} s (last 5); "
            f"inspections with the daemon down: max {max(report.inspect_s, default=0):.2f} s"
        )
    if report.restart_s:
        ordered = sorted(report.restart_s)
        lines.append(
            f"restart to healthy: median {ordered[len(ordered) // 2]:.2f} s, "
            f"max {ordered[-1]:.2f} s"
        )
    return "\n".join(lines)
