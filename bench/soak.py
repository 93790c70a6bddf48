"""Soak bench: minutes of steady mixed load on one daemon; memory, descriptors and throughput
must stay flat.

Run: python bench/soak.py [--minutes 10] [--rate 3] [--files-per-s 1] [--sample-s 5]

The load (tests/reliability/crashlab.py MixedLoad): socket submits (single and batches,
some cancels) and drop-folder files (request files, chain files, junk), fetching from a
local feed server with slow, failing, truncated and dripping URLs, at a pace below what
the daemon can do, so every minute's completions should match its submissions.

Sampled from /proc every --sample-s seconds: the daemon's RSS (VmRSS), its open file
descriptors, the RSS of its compute processes, and its queue. Per minute: requests
submitted and jobs finished. The baseline, in the same run, is the first full minute:
the last minute's RSS, descriptors and throughput are given as ratios to it. At the end
the load stops, the backlog drains, and the crash lab's checks run on the stopped daemon
(nothing acknowledged lost, no job stuck, no snapshot duplicated, the lake reads back).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from machine import describe, print_findings

from gexdaemon.client import Client
from tests.daemon.harness import make_daemon, start_feed_server
from tests.reliability.crashlab import (
    Finding,
    Ledger,
    MixedLoad,
    descendants,
    drain,
    inspect_down,
)

# The daemon's own defaults for workers and leases (the test harness shortens them).
# About 14% of the load goes to a source that never answers well (503, 404, cut bodies),
# so its breaker stays open and its jobs go one probe per cool-down. At 2 s that is 30
# attempts a minute, below the ~130 a minute that source's jobs need (each takes up to 4):
# its queue grew by ~25 jobs a minute, by design of the load, not of the daemon. A
# 0.25 s cool-down keeps the load within what the daemon can do, as the bench intends.
SOAK_CONFIG = """
[daemon]
workers = 4
lease_s = 30.0
heartbeat_s = 5.0

