"""The daemon: wiring, start-up recovery, and the graceful stop (SIGINT/SIGTERM in one place).

Start-up order: take the data-directory lock, refuse a live daemon on the socket
(and replace a stale socket file), open the store (migrations), load rules,
sources, estimates and every unfinished job, requeue jobs whose lease expired,
then open the socket API and the drop folder. Stop order: refuse new work, stop
the drop folder, let running jobs finish for `shutdown_grace_s` and release the
leases of the rest, flush the store, close the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import select
import signal
import socket as socket_module
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from gexdaemon import __version__
from gexdaemon.api.server import IDLE_TIMEOUT_S, LINGER_S, build_app
from gexdaemon.config import Config
from gexdaemon.core.errors import GexError
from gexdaemon.core.estimates import ProcessingEstimates
from gexdaemon.core.models import JobStatus, PriorityLevel
from gexdaemon.core.scheduler import Scheduler
from gexdaemon.core.timeutil import utc_now
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon import present
from gexdaemon.daemon.events import EventBus, EventData
from gexdaemon.daemon.intake import Intake
from gexdaemon.daemon.jobbook import JobBook, LiveJob
from gexdaemon.daemon.operations import Operations
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.runner import Runner
from gexdaemon.daemon.sla import SlaWatch
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.drop.watcher import DropFolder
from gexdaemon.pipeline.snapshot import warm_up
from gexdaemon.protocol.shapes import DaemonNotice, LevelFigures, SnapshotSummary
from gexdaemon.storage.errors import DataDirLocked
from gexdaemon.storage.estimates import PutEstimates, load_estimates
from gexdaemon.storage.lock import DataDirLock
from gexdaemon.storage.snapshots import list_snapshots
from gexdaemon.storage.store import Store, StoreOptions

log = structlog.get_logger("gexdaemon.daemon")
SWITCH_INTERVAL_S = 0.0005


class DaemonAlreadyRunning(DataDirLocked):
    code = "daemon_running"


def raise_open_file_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard one; returns (before, after).

    Every socket client, WebSocket, spool file and DuckDB file is a descriptor; with a
    soft limit of 1024 (a common default), a thousand idle clients made accept() fail
    and no one else could connect.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def clear_spool(folder: Path) -> int:
    """Remove every file in the fetch spool; returns how many there were."""
    removed = 0
    for path in folder.iterdir():
        if path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def exit_with_daemon(daemon_pid: int) -> None:
    """Compute-process initializer: end this process when the daemon ends, even by SIGKILL.

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


