"""API benchmark: durable submits over the Unix socket, batches, drop-file to QUEUED latency,
and an in-process SQLite task queue (huey's SqliteHuey enqueue) as the comparison line.

Run: python bench/api_bench.py [--single 6000] [--concurrency 16] [--batches 40] [--batch-size 1000]
     [--quick] [--json]
Targets (issue #6): >= 3,000 single durable submits/s with p99 <= 25 ms; >= 50,000 requests/s
in batches; drop to QUEUED p50 <= 100 ms.

The daemon runs as its own process (as in production); its one source is disabled before
the measurement, so the jobs queue up and the figures are intake alone, not intake competing
with ingest work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from machine import describe, report_arguments
from machine import start_daemon as start_bench_daemon

from gexdaemon.client import AsyncClient, Client

REPO = Path(__file__).resolve().parent.parent
SOURCE = "http://127.0.0.1:9/bench/_SPX.json"  # never fetched: the source is disabled

CONFIG = """
[daemon]
workers = 4
[api]
max_batch = 10000
max_body_bytes = 67108864
[drop]
settle_ms = 100
[logging]
level = "warning"
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    proc, sock = start_bench_daemon(root, CONFIG, timeout=5)
    client = Client(sock, timeout=5)
    client.submit({"source_url": SOURCE, "data_type": "historical", "market_symbol": "SPX"})
    client.set_source_active("127.0.0.1:9", False)
    client.close()
    return proc, sock, root / "var" / "drop"


def body(i: int) -> dict[str, object]:
    return {
        "source_url": f"{SOURCE}?i={i}",
        "data_type": "snapshot",
        "market_symbol": "SPX",
        "metadata": {"open_interest": 1000 + i, "volume": i % 7000},
    }


async def timed_clients(
    clients: list[AsyncClient], worker: Callable[[AsyncClient], Awaitable[None]]
) -> float:
    """Seconds for `worker` to run on every client at once; connections open before the clock."""
    for c in clients:
        await c.health()
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.close()
    return elapsed


async def single_submits(sock: Path, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client: AsyncClient) -> None:
        for i in counter:
            started = time.perf_counter()
            await client.submit(body(i))
            latencies.append(time.perf_counter() - started)

    elapsed = await timed_clients([AsyncClient(sock) for _ in range(concurrency)], worker)
    return total / elapsed, latencies


async def batch_submits(
    sock: Path, batches: int, size: int, concurrency: int
) -> tuple[float, list[float]]:
    payloads = [[body(b * size + i) for i in range(size)] for b in range(batches)]
    latencies: list[float] = []
    queue = iter(payloads)

    async def worker(client: AsyncClient) -> None:
        for batch in queue:
            started = time.perf_counter()
            result = await client.submit(batch)
            assert result["accepted"] == len(batch)
            latencies.append(time.perf_counter() - started)

    clients = [AsyncClient(sock, timeout=300) for _ in range(concurrency)]
    elapsed = await timed_clients(clients, worker)
    return batches * size / elapsed, latencies


async def drop_latency(sock: Path, drop: Path, files: int) -> list[float]:
    """Seconds from a request file's rename into the drop folder to its job.queued event."""
    latencies: list[float] = []
    async with AsyncClient(sock) as client:
        stream = client.events()
        await anext(stream)  # the state snapshot
        for i in range(files):
            url = f"{SOURCE}?drop={i}"
            tmp = drop / f".req{i}.json.part"
            tmp.write_text(
                json.dumps({"source_url": url, "data_type": "snapshot", "market_symbol": "SPX"})
            )
            started = time.perf_counter()
            tmp.rename(drop / f"req{i}.json")
            async with asyncio.timeout(30):
                async for event in stream:
                    if event.get("type") == "job.queued" and event["data"].get("source_url") == url:
                        latencies.append(time.perf_counter() - started)
                        break
            await asyncio.sleep(0.02)
        await stream.aclose()
    return latencies


