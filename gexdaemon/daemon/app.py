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
import os
import resource
import signal
import socket as socket_module
import stat
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import structlog
from aiohttp import web

from gexdaemon import __version__
from gexdaemon.api.server import IDLE_TIMEOUT_S, LINGER_S, build_app
from gexdaemon.config import Config
from gexdaemon.core.errors import GexError
from gexdaemon.core.estimates import ProcessingEstimates
from gexdaemon.core.scheduler import Scheduler
from gexdaemon.core.timeutil import utc_now
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.execute import ComputePools, Executor, Places
from gexdaemon.daemon.idempotency import IdempotencyBook
from gexdaemon.daemon.intake import Intake
from gexdaemon.daemon.jobbook import JobBook
from gexdaemon.daemon.operations import Operations
from gexdaemon.daemon.queue import JobQueue
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.runner import Runner
from gexdaemon.daemon.sla import WINDOW_S as SLA_WINDOW_S
from gexdaemon.daemon.sla import SlaWatch
from gexdaemon.daemon.snapshots import LatestSnapshots
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.daemon.wiring import wire
from gexdaemon.daemon.writes import BackgroundWrites
from gexdaemon.drop.watcher import DropFolder
from gexdaemon.protocol.shapes import DaemonNotice
from gexdaemon.storage.errors import DataDirLocked
from gexdaemon.storage.estimates import PutEstimates, load_estimates
from gexdaemon.storage.jobs import sla_record
from gexdaemon.storage.lock import DataDirLock
from gexdaemon.storage.store import Store, StoreOptions
from gexdaemon.tasks import cancel_all

if TYPE_CHECKING:
    from gexdaemon.daemon.cluster import ClusterService

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