[sources]
breaker_failures = 5
breaker_cooldown_s = 0.25
"""


@dataclass
class Sample:
    at_s: float
    rss_kib: int
    fds: int
    children_rss_kib: int
    queued: int
    in_flight: int
    duckdb_kib: int = 0  # DuckDB's own buffers (duckdb_memory()), part of the RSS


def duckdb_kib(c: Client) -> int:
    rows = c.query("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")["rows"]
    return int(rows[0][0] or 0) // 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def children_rss_kib(pid: int) -> int:
    total = 0
    for child in descendants(pid):
        try:
            total += rss_kib(child)
        except OSError:
            continue  # ended between the listing and the read
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=3.0, help="socket submits per second")
    parser.add_argument("--files-per-s", type=float, default=1.0, help="drop files per second")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--recent-jobs",
        type=int,
        default=None,
        help="[daemon] recent_jobs (finished jobs kept in memory; default: the daemon's 2000, "
        "which fill in about 8 minutes of this load, so a smaller value shows the RSS after "
        "that warm-up)",
    )
    args = parser.parse_args()
    print(describe())
    print(f"soak: {args.minutes:g} min, {args.rate:g} submits/s, {args.files_per_s:g} drop files/s")
    feeds = start_feed_server()
    config = SOAK_CONFIG
    if args.recent_jobs is not None:
        config = config.replace("[daemon]\n", f"[daemon]\nrecent_jobs = {args.recent_jobs}\n", 1)
    d = make_daemon(config).start()
    assert d.proc is not None
    pid = d.proc.pid
    c = d.client(timeout=30)
    ledger = Ledger()
    findings: list[Finding] = []
    samples: list[Sample] = []
    started = time.monotonic()
    load = MixedLoad(
        d,
        feeds,
        ledger,
        0,
        random.Random(args.seed),
        api_pause_s=(0.5 / args.rate, 1.5 / args.rate),
        drop_pause_s=(0.5 / args.files_per_s, 1.5 / args.files_per_s),
    ).start()
    wall_start = time.time()
    total_s = args.minutes * 60
    try:
        next_minute, minute = 60.0, 0
        while time.monotonic() - started < total_s:
            time.sleep(args.sample_s)
            health = c.health()
            s = Sample(
                time.monotonic() - started,
                rss_kib(pid),
                open_fds(pid),
                children_rss_kib(pid),
                health["queued"],
                health["in_flight"],
                duckdb_kib(c),
            )
            samples.append(s)
            if s.at_s >= next_minute:
                print(
                    f"  minute {minute:3d}: rss {s.rss_kib / 1024:6.1f} MiB, fds {s.fds:4d}, "
                    f"duckdb {s.duckdb_kib / 1024:6.1f} MiB, compute rss {s.children_rss_kib / 1024:6.1f} MiB, "
                    f"queued {s.queued:4d}, "
                    f"in flight {s.in_flight}",
                    flush=True,
                )
                minute, next_minute = minute + 1, next_minute + 60.0
    finally:
        load.stop()
    # Per minute of the run, from the record: requests by requested_at, jobs by completed_at.
    submitted_by_minute: Counter[int] = Counter()
    for (at,) in c.query("SELECT epoch(requested_at) FROM priority_requests", limit=100_000)[
        "rows"
    ]:
        submitted_by_minute[int((at - wall_start) // 60)] += 1
    done_by_minute: dict[int, Counter[str]] = {}
    for at, status in c.query(
        "SELECT epoch(completed_at), status FROM processing_jobs WHERE completed_at IS NOT NULL",
        limit=100_000,
    )["rows"]:
        done_by_minute.setdefault(int((at - wall_start) // 60), Counter())[status] += 1
    end_sample = samples[-1]
    jobs = drain(d, ledger, 0, findings, timeout=300)
    after_drain = Sample(
        time.monotonic() - started,
        rss_kib(pid),
        open_fds(pid),
        children_rss_kib(pid),
        0,
        0,
        duckdb_kib(c),
    )
    code = d.stop()
    if code != 0:
        findings.append(Finding(0, "crash", f"graceful stop exited {code}"))
    inspect_down(d, ledger, 0, findings)
    feeds.stop()
    shutil.rmtree(d.root, ignore_errors=True)

    full_minutes = int(args.minutes)
    print(f"\n{'minute':>6} {'submitted':>9} {'completed':>9} {'failed':>6} {'cancelled':>9}")
    for m in range(full_minutes):
        done = done_by_minute.get(m, Counter())
        print(
            f"{m:6d} {submitted_by_minute.get(m, 0):9d} {done['completed']:9d} "
            f"{done['failed']:6d} {done['cancelled']:9d}"
        )
    first = [s for s in samples if 60 <= s.at_s < 120] or samples[:1]
    last = [s for s in samples if s.at_s >= (args.minutes - 1) * 60] or samples[-1:]

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else float("nan")

    rss_first, rss_last = mean([s.rss_kib for s in first]), mean([s.rss_kib for s in last])
    fds_first, fds_last = mean([s.fds for s in first]), mean([s.fds for s in last])
    tput = [done_by_minute.get(m, Counter())["completed"] for m in range(full_minutes)]
    print(
        f"\nRSS: at start {samples[0].rss_kib / 1024:.1f} MiB, minute 1 {rss_first / 1024:.1f} MiB, "
        f"last minute {rss_last / 1024:.1f} MiB (ratio {rss_last / rss_first:.2f}), "
        f"after the drain {after_drain.rss_kib / 1024:.1f} MiB"
    )
    db_first, db_last = mean([s.duckdb_kib for s in first]), mean([s.duckdb_kib for s in last])
    print(
        f"  of which DuckDB's buffers: minute 1 {db_first / 1024:.1f} MiB, last minute "
        f"{db_last / 1024:.1f} MiB; the rest: minute 1 {(rss_first - db_first) / 1024:.1f} MiB, "
        f"last minute {(rss_last - db_last) / 1024:.1f} MiB "
        f"(ratio {(rss_last - db_last) / max(1.0, rss_first - db_first):.2f})"
    )
    print(
        f"open files: at start {samples[0].fds}, minute 1 {fds_first:.0f}, last minute "
        f"{fds_last:.0f}, after the drain {after_drain.fds}"
    )
    print(
        f"compute processes RSS: minute 1 {mean([s.children_rss_kib for s in first]) / 1024:.1f} MiB, "
        f"last minute {mean([s.children_rss_kib for s in last]) / 1024:.1f} MiB"
    )
    if len(tput) >= 3:
        steady = tput[1:-1] or tput
        print(
            f"completions per minute: {tput}; minute 1 {tput[1] if len(tput) > 1 else tput[0]}, "
            f"last {tput[-1]} (ratio {tput[-1] / max(1, tput[1]):.2f}); "
            f"steady-state mean {statistics.fmean(steady):.0f}, min {min(steady)}, max {max(steady)}"
        )
    print(
        f"queue at the end of the load: {end_sample.queued} queued, {end_sample.in_flight} in flight; "
        f"jobs after the drain: {dict(jobs)}; acknowledged {len(ledger.acked)}; "
        f"findings {len(findings)}; lost {sum(1 for f in findings if f.kind == 'lost')}"
    )
    return print_findings(findings, 30)


if __name__ == "__main__":
    raise SystemExit(main())
