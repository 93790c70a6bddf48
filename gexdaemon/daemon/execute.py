"""One attempt at a job: fetch the chain, parse and compute it, persist the snapshot.

The runner decides when an attempt runs and what its outcome means for the
job (done, retry, failed); this module only performs it and says how it went,
as an `Outcome`. Every attempt also counts for its source: a chain that arrives
but does not parse or validate counts against the source's reliability like a
failed fetch (the seed's successful / total), without tripping its breaker.

CPU isolation: Python shares one core between threads, so non-CRITICAL chains
compute in separate processes (`ComputePools`), at most `compute_slots` at once;
CRITICAL chains compute in this process's threads and never wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog

from gexdaemon.core.errors import GexError, InvalidInput
from gexdaemon.core.models import DomainContext
from gexdaemon.core.retry import SOURCE_FAULTS, FailureCode
from gexdaemon.core.settings import Settings
from gexdaemon.core.vocab import PriorityLevel
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.fetch.http import FetchError, fetch_to_file
from gexdaemon.storage.snapshots import persist_snapshot_async
from gexdaemon.storage.store import Store

if TYPE_CHECKING:
    from gexdaemon.pipeline.snapshot import SnapshotResult
    from gexdaemon.storage.snapshot_record import SnapshotRecord

log = structlog.get_logger("gexdaemon.execute")

# Extra time a job may take beyond its fetch timeout for parse, compute and persist.
COMPUTE_BUDGET_S = 120.0


@dataclass
class Outcome:
    ok: bool
    records: int = 0
    size_bytes: int = 0
    snapshot: SnapshotResult | None = None
    code: FailureCode | None = None
    message: str = ""
    retry_after_s: float | None = None
    source_fault: bool = False
    fetch_s: float = 0.0


def start_compute_process(daemon_pid: int, nice: int) -> None:
    """Compute-process initializer: below the daemon's priority, and gone when it is."""
    if nice:
        with contextlib.suppress(OSError):  # a platform without nice: run as we are
            os.nice(nice)
    exit_with_daemon(daemon_pid)


def exit_with_daemon(daemon_pid: int) -> None:
    """End this compute process when the daemon ends, even by SIGKILL.

    The pool's processes are children of the forkserver, not of the daemon, and wait on
    their call queue for ever: without this, every crash left them running (and the
    forkserver and resource tracker they keep alive), three processes per crash.
    """

    def watch() -> None:
        try:
            handle = os.pidfd_open(daemon_pid)
        except OSError:  # the daemon is already gone, or no pidfd on this kernel
            handle = None
        if handle is not None:
            select.select([handle], [], [])  # a pidfd turns readable when its process exits
        else:
            while _alive(daemon_pid):
                time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="gexd-daemon-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def warm_up_compute() -> None:
    """Run in each compute process at start: the chain pipeline's imports and first calls.

    Named here (not imported from the pipeline) so that the daemon itself loads numpy
    and pyarrow with its first chain, not at start: an idle daemon stays small.
    """
    from gexdaemon.pipeline.snapshot import warm_up  # noqa: PLC0415

    warm_up()


