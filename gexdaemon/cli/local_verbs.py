"""Verbs that work on the data directory itself, without a running daemon.

Each verb imports what it uses when it runs: `gexdaemon --help` and the remote verbs must
not pay for the daemon, DuckDB, pyarrow or numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from gexdaemon.cli import render
from gexdaemon.cli.invocation import Invocation, UsageError, Verbs
from gexdaemon.cli.output import EXIT_OK, key_values
from gexdaemon.protocol.shapes import ArchiveResult, LakeRebuildResult

if TYPE_CHECKING:
    from gexdaemon.client import Client
    from gexdaemon.storage.lock import DataDirLock
    from gexdaemon.storage.store import Store, StoreOptions

T = TypeVar("T")


def register(verb: Verbs) -> None:
    p = verb.add("run", run_verb, "start the daemon in the foreground (Ctrl-C stops it gracefully)")
    p.add_argument(
        "--allow-volatile-redis",
        action="store_true",
        help="cluster mode: run on a Redis that does not fsync every write (a crash of "
        "redis-server can then lose acknowledged requests; warned at every start)",
    )

    p = verb.add(
        "demo", demo_verb, "daemon + local feed server on the sample feeds + a desk's request mix"
    )
    p.add_argument(
        "--minutes", type=float, default=5.0, help="how long to send traffic (default 5)"
    )
    p.add_argument(
        "--feeds", type=Path, help="folder of chain files to serve (default sample_feeds/)"
    )
    p.add_argument(
        "--exit-after", action="store_true", help="stop when the traffic ends instead of idling"
    )
    p.add_argument("--seed", type=int, help="make the traffic repeatable")
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="cluster mode: start a local redis-server (from PATH) and this many daemons "
        "sharing it (default 1: embedded mode)",
    )
    p.add_argument(
        "--feed-port",
        type=int,
        default=8765,
        help="the feed server's port on 127.0.0.1 (default 8765; a free one if it is taken)",
    )

    p = verb.add(
        "feed-server",
        feed_server_verb,
        "serve a folder of feeds over HTTP on 127.0.0.1, with fault injection",
    )
    p.add_argument("--dir", type=Path, required=True, help="folder to serve")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay every answer by this much")
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 503 (0-1)"
    )
    p.add_argument("--seed", type=int)

    p = verb.add(
        "analyze",
        analyze_verb,
        "compute a chain file's GEX levels locally (no daemon, nothing stored)",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--symbol")
    p.add_argument("--top", type=int, default=10)

    p = verb.add("config", config_verb, "show or check the effective configuration")
    p.add_argument("action", choices=["show", "check", "paths"], nargs="?", default="check")

    p = verb.add("migrate", migrate_verb, "apply schema migrations (also done at start)")

    p = verb.add(
        "archive",
        archive_verb,
        "move finished jobs older than the retention to the Parquet archive",
    )
    p.add_argument(
        "--older-than-days",
        type=float,
        metavar="DAYS",
        help="override [storage] retention_days for this run",
    )

    p = verb.add("lake", lake_verb, "the Parquet lake: rebuild this node's database from it")
    lake = Verbs(p.add_subparsers(dest="lake_action", metavar="ACTION"), verb.common)
    lake.add(
        "rebuild",
        lake_verb,
        "put every snapshot the lake holds and the database does not back into it",
    )

    p = verb.add(
        "recover", recover_verb, "recover a data directory whose write-ahead log will not replay"
    )
    p.add_argument(
        "--move-wal",
        action="store_true",
        required=True,
        help="move the unreplayable WAL aside (kept, never deleted) and open the database "
        "at its last checkpoint",
    )


def config_verb(inv: Invocation) -> int:
    cfg = inv.config
    paths = {
        "config_files": ", ".join(str(f) for f in cfg.files) or "(embedded defaults)",
        "data_dir": str(cfg.data_dir),
        "socket": str(cfg.socket_path),
        "drop_dir": str(cfg.drop_dir),
        "duckdb": str(cfg.duckdb_path),
        "lake": str(cfg.lake_dir),
        "archive": str(cfg.archive_dir),
    }
    action = inv.args.action
    if action == "show":
        inv.output.result(
            {"paths": paths, "settings": cfg.settings.model_dump(mode="json")},
            lambda v: _settings_text(v["settings"]) + "\n\n" + key_values(paths.items()),
        )
    elif action == "paths":
        inv.output.result(paths, lambda v: key_values(v.items()))
    else:
        inv.output.result(
            {"ok": True, "paths": paths}, "configuration is valid\n" + key_values(paths.items())
        )
    return EXIT_OK


def _settings_text(settings: dict[str, Any], prefix: str = "") -> str:
    lines = []
    for key, value in settings.items():
        if isinstance(value, dict):
            lines.append(_settings_text(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value!r}")
    return "\n".join(lines)


def run_verb(inv: Invocation) -> int:
    import asyncio  # noqa: PLC0415 - loaded when the verb runs
    import dataclasses  # noqa: PLC0415

    from gexdaemon.daemon.app import Daemon  # noqa: PLC0415
    from gexdaemon.logs import configure as configure_logging  # noqa: PLC0415

    config = inv.config
    if inv.args.allow_volatile_redis:
        settings = config.settings
        cluster = settings.cluster.model_copy(update={"allow_volatile_redis": True})
        config = dataclasses.replace(
            config, settings=settings.model_copy(update={"cluster": cluster})
        )
    configure_logging(config.settings.logging)
    asyncio.run(Daemon(config).run_until_signalled())
    return EXIT_OK


def demo_verb(inv: Invocation) -> int:
    import asyncio  # noqa: PLC0415 - loaded when the verb runs

    from gexdaemon.demo.run import run_demo  # noqa: PLC0415
    from gexdaemon.logs import configure as configure_logging  # noqa: PLC0415

    config = inv.config
    configure_logging(config.settings.logging.model_copy(update={"level": "warning"}))
    a = inv.args
    asyncio.run(
        run_demo(
            config,
            feeds=a.feeds,
            minutes=a.minutes,
            exit_after=a.exit_after,
            seed=a.seed,
            feed_port=a.feed_port,
            nodes=a.nodes,
        )
    )
    return EXIT_OK


def feed_server_verb(inv: Invocation) -> int:
    import asyncio  # noqa: PLC0415 - loaded when the verb runs
    import signal  # noqa: PLC0415

    from gexdaemon.demo.feedserver import start_feed_server  # noqa: PLC0415

    a = inv.args
    if not a.dir.is_dir():
        raise UsageError(f"--dir {a.dir} is not a folder")
    if not 0.0 <= a.error_rate <= 1.0:
        raise UsageError("--error-rate is a share between 0 and 1")

    async def serve() -> None:
        runner, port = await start_feed_server(
            a.dir, port=a.port, latency_ms=a.latency_ms, error_rate=a.error_rate, seed=a.seed
        )
        inv.output.result(
            {"url": f"http://127.0.0.1:{port}/", "dir": str(a.dir.resolve())},
            lambda r: f"serving {r['dir']} at {r['url']} (Ctrl-C stops)",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    return EXIT_OK


def analyze_verb(inv: Invocation) -> int:
    from gexdaemon.pipeline.analyze import analyze_file, snapshot_view  # noqa: PLC0415

    a = inv.args
    if not a.file.is_file():
        raise UsageError(f"{a.file} is not a file")
    inv.output.progress(f"analyzing {a.file.name} ...")
    result = analyze_file(
        a.file,
        symbol=a.symbol,
        settings=inv.config.settings.gex,
        optionable=inv.config.domain_context().optionable,
    )
    inv.output.progress_done()
    snap = snapshot_view(result)
    inv.output.result(snap, lambda x: render.snapshot_text(x, top=a.top))
    return EXIT_OK


def _locked_store(inv: Invocation, purpose: str) -> tuple[DataDirLock, StoreOptions]:
    from gexdaemon.storage.lock import DataDirLock  # noqa: PLC0415 - loaded when a verb runs
    from gexdaemon.storage.store import StoreOptions  # noqa: PLC0415

    cfg = inv.config
    lock = DataDirLock(cfg.data_dir, purpose=purpose).acquire()
    return lock, StoreOptions.from_config(cfg)


def migrate_verb(inv: Invocation) -> int:
    from gexdaemon.storage.schema import LATEST, current_version, migrate  # noqa: PLC0415
    from gexdaemon.storage.store import connect  # noqa: PLC0415

    running = daemon_or_none(inv)
    if running is not None:  # it migrated at start, and it holds the database
        with running:
            health = running.health()
        inv.output.result(
            {
                "database": str(inv.config.duckdb_path),
                "to_version": LATEST,
                "applied": [],
                "daemon": health.instance,
            },
            lambda r: (
                f"the running daemon ({r['daemon']}) applied migrations at start; "
                f"schema is at version {LATEST}"
            ),
        )
        return EXIT_OK
    lock, options = _locked_store(inv, "gexdaemon migrate")
    try:
        options.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(options)
        try:
            before = current_version(con)
            applied = migrate(
                con,
                progress=lambda m: inv.output.progress(
                    f"applying migration {m.version}: {m.description}"
                ),
            )
            inv.output.progress_done()
        finally:
            con.close()
    finally:
        lock.release()
    result = {
        "database": str(options.path),
        "from_version": before,
        "to_version": LATEST,
        "applied": [{"version": m.version, "description": m.description} for m in applied],
    }
    inv.output.result(
        result,
        lambda _: (
            f"{options.path}: schema {before} -> {LATEST}"
            + "".join(f"\n  applied {m.version}: {m.description}" for m in applied)
            if applied
            else f"{options.path}: already at schema version {LATEST}"
        ),
    )
    return EXIT_OK


def _daemon_or_store(
    inv: Invocation,
    purpose: str,
    doing: str,
    remote: Callable[[Client], T],
    local: Callable[[Store, StoreOptions], T],
) -> T:
    """Ask the running daemon (it owns the database), or, when none runs, lock the data
    directory and do it on the store; `doing` is what the progress line says."""
    from gexdaemon.storage.store import Store  # noqa: PLC0415 - loaded when the verb runs

    running = daemon_or_none(inv)
    if running is not None:
        with running:
            inv.output.progress(f"{doing} through the running daemon ...")
            result = remote(running)
            inv.output.progress_done()
        return result
    lock, options = _locked_store(inv, purpose)
    try:
        inv.output.progress("opening the store ...")
        store = Store.open(options)
        try:
            inv.output.progress(f"{doing} ...")
            result = local(store, options)
        finally:
            store.close()
        inv.output.progress_done()
    finally:
        lock.release()
    return result


def archive_verb(inv: Invocation) -> int:
    days = inv.args.older_than_days

    def remote(gexd: Client) -> ArchiveResult:
        if days is not None:
            raise UsageError(
                "--older-than-days works only without a running daemon; the daemon uses "
                "[storage] retention_days"
            )
        answer: ArchiveResult = gexd.archive()
        return answer

    def local(store: Store, _options: StoreOptions) -> ArchiveResult:
        report = store.archive(now=datetime.now(UTC), retention_days=days).result()
        return msgspec.convert(report.as_dict(), ArchiveResult)

    result = _daemon_or_store(inv, "gexdaemon archive", "archiving finished jobs", remote, local)
    inv.output.result(result, render.archive_text)
    return EXIT_OK


def lake_verb(inv: Invocation) -> int:
    """`lake rebuild`: through the running daemon, or on the data directory when none runs."""
    from gexdaemon.storage.snapshots import rebuild_from_lake  # noqa: PLC0415

    if inv.args.lake_action != "rebuild":
        raise UsageError("say what to do with the lake: gexdaemon lake rebuild")

    def remote(gexd: Client) -> LakeRebuildResult:
        answer: LakeRebuildResult = gexd.rebuild_lake()
        return answer

    def local(store: Store, options: StoreOptions) -> LakeRebuildResult:
        report = rebuild_from_lake(store, options.lake_dir)
        return msgspec.convert(report, LakeRebuildResult, from_attributes=True)

    result = _daemon_or_store(
        inv, "gexdaemon lake rebuild", "reading the lake into the database", remote, local
    )
    inv.output.result(result, render.lake_rebuild_text)
    return EXIT_OK


def recover_verb(inv: Invocation) -> int:
    from gexdaemon.storage.store import Store, move_wal_aside, wal_path  # noqa: PLC0415

    if not inv.args.move_wal:
        raise UsageError("say what to recover: --move-wal")
    lock, options = _locked_store(inv, "gexdaemon recover")
    try:
        wal = wal_path(options.path)
        moved = move_wal_aside(options.path)
        store = Store.open(options)
        store.close()
    finally:
        lock.release()
    result = {
        "wal": str(wal),
        "moved_to": str(moved) if moved else None,
        "database": str(options.path),
    }
    inv.output.result(
        result,
        lambda r: (
            f"moved {r['wal']} to {r['moved_to']}; {r['database']} opens at its last checkpoint. "
            "Keep the moved file: it holds the changes after that checkpoint."
            if r["moved_to"]
            else f"no write-ahead log at {r['wal']}; {r['database']} opens cleanly"
        ),
    )
    return EXIT_OK


def daemon_or_none(inv: Invocation) -> Client | None:
    """A client when a daemon answers on the socket, else None (then the verb works on the files)."""
    if not inv.config.socket_path.exists():
        return None
    from gexdaemon.client import Client, DaemonUnreachable  # noqa: PLC0415

    gexd = Client(inv.config.socket_path, timeout=600.0)
    try:
        gexd.health()
    except DaemonUnreachable:
        gexd.close()
        return None
    return gexd
