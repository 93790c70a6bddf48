"""`gexdaemon demo`: the daemon, a local feed server on the sample feeds, and a desk's request mix.

The daemon runs on a fresh data directory (`<data_dir>/demo/<time>`) but listens
on the configured socket, so `gextui` and `gexdaemon status` attach with no
arguments. For `--minutes` the generator submits what a desk sends: real-time
index snapshots that the seed rules make CRITICAL, high-volume requests they
make HIGH, routine snapshots and history (MEDIUM, LOW), a few flaky or slow
sources (retries, a breaker that opens), a broken URL (a clear failure), and
chain files dropped into the drop folder. Then the daemon keeps serving until
Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gexdaemon.config import Config
from gexdaemon.core.errors import GexError
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


def demo_config(config: Config, *, stamp: str) -> Config:
    data_dir = config.data_dir / "demo" / stamp
    return dataclasses.replace(
        config,
        data_dir=data_dir,
        drop_dir=data_dir / "drop",
        duckdb_path=data_dir / config.settings.storage.duckdb_file,
    )


async def run_demo(
    config: Config,
    *,
    feeds: Path | None,
    minutes: float,
    exit_after: bool,
    seed: int | None,
    out: TextIO = sys.stdout,
) -> None:
    feed_dir = find_sample_feeds(feeds)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    cfg = demo_config(config, stamp=stamp)
    feed_runner, port = await start_feed_server(feed_dir, seed=seed)
    base = f"http://127.0.0.1:{port}"
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
            f"  traffic      a desk's request mix for {minutes:g} min, then idle until Ctrl-C\n\n"
            f"Watch it:      gextui{'' if sock == config.socket_path else f' --socket {sock}'}\n"
            f"Script it:     gexdaemon status --socket {sock}\n"
            f"               gexdaemon gex SPX --socket {sock}\n"
            f"               curl --unix-socket {sock} http://localhost/v1/queues\n"
            f"Stop:          Ctrl-C (a graceful stop: running jobs finish, nothing accepted is lost)\n\n"
        )
        out.flush()
        rng = random.Random(seed)  # noqa: S311 - demo traffic, not security
        traffic = asyncio.create_task(_traffic(daemon, base, feed_dir, minutes * 60.0, rng))
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
        await feed_runner.cleanup()


async def _traffic(
    daemon: Daemon, base: str, feed_dir: Path, seconds: float, rng: random.Random
) -> dict[str, int]:
    """Submit the desk mix through the daemon's own intake, as the socket API would."""
    started = daemon.mono()
    due = {i: started + rng.uniform(0, m.every_s) for i, m in enumerate(DESK_MIX)}
    next_drop = started + 10.0
    counts = {"submitted": 0, "dropped": 0}
    while daemon.mono() - started < seconds:
        now = daemon.mono()
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
                try:
                    assert daemon.intake is not None
                    subs = daemon.intake.parse(payload)
                    await daemon.intake.submit(subs, origin=Origin.DEMO)
                    counts["submitted"] += 1
                except GexError:
                    return counts  # shutting down
        if now >= next_drop:
            next_drop = now + rng.uniform(20.0, 40.0)
            name = rng.choice(DROP_FILES)
            target = (
                daemon.config.drop_dir / f"{Path(name).stem}_{counts['dropped']}{Path(name).suffix}"
            )
            tmp = target.with_name(f".{target.name}.part")
            await asyncio.to_thread(shutil.copyfile, feed_dir / name, tmp)
            tmp.rename(target)  # the drop folder convention: write aside, then rename
            counts["dropped"] += 1
        await asyncio.sleep(0.1)
    return counts
