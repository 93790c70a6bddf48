"""`gexdaemon demo`: the daemon, local feed servers on the sample feeds, and a desk's request mix.

The daemon keeps its database in a fresh folder (`<data_dir>/demo/<time>`) but
listens on the configured socket and watches the configured drop folder, so
`gextui`, `gexdaemon status` and the README's examples work as written. The
feed server answers on 127.0.0.1:8765 (`--feed-port`; another free port if that
one is taken, said in the banner).

For `--minutes` the generator submits what a desk sends: real-time index
snapshots that the seed rules make CRITICAL, high-volume requests they make
HIGH, routine snapshots and history (MEDIUM, LOW), a flaky source (retries) and
a broken URL (a clear failure), and chain files dropped into the drop folder.
Within the first two minutes it also stages every state a desk must recognise
(`TIMELINE`): a rejected drop file, a source whose circuit opens (its jobs at
risk until it reopens), and a CRITICAL surge on a slow source that cannot all
make 30 s (at risk first, then breached). Then the daemon keeps serving until
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gexdaemon.cluster.localredis import LocalRedis, free_port
from gexdaemon.config import Config
from gexdaemon.core.errors import GexError
from gexdaemon.core.settings import ClusterSettings
from gexdaemon.core.vocab import Origin
from gexdaemon.daemon.app import Daemon
from gexdaemon.demo.feedserver import start_feed_server

REPO_FEEDS = Path(__file__).resolve().parents[2] / "sample_feeds"


def find_sample_feeds(explicit: Path | None = None) -> Path:
    for candidate in (explicit, Path.cwd() / "sample_feeds", REPO_FEEDS):
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate.resolve()
    raise GexError("cannot find the sample feeds; run from the repository root or pass --feeds DIR")


@dataclasses.dataclass
class Mix:
    """One kind of request in the desk's mix: how often, and what it looks like."""

    every_s: float
    path: str
    symbol: str
    data_type: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    query: str = ""


DESK_MIX = (
    Mix(6.0, "_SPX.json", "SPX", "real_time"),  # seed rule: real-time SPX/NDX -> CRITICAL
    Mix(9.0, "_NDX.json", "NDX", "real_time"),
    Mix(
        4.0, "SPY.json", "SPY", "snapshot", {"open_interest": 25000, "volume": 9000}
    ),  # high volume -> HIGH
    Mix(3.0, "SPX_quotedata.csv", "SPX", "snapshot"),
    Mix(3.5, "NDX_quotedata.csv", "NDX", "snapshot"),
    Mix(5.0, "SPY_quotedata.csv", "SPY", "snapshot"),
    # LOW. (The SPX_contracts and SPY_contracts samples are partial chains: left out, so a
    # symbol's total GEX does not jump between files of different scope.)
    Mix(2.5, "SPX_strikes.parquet", "SPX", "historical"),
    Mix(4.0, "NDX_contracts.parquet", "NDX", "historical"),
    Mix(7.0, "SPX_strikes.csv", "SPX", "historical"),
    Mix(15.0, "SPY.json", "SPY", "snapshot", query="delay=1.5"),  # a slow source
    Mix(20.0, "NDX_contracts.parquet", "NDX", "historical", query="status=503"),  # flaky: retried
    Mix(45.0, "missing.json", "SPX", "snapshot"),  # 404: fails clearly, not retried
)

DROP_FILES = ("SPX_strikes.csv", "NDX_contracts.parquet", "SPY_quotedata.csv")
FEED_PORT = 8765
# The slow source answers in 7 s (inside CRITICAL's 10 s fetch timeout) and takes three
# CRITICAL jobs at once (its cap of 2, plus the one CRITICAL may go over): a surge of 15
# runs in five waves, and the last wave ends 35 s after it was sent.
SLOW_S = 7.0
SURGE = 15


@dataclasses.dataclass(frozen=True)
class Moment:
    """A staged state of the desk: when (seconds into the demo) and what a trader sees."""

    at_s: float
    shows: str


TIMELINE = (
    Moment(8.0, f"a slow source learns its pace (two CRITICAL snapshots, {SLOW_S:g} s each)"),
    Moment(15.0, "a rejected drop file: SPX_broken.json moves to drop/rejected/ with its error"),
    Moment(20.0, "retries, then an open circuit: a source answering 503 (its jobs at risk)"),
    Moment(45.0, f"{SURGE} CRITICAL jobs on the slow source: flagged at risk, then breached"),
)


