"""CPU isolation: how long a CRITICAL job takes while LOW jobs keep the CPU busy with big chains.

Run: python bench/isolation_bench.py [--critical 15] [--low-in-flight 6] [--quick] [--json]

Measures CRITICAL submit-to-COMPLETED time (full SPX CBOE JSON, ~31k contracts: fetch,
parse, GEX, persist) first on an idle daemon, then while LOW jobs on the same big chain keep
every other worker computing. The daemon runs as its own process with the feed server.
Target (issue #14): the busy median within 1.25x the idle one. --quick: 8 jobs each;
--json ends with {"isolation": {"critical_idle_ms", "critical_busy_ms", "critical_slowdown"}}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from machine import describe, report_arguments
from machine import start_daemon as start_bench_daemon

from gexdaemon.client import Client
from tests.daemon.harness import FeedServer, start_feed_server

CONFIG = """
[daemon]
workers = 4
[sources]
max_concurrency = 16
rate_per_s = 500.0
burst = 500
[logging]
level = "warning"
"""


def start(root: Path) -> tuple[subprocess.Popen[bytes], FeedServer, Path]:
    feed = start_feed_server()
    daemon, sock = start_bench_daemon(root, CONFIG, timeout=5)
    return daemon, feed, sock


def critical_latency(c: Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        accepted = c.submit(
            {"source_url": f"{url}_SPX.json", "data_type": "real_time", "market_symbol": "SPX"}
        )
        assert accepted["priority_level"] == "critical"
        done = c.wait(accepted["job_id"], poll_s=0.01)
        assert done["job"]["status"] == "completed", done["job"]
        out.append(time.perf_counter() - started)
    return out


def keep_low_busy(sock: Path, url: str, in_flight: int, stop: threading.Event) -> None:
    c = Client(sock)
    while not stop.is_set():
        queued = c.queues()["levels"][3]
        if queued["depth"] + queued["in_flight"] < in_flight:
            c.submit(
                {"source_url": f"{url}_SPX.json", "data_type": "historical", "market_symbol": "SPX"}
            )
        else:
            time.sleep(0.02)
    c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--critical", type=int, default=15)
    ap.add_argument("--low-in-flight", type=int, default=6)
    args = report_arguments(ap, "8 CRITICAL jobs each")
    if args.quick:
        args.critical = 8
    print(describe())
    root = Path(tempfile.mkdtemp(prefix="gxi-"))
    daemon, feed, sock = start(root)
    url = feed.url
    try:
        c = Client(sock)
        critical_latency(c, url, 2)  # warm up: imports, first file reads
        idle = critical_latency(c, url, args.critical)
        stop = threading.Event()
        loader = threading.Thread(target=keep_low_busy, args=(sock, url, args.low_in_flight, stop))
        loader.start()
        time.sleep(2.0)
        busy = critical_latency(c, url, args.critical)
        stop.set()
        loader.join()
        low_done = c.query(
            "SELECT count(*) FROM processing_jobs WHERE priority_level = 'low' "
            "AND status = 'completed'"
        )["rows"][0][0]
        print(
            f"\nCRITICAL end to end (submit -> COMPLETED, full SPX JSON), {args.critical} jobs each:"
        )
        print(
            f"  idle daemon:         median {statistics.median(idle) * 1000:.0f} ms, "
            f"max {max(idle) * 1000:.0f} ms"
        )
        print(
            f"  beside LOW CPU work: median {statistics.median(busy) * 1000:.0f} ms, "
            f"max {max(busy) * 1000:.0f} ms ({low_done} LOW chains computed meanwhile)"
        )
        print(
            f"  ratio (median busy / idle): {statistics.median(busy) / statistics.median(idle):.2f}x; "
            f"the CRITICAL SLA is 30,000 ms"
        )
        c.close()
        if args.json:
            print(
                json.dumps(
                    {
                        "isolation": {
                            "critical_idle_ms": round(statistics.median(idle) * 1000, 1),
                            "critical_busy_ms": round(statistics.median(busy) * 1000, 1),
                            "critical_slowdown": round(
                                statistics.median(busy) / statistics.median(idle), 3
                            ),
                            "low_completed": low_done,
                        }
                    }
                )
            )
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        feed.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