class ComputePools:
    """Threads for CRITICAL chains, processes (forkserver) for every other chain."""

    def __init__(self, workers: int, shared_slots: int, nice: int = 0) -> None:
        self.threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gexd-compute")
        self.processes: ProcessPoolExecutor | None = None
        self.shared_slots = shared_slots
        self.nice = nice
        self.gate = asyncio.Semaphore(shared_slots)

    def start_processes(self) -> None:
        """forkserver, not fork: this process already runs threads (the store's writer).
        The pool is warmed up here so the first job does not pay the imports. An
        embedding program without a `__main__` guard breaks the forkserver: then
        every chain computes in threads."""
        try:
            self.processes = self._new_pool()
        except (OSError, BrokenProcessPool) as exc:
            log.warning("compute processes unavailable; computing in threads", error=str(exc))

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.shared_slots,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=start_compute_process,
            initargs=(os.getpid(), self.nice),
        )
        for warm in [pool.submit(warm_up_compute) for _ in range(self.shared_slots)]:
            warm.result()
        return pool

    def restart_processes(self) -> None:
        """After a compute process died (killed, out of memory): a fresh pool for what follows."""
        old = self.processes
        self.processes = self._new_pool()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    async def run(self, level: PriorityLevel, work: Callable[[], SnapshotResult]) -> SnapshotResult:
        loop = asyncio.get_running_loop()
        if level is PriorityLevel.CRITICAL or self.processes is None:
            return await loop.run_in_executor(self.threads, work)
        async with self.gate:  # CPU stays free for CRITICAL work
            return await loop.run_in_executor(self.processes, work)

    async def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        if self.processes is not None:
            procs, self.processes = self.processes, None
            await asyncio.to_thread(procs.shutdown, wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Places:
    """Where attempts read and write: the spool for downloads, the folders file jobs may
    read (drop and ingest), and the Parquet lake."""

    spool: Path
    readable: tuple[Path, ...]
    lake: Path


@dataclass(kw_only=True, eq=False)
class Executor:
    settings: Settings
    places: Places
    store: Store
    http: aiohttp.ClientSession
    pools: ComputePools
    record_fetch: Callable[..., None]
    domain_context: Callable[[], DomainContext]
    now: Callable[[], datetime]
    persist: Callable[[LiveJob, SnapshotRecord], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self._persist = self.persist or self._persist_here

    async def _persist_here(self, _live: LiveJob, record: SnapshotRecord) -> None:
        await persist_snapshot_async(self.store, self.places.lake, record)

    def fetch_timeout_s(self, live: LiveJob) -> float:
        """The longer of the timeouts of the job's level and of the level it was submitted
        at: a bump to CRITICAL never shortens the time a slow source gets."""
        timeouts = self.settings.sources.timeouts
        return max(
            timeouts.for_level(live.job.priority_level),
            timeouts.for_level(live.request.priority_level),
        )

    async def attempt(self, live: LiveJob) -> Outcome:
        """One attempt, bounded in time: the fetch timeout plus the compute budget."""
        timeout = self.fetch_timeout_s(live) + COMPUTE_BUDGET_S
        try:
            return await asyncio.wait_for(self._attempt(live), timeout)
        except TimeoutError:
            return Outcome(
                ok=False,
                code=FailureCode.TIMEOUT,
                source_fault=True,
                message=f"the job ran longer than {timeout:.0f} s and was stopped",
            )

    async def _attempt(self, live: LiveJob) -> Outcome:
        url = live.request.source_url
        fetched: Path | None = None
        started = time.perf_counter()
        try:
            if url.startswith("file://"):
                path = self._local_file(url)
                size = path.stat().st_size
                fetch_s = 0.0
            else:
                src = self.settings.sources
                download = await fetch_to_file(
                    self.http,
                    url,
                    self.places.spool,
                    timeout_s=self.fetch_timeout_s(live),
                    connect_timeout_s=src.connect_timeout_s,
                    max_bytes=src.max_body_bytes,
                    max_redirects=src.max_redirects,
                    allowed_hosts=src.allowed_hosts,
                )
                fetched = path = download.path
                size = download.size_bytes
                fetch_s = download.elapsed_s
        except FetchError as exc:
            # Every failed fetch counts against reliability (successful / total); only the
            # faults that say the source is unwell (timeouts, 5xx, ...) feed its breaker.
            fault = exc.failure in SOURCE_FAULTS
            self.record_fetch(
                live.source_key,
                ok=False,
                elapsed_s=time.perf_counter() - started,
                breaker_fault=fault,
            )
            return Outcome(
                ok=False,
                code=exc.failure,
                message=exc.message,
                source_fault=fault,
                retry_after_s=getattr(exc, "retry_after_s", None),
            )
        except OSError as exc:
            return Outcome(
                ok=False,
                code=FailureCode.UNPARSEABLE,
                message=f"cannot read {unquote(urlsplit(url).path)}: {exc.strerror or exc}",
            )
        elapsed = time.perf_counter() - started
        try:
            outcome = await self._compute(live, path, size, fetched, url)
        finally:
            if fetched is not None:
                with contextlib.suppress(FileNotFoundError):
                    fetched.unlink()
        # What the source served counts for it: a chain that does not parse or validate
        # is a failed request (the seed's reliability), though not a fault of the line,
        # so it does not feed the breaker.
        content_failed = outcome.code in (FailureCode.INVALID_FILE, FailureCode.UNPARSEABLE)
        self.record_fetch(live.source_key, ok=not content_failed, elapsed_s=elapsed)
        outcome.fetch_s = fetch_s
        return outcome

    async def _compute(
        self, live: LiveJob, path: Path, size: int, fetched: Path | None, url: str
    ) -> Outcome:
        from gexdaemon.pipeline.snapshot import compute_snapshot  # noqa: PLC0415 - see warm_up_compute

        work = functools.partial(
            compute_snapshot,
            path,
            job_id=live.job_id,
            symbol_hint=live.request.market_symbol,
            settings=self.settings.gex,
            now=self.now(),
            context=self.domain_context(),
        )
        try:
            try:
                snapshot = await self.pools.run(live.job.priority_level, work)
            except BrokenProcessPool:
                self.pools.restart_processes()
                return Outcome(
                    ok=False,
                    code=FailureCode.WORKER_LOST,
                    size_bytes=size,
                    message="the compute process died (killed or out of memory)",
                )
            except GexError:
                raise
            except Exception as exc:
                # A parser failing other than with a ChainError (a file odd enough to find
                # a bug): the same file fails the same way again, so no retry. The trader
                # gets the file and the error; the log keeps the traceback.
                log.exception("chain parser failed", error=str(exc))
                where = url if fetched is not None else path.name
                return Outcome(
                    ok=False,
                    code=FailureCode.UNPARSEABLE,
                    size_bytes=size,
                    message=f"{where}: could not be parsed ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); not retried: check that the file is complete and unedited",
                )
            await self._persist(live, snapshot.record)
        except InvalidInput as exc:  # ChainError and friends: the file itself is wrong
            message = exc.message
            if fetched is not None:  # the parser names the spool file; the trader knows the URL
                message = message.replace(fetched.name, url)
            return Outcome(
                ok=False, code=FailureCode.INVALID_FILE, message=message, size_bytes=size
            )
        return Outcome(ok=True, records=snapshot.rows_read, size_bytes=size, snapshot=snapshot)

    def _local_file(self, url: str) -> Path:
        """A file:// URL may only point inside the drop folder or the ingest folder."""
        path = Path(unquote(urlsplit(url).path)).resolve()
        if not any(path.is_relative_to(root.resolve()) for root in self.places.readable):
            raise FetchError.refused(
                url, "file:// sources must be inside the drop folder or the ingest folder"
            )
        return path