def huey_baseline(root: Path, total: int, *, fsync: bool = True) -> float:
    """SqliteHuey enqueues in this process. With fsync (synchronous=FULL) each enqueue is
    durable as our submits are: the comparison line. Without (huey's default,
    synchronous=OFF) an enqueue can vanish with the machine; printed for reference."""
    from huey import SqliteHuey

    huey = SqliteHuey(filename=str(root / f"huey-{int(fsync)}.db"), fsync=fsync)

    @huey.task()
    def ingest(url: str) -> str:
        return url

    started = time.perf_counter()
    for i in range(total):
        ingest(f"{SOURCE}?i={i}")
    return total / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--drops", type=int, default=100)
    args = report_arguments(ap, "3,000 singles, 20 batches, 50 drops")
    if args.quick:
        args.single, args.batches, args.drops = 3000, 20, 50
    print(describe())
    root = Path(tempfile.mkdtemp(prefix="gxb-"))
    proc, sock, drop = start_daemon(root)
    try:
        print(f"\napi_bench: daemon pid {proc.pid}, socket {sock}")
        single_rate, single_lat = asyncio.run(single_submits(sock, args.single, args.concurrency))
        print(
            f"single submits, concurrency {args.concurrency}: {args.single} in "
            f"{args.single / single_rate:.2f} s = {single_rate:,.0f}/s; latency p50 "
            f"{pct(single_lat, 0.5) * 1000:.1f} ms, p99 {pct(single_lat, 0.99) * 1000:.1f} ms"
        )
        batch_rate, batch_lat = asyncio.run(batch_submits(sock, args.batches, args.batch_size, 4))
        print(
            f"batch submits ({args.batches} x {args.batch_size}, 4 clients): {batch_rate:,.0f} requests/s; "
            f"batch latency p50 {pct(batch_lat, 0.5) * 1000:.0f} ms"
        )
        drop_lat = asyncio.run(drop_latency(sock, drop, args.drops))
        print(
            f"drop file -> QUEUED over {len(drop_lat)} files: p50 {pct(drop_lat, 0.5) * 1000:.1f} ms, "
            f"p99 {pct(drop_lat, 0.99) * 1000:.1f} ms"
        )
        huey_rate = huey_baseline(root, 5000)
        huey_volatile = huey_baseline(root, 5000, fsync=False)
        print(
            f"huey SqliteHuey enqueue (in-process, no HTTP): {huey_rate:,.0f}/s with fsync; "
            f"{huey_volatile:,.0f}/s without (its default; not durable)"
        )
        print("\nsummary")
        print(
            f"  single durable submits  {single_rate:>10,.0f}/s  p99 {pct(single_lat, 0.99) * 1000:.1f} ms"
            f"   (targets >= 3,000/s, p99 <= 25 ms)"
        )
        print(f"  batch submits           {batch_rate:>10,.0f}/s   (target >= 50,000/s)")
        print(
            f"  drop -> QUEUED          p50 {pct(drop_lat, 0.5) * 1000:.1f} ms  p99 "
            f"{pct(drop_lat, 0.99) * 1000:.1f} ms   (target p50 <= 100 ms)"
        )
        print(
            f"  huey SqliteHuey         {huey_rate:>10,.0f}/s   single submits / huey = "
            f"{single_rate / huey_rate:.2f}x, batches / huey = {batch_rate / huey_rate:.1f}x"
        )
        print(f"  (median single latency {statistics.median(single_lat) * 1000:.2f} ms)")
        if args.json:
            print(
                json.dumps(
                    {
                        "intake": {
                            "single_per_s": round(single_rate),
                            "single_p99_ms": round(pct(single_lat, 0.99) * 1000, 2),
                            "single_p50_ms": round(pct(single_lat, 0.5) * 1000, 2),
                            "batch_per_s": round(batch_rate),
                            "huey_per_s": round(huey_rate),
                            "huey_no_fsync_per_s": round(huey_volatile),
                            "drop_to_queued_p50_ms": round(pct(drop_lat, 0.5) * 1000, 1),
                        }
                    }
                )
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