def demo_config(config: Config, *, stamp: str) -> Config:
    data_dir = config.data_dir / "demo" / stamp
    return dataclasses.replace(
        config, data_dir=data_dir, duckdb_path=data_dir / config.settings.storage.duckdb_file
    )


class ExtraNodes:
    """`demo --nodes N`: a local redis-server and nodes 2..N as `gexdaemon run` processes;
    the demo's own daemon is node 1."""

    def __init__(self, config: Config, cfg: Config, count: int) -> None:
        self.config, self.cfg, self.count = config, cfg, count
        self.redis: LocalRedis | None = None
        self.procs: list[tuple[str, Path, subprocess.Popen[bytes]]] = []

    def start(self) -> Config:
        """Start Redis and the other nodes; returns node 1's config (cluster mode)."""
        root = self.cfg.data_dir
        self.redis = LocalRedis(folder=root / "redis", port=free_port()).start()
        lake = root / "lake"
        cluster = ClusterSettings(
            redis_url=self.redis.url, name="demo", node_id="node1", lake_dir=str(lake)
        )
        cfg = dataclasses.replace(
            self.cfg,
            settings=self.cfg.settings.model_copy(update={"cluster": cluster}),
        )
        for i in range(2, self.count + 1):
            node_dir = root / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
            env.update(
                GEXD_DATA_DIR=str(node_dir),
                GEXD_SOCKET=str(node_dir / "gexd.sock"),
                GEXD__CLUSTER__REDIS_URL=self.redis.url,
                GEXD__CLUSTER__NAME="demo",
                GEXD__CLUSTER__NODE_ID=f"node{i}",
                GEXD__CLUSTER__LAKE_DIR=str(lake),
                GEXD__LOGGING__LEVEL="warning",
            )
            if self.config.files:
                env["GEXD_CONFIG"] = os.pathsep.join(str(f) for f in self.config.files)
            with (node_dir / "daemon.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "gexdaemon", "run"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.procs.append((f"node{i}", node_dir / "gexd.sock", proc))
        return cfg

    def banner(self) -> str:
        if self.redis is None:
            return ""
        lines = [
            f"  cluster      {self.count} nodes on redis-server {self.redis.url} (AOF, fsync always)"
        ]
        lines += [f"  node{i:<8} socket {sock}" for i, (_, sock, _) in enumerate(self.procs, 2)]
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        for _, _, proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for _, _, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()


async def run_demo(
    config: Config,
    *,
    feeds: Path | None,
    minutes: float,
    exit_after: bool,
    seed: int | None,
    feed_port: int = FEED_PORT,
    nodes: int = 1,
    out: TextIO = sys.stdout,
) -> None:
    feed_dir = find_sample_feeds(feeds)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    cfg = demo_config(config, stamp=stamp)
    extra = ExtraNodes(config, cfg, nodes) if nodes > 1 else None
    if extra is not None:
        cfg = extra.start()
    try:
        feed_runner, port = await start_feed_server(feed_dir, port=feed_port, seed=seed)
    except OSError:  # 8765 taken (another demo, another program): any free port
        feed_runner, port = await start_feed_server(feed_dir, seed=seed)
    # A second server is a second source (sources are told apart by host and port): the
    # slow one. The down one is the first server under another name (localhost).
    slow_runner, slow_port = await start_feed_server(feed_dir, seed=seed)
    base = f"http://127.0.0.1:{port}"
    places = Places(
        main=base, slow=f"http://127.0.0.1:{slow_port}", down=f"http://localhost:{port}"
    )
    daemon = Daemon(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await daemon.start()
        sock = cfg.socket_path
        out.write(
            f"\ngexdaemon demo is running\n"
            f"  data dir     {cfg.data_dir}\n"
            f"  socket       {sock}\n"
            f"  drop folder  {cfg.drop_dir}\n"
            f"  feed server  {base}/ serving {feed_dir}\n"
            f"  traffic      a desk's request mix for {minutes:g} min, then idle until Ctrl-C\n"
            + (extra.banner() if extra is not None else "")
            + "\nIn the first two minutes:\n"
            + "".join(f"  ~{m.at_s:3.0f} s  {m.shows}\n" for m in TIMELINE)
            + "\n"
            f"Watch it:      gextui{'' if sock == config.socket_path else f' --socket {sock}'}\n"
            + (
                f"Nodes:         gexdaemon cluster status --socket {sock}\n"
                if extra is not None
                else ""
            )
            + f"Script it:     gexdaemon status --socket {sock}\n"
            f"               gexdaemon gex SPX --socket {sock}\n"
            f"               curl --unix-socket {sock} http://localhost/v1/queues\n"
            f"Stop:          Ctrl-C (a graceful stop: running jobs finish, nothing accepted is lost)\n\n"
        )
        out.flush()
        rng = random.Random(seed)  # noqa: S311 - demo traffic, not security
        traffic = asyncio.create_task(_traffic(daemon, places, feed_dir, minutes * 60.0, rng))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({traffic, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if traffic.done():
            counts = traffic.result()
            out.write(
                f"demo traffic finished: {counts['submitted']} requests submitted, "
                f"{counts['dropped']} files dropped. The daemon keeps running; Ctrl-C stops it.\n"
            )
            out.flush()
            if not exit_after:
                await waiter
        traffic.cancel()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await daemon.stop()
        if extra is not None:
            await asyncio.to_thread(extra.stop)
        await feed_runner.cleanup()
        await slow_runner.cleanup()


@dataclasses.dataclass(frozen=True)
class Places:
    """The demo's three sources: the feed server, a slow one, and one that is down."""

    main: str
    slow: str
    down: str


def _staged(places: Places) -> list[tuple[float, list[dict[str, Any]]]]:
    """The requests that stage the timeline's states, by when they are sent."""

    def req(base: str, path: str, symbol: str, kind: str, **meta: Any) -> dict[str, Any]:
        return {"source_url": f"{base}/{path}", "market_symbol": symbol, "data_type": kind} | (
            {"metadata": meta} if meta else {}
        )

    slow = f"_SPX.json?delay={SLOW_S:g}"
    high_volume = {"open_interest": 25000, "volume": 9000}  # the seed rules make these HIGH
    return [
        (8.0, [req(places.slow, slow, "SPX", "real_time") for _ in range(2)]),
        (
            20.0,
            [
                req(places.down, "SPY.json?status=503", "SPY", "snapshot", **high_volume)
                for _ in range(6)
            ],
        ),
        (45.0, [req(places.slow, slow, "SPX", "real_time") for _ in range(SURGE)]),
    ]


async def _traffic(
    daemon: Daemon, places: Places, feed_dir: Path, seconds: float, rng: random.Random
) -> dict[str, int]:
    """Submit the desk mix through the daemon's own intake, as the socket API would."""
    base = places.main
    started = daemon.mono()
    due = {i: started + rng.uniform(0, m.every_s) for i, m in enumerate(DESK_MIX)}
    next_drop = started + 10.0
    staged = _staged(places)
    broken_dropped = False
    counts = {"submitted": 0, "dropped": 0}
    while daemon.mono() - started < seconds:
        now = daemon.mono()
        while staged and started + staged[0][0] <= now:
            for payload in staged.pop(0)[1]:
                if not await _submit(daemon, payload):
                    return counts
                counts["submitted"] += 1
        if not broken_dropped and now - started >= 15.0:
            broken_dropped = True
            await _drop(daemon, feed_dir / "broken" / "truncated_SPX.json", "SPX_broken.json")
            counts["dropped"] += 1
        for i, mix in enumerate(DESK_MIX):
            if due[i] <= now:
                due[i] = now + rng.expovariate(1.0 / mix.every_s)
                url = f"{base}/{mix.path}" + (f"?{mix.query}" if mix.query else "")
                payload = {
                    "source_url": url,
                    "market_symbol": mix.symbol,
                    "data_type": mix.data_type,
                    "metadata": dict(mix.metadata)
                    | {"desk": rng.choice(["vol", "delta-one", "index"])},
                }
                if not await _submit(daemon, payload):
                    return counts
                counts["submitted"] += 1
        if now >= next_drop:
            next_drop = now + rng.uniform(20.0, 40.0)
            name = rng.choice(DROP_FILES)
            await _drop(
                daemon, feed_dir / name, f"{Path(name).stem}_{counts['dropped']}{Path(name).suffix}"
            )
            counts["dropped"] += 1
        await asyncio.sleep(0.1)
    return counts


async def _submit(daemon: Daemon, payload: dict[str, Any]) -> bool:
    """Submit through the daemon's intake; False once it is shutting down."""
    assert daemon.intake is not None
    try:
        subs = daemon.intake.parse(payload)
        await daemon.intake.submit(subs, origin=Origin.DEMO)
    except GexError:
        return False
    return True


async def _drop(daemon: Daemon, source: Path, name: str) -> None:
    """Put a file in the drop folder as a desk's tools should: write aside, then rename."""
    target = daemon.config.drop_dir / name
    tmp = target.with_name(f".{target.name}.part")
    await asyncio.to_thread(shutil.copyfile, source, tmp)
    tmp.rename(target)