class Daemon:
    """One running daemon. `await start()`, then `await stop()`; or `run_until_signalled()`.

    The daemon wires: it owns the process-wide resources (the data-directory lock,
    the store, the HTTP session, the compute pools, the socket) and builds each
    service with the few collaborators it uses. No service holds the daemon.
    """

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = utc_now,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.clock = Clock(now=now, mono=mono)
        self.instance = f"{socket_module.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.version = __version__
        self._state = "created"
        self.started_mono = mono()
        self.bus = EventBus(self.settings.api.event_buffer, clock=now)
        self.estimates = ProcessingEstimates.from_settings(self.settings.priority)
        self.latest = LatestSnapshots()
        self.lock: DataDirLock | None = None
        self.store: Store | None = None
        self.http: aiohttp.ClientSession | None = None
        self.pools: ComputePools | None = None
        self.sla_watch: SlaWatch | None = None
        self.sources: SourceBook | None = None
        self.intake: Intake | None = None
        self.runner: Runner | None = None
        self.ops: Operations | None = None
        self.drop: DropFolder | None = None
        self.cluster: ClusterService | None = None
        self._redis: Any = None
        self._writes: BackgroundWrites | None = None
        self._web_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    # -- what the API says about the daemon (operations.Identity) --------------------

    @property
    def state(self) -> str:
        return self._state

    def uptime_s(self) -> float:
        return self.clock.mono() - self.started_mono

    def mono(self) -> float:
        return self.clock.mono()

    @property
    def tmp_dir(self) -> Path:
        return self.config.data_dir / "tmp"

    @property
    def ingest_dir(self) -> Path:
        return self.config.data_dir / "ingest"

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        # The store's writer and the compute threads share the GIL with the event loop;
        # a short switch interval keeps the loop's syscalls (socket sends, the clock)
        # from queueing 5 ms behind them each time.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        raise_open_file_limit()
        cfg = self.config
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
            if self.settings.cluster.enabled:
                await self._join_redis()
            self.store = await asyncio.to_thread(Store.open, StoreOptions.from_config(cfg))
            self._report_journal(self.store)
            self.pools = ComputePools(
                self.settings.daemon.workers,
                self.settings.daemon.shared_compute_slots(os.cpu_count() or 1),
                nice=self.settings.daemon.compute_nice,
            )
            await asyncio.to_thread(self.pools.start_processes)
            self.http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.settings.sources.connect_timeout_s
                ),
                auto_decompress=False,
            )
            await self._build(self.store, self.http, self.pools)
            self._state = "running"
            assert self.runner is not None and self.drop is not None
            if self.cluster is not None:  # the cluster's leader dispatches; this node works
                await self.cluster.start()
            else:
                self._tasks.append(asyncio.create_task(self.runner.loop(), name="gexd-runner"))
                self._tasks.append(
                    asyncio.create_task(self.runner.lease_reaper(), name="gexd-lease-reaper")
                )
            await self._open_socket()
            await self.drop.start()
        except BaseException:
            await self._teardown()
            raise
        self.started_mono = self.clock.mono()
        log.info(
            "daemon ready",
            socket=str(cfg.socket_path),
            data_dir=str(cfg.data_dir),
            drop=str(cfg.drop_dir),
            workers=self.settings.daemon.workers,
            queued=self.runner.queued if self.runner else 0,
            version=self.version,
        )
        self.bus.publish(
            EventType.DAEMON_STARTED, DaemonNotice(instance=self.instance, version=self.version)
        )

    async def _join_redis(self) -> None:
        """Cluster mode: reach the cluster's Redis and refuse one that would lose requests."""
        from gexdaemon.cluster.link import check_durable, connect, facts  # noqa: PLC0415

        cluster = self.settings.cluster
        client = await connect(cluster)
        try:
            found = await facts(client, cluster)
            warning = check_durable(found, allow_volatile=cluster.allow_volatile_redis)
        except BaseException:
            await client.aclose()
            raise
        if warning:
            log.warning(warning)
        self._redis = (client, found, warning)

    @staticmethod
    def _report_journal(store: Store) -> None:
        replay = store.journal_replay
        if replay is None:
            return
        if replay.records:
            log.info("replayed the intake journal", records=replay.records)
        for path in replay.damaged:
            log.error(
                "an intake journal segment did not read back; it is kept for inspection",
                path=str(path),
            )
        for path in replay.refused:
            log.error("the database refused a journaled request; it is kept", path=str(path))

    async def _build(self, store: Store, http: aiohttp.ClientSession, pools: ComputePools) -> None:
        """Every service, each with the few collaborators it uses; then the state they load."""
        cfg, settings, clock, bus = self.config, self.settings, self.clock, self.bus
        src = settings.sources
        scheduler = Scheduler(
            settings.scheduler,
            settings.sla,
            settings.daemon.workers,
            source_cap=src.max_concurrency,
            rate_per_s=src.rate_per_s,
            burst=src.burst,
            clock=clock.mono,
        )
        writes = self._writes = BackgroundWrites(store)
        sla_watch = self.sla_watch = SlaWatch(asyncio.get_running_loop(), clock.mono)
        # The parts services are built from (each takes the fields it declares, by name).
        parts: dict[str, object] = {
            "identity": self,
            "config": cfg,
            "instance": self.instance,
            "ingest_dir": self.ingest_dir,
            "store": store,
            "bus": bus,
            "clock": clock,
            "now": clock.now,
            "scheduler": scheduler,
            "writes": writes,
            "sla_watch": sla_watch,
            "estimates": self.estimates,
            "latest": self.latest,
            "domain_context": cfg.domain_context,
        }
        parts["queue"] = wire(
            JobQueue, parts, book=JobBook(settings.daemon.recent_jobs), sla=settings.sla
        )
        sources = parts["sources"] = self.sources = wire(SourceBook, parts, settings=src)
        rules = parts["rules"] = wire(
            RuleService,
            parts,
            settings=settings.rules,
            priority=settings.priority,
            reliability=sources.reliability,
        )
        executor = self._executor(store, http, pools, sources.record)
        runner = parts["runner"] = self.runner = wire(
            Runner, parts, settings=settings, executor=executor
        )
        sla_watch.on_deadline = runner.on_deadline
        sources.on_change = runner.kick
        keys = parts["keys"] = wire(IdempotencyBook, parts)

        if self._redis is not None:
            self.cluster = self._cluster_service(parts, http, pools, sources.record)
        parts["cluster"] = self.cluster
        parts["intake"] = self.intake = wire(
            Intake,
            parts,
            settings=settings,
            accepting=lambda: self._state == "running",
            wake=runner.kick,
        )
        self.ops = wire(Operations, parts)
        self.drop = wire(DropFolder, parts, root=cfg.drop_dir, settings=settings.drop)
        await rules.load()
        await sources.load()
        await keys.load()
        self.estimates.import_state(await store.read(load_estimates))
        await self.latest.load(store)
        since = clock.now() - timedelta(seconds=SLA_WINDOW_S)
        sla_watch.load(await store.read(sla_record, since), clock.to_mono)
        if self.cluster is None:  # in cluster mode the board holds live work, not this store
            await runner.recover()

    def _executor(
        self,
        store: Store,
        http: aiohttp.ClientSession,
        pools: ComputePools,
        record_fetch: Callable[..., None],
        persist: Callable[..., Any] | None = None,
    ) -> Executor:
        cfg = self.config
        return Executor(
            settings=self.settings,
            places=Places(
                spool=self.tmp_dir, readable=(cfg.drop_dir, self.ingest_dir), lake=cfg.lake_dir
            ),
            store=store,
            http=http,
            pools=pools,
            record_fetch=record_fetch,
            domain_context=lambda: cfg.domain_context(allow_any_symbol=True),
            now=self.clock.now,
            persist=persist,
        )

    def _cluster_service(
        self,
        parts: dict[str, object],
        http: aiohttp.ClientSession,
        pools: ComputePools,
        record_fetch: Callable[..., None],
    ) -> ClusterService:
        from gexdaemon.cluster.board import Board  # noqa: PLC0415 - cluster mode only
        from gexdaemon.cluster.keys import Keys  # noqa: PLC0415
        from gexdaemon.daemon.cluster import ClusterService, default_node_id  # noqa: PLC0415

        cfg, settings = self.config, self.settings
        client, found, warning = self._redis
        store = cast("Store", parts["store"])

        def executor(persist: Callable[..., Any]) -> Executor:
            return self._executor(store, http, pools, record_fetch, persist)

        return wire(
            ClusterService,
            parts,
            settings=settings,
            node_id=settings.cluster.node_id or default_node_id(),
            slots=settings.daemon.workers,
            version=self.version,
            board=Board(client, Keys(settings.cluster.name)),
            redis_facts=found,
            warning=warning,
            executor_factory=executor,
            lake_dir=cfg.lake_dir,
            decode_context=cfg.domain_context(allow_any_symbol=True, allow_file_urls=True),
        )

    async def stop(self) -> None:
        if self._state in ("stopping", "stopped"):
            await self._stopped.wait()
            return
        log.info("daemon stopping", in_flight=self.runner.running if self.runner else 0)
        self._state = "stopping"
        self.bus.publish(
            EventType.DAEMON_STOPPING, DaemonNotice(instance=self.instance, version=self.version)
        )
        if self.drop is not None:
            with contextlib.suppress(Exception):
                await self.drop.stop()
        if self.cluster is not None:
            await self.cluster.stop(self.settings.daemon.shutdown_grace_s)
        elif self.runner is not None:
            await self.runner.drain(self.settings.daemon.shutdown_grace_s)
        await self._teardown()
        self._state = "stopped"
        self._stopped.set()
        log.info("daemon stopped")

    async def _teardown(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        if self.sla_watch is not None:
            self.sla_watch.cancel_all()
        if self.sources is not None:
            self.sources.cancel_timers()
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
        if self.pools is not None:
            pools, self.pools = self.pools, None
            await pools.close()
        if self._writes is not None:
            await self._writes.drain()
        if self.store is not None:
            changed = self.estimates.take_changed()
            if changed:
                with contextlib.suppress(GexError):
                    await self.store.commit([PutEstimates(changed, self.clock.now())])
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)
        if self._redis is not None:
            client, self._redis = self._redis[0], None
            with contextlib.suppress(Exception):
                await client.aclose()
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
        assert self.ops is not None
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