class Daemon:
    """One running daemon. `await start()`, then `await stop()`; or `run_until_signalled()`."""

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = utc_now,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.now = now
        self.mono = mono
        self.instance = f"{socket_module.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.version = __version__
        self.state = "created"
        self.started_mono = mono()
        self.bus = EventBus(self.settings.api.event_buffer, clock=now)
        self.book = JobBook(self.settings.daemon.recent_jobs)
        src = self.settings.sources
        self.scheduler = Scheduler(
            self.settings.scheduler,
            self.settings.sla,
            self.settings.daemon.workers,
            source_cap=src.max_concurrency,
            rate_per_s=src.rate_per_s,
            burst=src.burst,
            clock=mono,
        )
        self.estimates = ProcessingEstimates.from_settings(self.settings.priority)
        self.sources = SourceBook(self)
        self.latest_snapshots: dict[str, SnapshotSummary] = {}
        self.store: Store | None = None
        self.lock: DataDirLock | None = None
        self.http: aiohttp.ClientSession | None = None
        self.compute_pool: ThreadPoolExecutor | None = None  # CRITICAL chains, in this process
        self.compute_procs: ProcessPoolExecutor | None = None  # every other chain
        self.sla: SlaWatch | None = None
        self._web_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()
        self.rules = RuleService(self)
        self.intake = Intake(self)
        self.runner = Runner(self)
        self.ops = Operations(self)
        self.drop = DropFolder(self)

    # -- paths and small helpers ------------------------------------------------

    @property
    def tmp_dir(self) -> Path:
        return self.config.data_dir / "tmp"

    @property
    def ingest_dir(self) -> Path:
        return self.config.data_dir / "ingest"

    def require_store(self) -> Store:
        if self.store is None:
            raise GexError("the store is not open")
        return self.store

    def publish(self, type_: EventType, data: EventData | Callable[[], EventData]) -> None:
        self.bus.publish(type_, data)

    def to_mono(self, instant: datetime | None) -> float | None:
        """An instant on the scheduler's monotonic clock."""
        if instant is None:
            return None
        return self.mono() + (instant - self.now()).total_seconds()

    @property
    def accepting(self) -> bool:
        return self.state == "running"

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        # The store's writer and the compute threads share the GIL with the event loop;
        # a short switch interval keeps the loop's syscalls (socket sends, the clock)
        # from queueing 5 ms behind them each time.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        raise_open_file_limit()
        cfg = self.config
        loop = asyncio.get_running_loop()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.tmp_dir, self.ingest_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.lock = DataDirLock(
            cfg.data_dir, purpose=f"gexdaemon run (socket {cfg.socket_path})"
        ).acquire()
        try:
            # Downloads a killed instance left half-written (or fetched and never used);
            # the lock makes this process the spool's only user, so all of it is stale.
            cleared = clear_spool(self.tmp_dir)
            if cleared:
                log.info("cleared the fetch spool", files=cleared, folder=str(self.tmp_dir))
            await self._claim_socket_path()
            self.store = await asyncio.to_thread(Store.open, StoreOptions.from_config(cfg))
            self.compute_pool = ThreadPoolExecutor(
                max_workers=self.settings.daemon.workers, thread_name_prefix="gexd-compute"
            )
            try:
                self.compute_procs = await asyncio.to_thread(self._start_compute_processes)
            except (OSError, BrokenProcessPool) as exc:
                # An embedding program without a `__main__` guard breaks the forkserver:
                # keep running, computing every chain in threads.
                log.warning("compute processes unavailable; computing in threads", error=str(exc))
            self.http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.settings.sources.connect_timeout_s
                ),
                auto_decompress=False,
            )
            self.sla = SlaWatch(loop, self.mono, self.runner.on_deadline)
            await self.rules.load()
            await self.sources.load()
            await self._load_estimates()
            await self._load_latest_snapshots()
            await self.runner.recover()
            self.state = "running"
            self._tasks.append(asyncio.create_task(self.runner.loop(), name="gexd-runner"))
            self._tasks.append(
                asyncio.create_task(self.runner.lease_reaper(), name="gexd-lease-reaper")
            )
            await self._open_socket()
            await self.drop.start()
        except BaseException:
            await self._teardown()
            raise
        self.started_mono = self.mono()
        log.info(
            "daemon ready",
            socket=str(cfg.socket_path),
            data_dir=str(cfg.data_dir),
            drop=str(cfg.drop_dir),
            workers=self.settings.daemon.workers,
            queued=self.scheduler.queued_count,
            version=self.version,
        )
        self.publish(
            EventType.DAEMON_STARTED, DaemonNotice(instance=self.instance, version=self.version)
        )

    async def stop(self) -> None:
        if self.state in ("stopping", "stopped"):
            await self._stopped.wait()
            return
        log.info("daemon stopping", in_flight=self.scheduler.in_flight_count)
        self.state = "stopping"
        self.publish(
            EventType.DAEMON_STOPPING, DaemonNotice(instance=self.instance, version=self.version)
        )
        with contextlib.suppress(Exception):
            await self.drop.stop()
        await self.runner.drain(self.settings.daemon.shutdown_grace_s)
        await self._teardown()
        self.state = "stopped"
        self._stopped.set()
        log.info("daemon stopped")

    async def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.sla is not None:
            self.sla.cancel_all()
        self.bus.close_all()
        if self._web_runner is not None:
            await self._web_runner.cleanup()
            self._web_runner = None
        with contextlib.suppress(FileNotFoundError):
            if self._socket_is_ours():
                self.config.socket_path.unlink()
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.compute_pool is not None:
            self.compute_pool.shutdown(wait=False, cancel_futures=True)
            self.compute_pool = None
        if self.compute_procs is not None:
            procs, self.compute_procs = self.compute_procs, None
            await asyncio.to_thread(procs.shutdown, wait=True, cancel_futures=True)
        if self.store is not None:
            await self._save_estimates()
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    async def run_until_signalled(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop gracefully. A second signal stops at once."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            log.info("signal received", signal=signal.Signals(signum).name, count=signals)
            if signals > 1:
                os._exit(130)  # the trader insisted; committed data is safe in the store
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _start_compute_processes(self) -> ProcessPoolExecutor:
        """Processes for non-CRITICAL chains: their CPU work cannot take the GIL from CRITICAL.

        forkserver, not fork: this process already runs threads (the store's writer).
        The pool is warmed up here so the first job does not pay the imports.
        """
        slots = self.settings.daemon.shared_compute_slots(os.cpu_count() or 1)
        pool = ProcessPoolExecutor(
            max_workers=slots,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=exit_with_daemon,
            initargs=(os.getpid(),),
        )
        for warm in [pool.submit(warm_up) for _ in range(slots)]:
            warm.result()
        return pool

    def restart_compute_processes(self) -> None:
        """After a compute process died (killed, out of memory): a fresh pool for what follows."""
        old = self.compute_procs
        self.compute_procs = self._start_compute_processes()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    # -- the socket -------------------------------------------------------------

    async def _claim_socket_path(self) -> None:
        """Refuse a live daemon on our socket path; remove a stale socket left by a crash."""
        path = self.config.socket_path
        if not path.exists():
            return
        if not stat.S_ISSOCK(path.stat().st_mode):
            raise GexError(
                f"{path} exists and is not a socket; move it away or set [daemon] socket"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError, OSError):
            log.warning("removing stale socket", socket=str(path))
            path.unlink()
            return
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        raise DaemonAlreadyRunning(
            f"a daemon is already answering on {path}; stop it first (gexdaemon status --socket {path}) "
            "or give this one another --socket"
        )

    async def _open_socket(self) -> None:
        path = self.config.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)  # noqa: PTH101 - the folder guards the socket
        app = build_app(
            self.ops,
            max_body_bytes=self.settings.api.max_body_bytes,
            allowed_uids=frozenset(self.settings.api.allowed_uids),
        )
        self._web_runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=2.0,
            access_log=None,
            keepalive_timeout=IDLE_TIMEOUT_S,  # also cuts off headers sent a byte at a time
            lingering_time=LINGER_S,
        )
        await self._web_runner.setup()
        old = os.umask(0o177)  # the socket is created 0600
        try:
            site = web.UnixSite(self._web_runner, str(path), shutdown_timeout=2.0)
            await site.start()
        finally:
            os.umask(old)
        os.chmod(path, 0o600)  # noqa: PTH101
        self._socket_inode = path.stat().st_ino

    def _socket_is_ours(self) -> bool:
        inode = getattr(self, "_socket_inode", None)
        try:
            return inode is not None and self.config.socket_path.stat().st_ino == inode
        except FileNotFoundError:
            return False

    # -- persisted learning -----------------------------------------------------

    async def _load_estimates(self) -> None:
        store = self.require_store()
        states = await store.read(load_estimates)
        self.estimates.import_state(states)

    async def _save_estimates(self) -> None:
        if self.store is None:
            return
        changed = self.estimates.take_changed()
        if changed:
            with contextlib.suppress(GexError):
                await self.store.commit([PutEstimates(changed, now=self.now())])

    async def _load_latest_snapshots(self) -> None:
        rows = await self.require_store().read(lambda cur: list_snapshots(cur, limit=200))
        for row in rows:
            self.note_snapshot(present.snapshot_summary(row))

    def note_snapshot(self, summary: SnapshotSummary) -> None:
        """Keep the latest snapshot per symbol: latest by the chain's market time, as
        `gexdaemon gex` and GET /v1/snapshots/latest define it (an old file processed
        now does not replace a newer one)."""
        held = self.latest_snapshots.get(summary.market_symbol)
        if held is None or (summary.snapshot_at, summary.processed_at) >= (
            held.snapshot_at,
            held.processed_at,
        ):
            self.latest_snapshots[summary.market_symbol] = summary

    # -- facts for the API and the dashboard ------------------------------------

    def uptime_s(self) -> float:
        return self.mono() - self.started_mono

    def level_summary(self) -> list[LevelFigures]:
        stats = self.scheduler.stats(self.mono())
        out = []
        for level in PriorityLevel:
            st = stats[level]
            sla = self.sla.summary(level) if self.sla is not None else SlaWatch.empty(level)
            out.append(
                LevelFigures(
                    level=level,
                    depth=st.depth,
                    delayed=st.delayed,
                    in_flight=st.in_flight,
                    at_risk=st.at_risk,
                    oldest_wait_s=st.oldest_wait_s,
                    next_deadline_in_s=(st.next_deadline - self.mono())
                    if st.next_deadline is not None
                    else None,
                    sla_s=self.settings.sla.seconds_for(level),
                    sla_met_ratio=sla.sla_met_ratio,
                    finished_last_hour=sla.finished_last_hour,
                    breaches_last_hour=sla.breaches_last_hour,
                    throughput_per_min=sla.throughput_per_min,
                    met_total=sla.met_total,
                    breached_total=sla.breached_total,
                    at_risk_precision=sla.at_risk_precision,
                )
            )
        return out

    def live_jobs(self, limit: int = 500) -> list[LiveJob]:
        order = {JobStatus.PROCESSING: 0, JobStatus.QUEUED: 1}
        jobs = sorted(
            self.book,
            key=lambda e: (
                order.get(e.job.status, 2),
                e.job.priority_level.rank,
                e.job.deadline or e.job.queued_at + timedelta(days=3650),
            ),
        )
        return jobs[:limit]
