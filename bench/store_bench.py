"""Store benchmark: durable job transitions/s through group commit vs one transaction per change,
and strike rows/s appended from Arrow.

Run: python bench/store_bench.py [--transitions 60000] [--concurrency 64]
Targets (issue #2): >= 20,000 durable transitions/s, >= 15x the autocommit path;
>= 2,000,000 strike rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from machine import describe, report_arguments

from gexdaemon.core.models import (
    GEX_STRIKE_COUNTS,
    GEX_STRIKE_FIELDS,
    DomainContext,
    JobStatus,
    ProcessingJob,
)
from gexdaemon.daemon.app import SWITCH_INTERVAL_S
from gexdaemon.storage import rows
from gexdaemon.storage.store import PutJob, PutRequest, PutSnapshot, Store
from tests.storage.seeding import queued_job, store_options

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
CTX = DomainContext(now=datetime(2030, 1, 1, tzinfo=UTC))


def open_store(root: Path, **kw: object) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    return Store.open(store_options(root, **kw))


def make_jobs(store: Store, n: int) -> list[ProcessingJob]:
    jobs: list[ProcessingJob] = []
    changes: list[object] = []
    for i in range(n):
        req, job, ev = queued_job(f"http://127.0.0.1:8000/f/{i}.json", T0, context=CTX)
        jobs.append(job)
        changes += [PutRequest(req), PutJob(job, ev)]
    for i in range(0, len(changes), 20_000):
        store.commit_sync(changes[i : i + 20_000])  # type: ignore[arg-type]
    return jobs


async def drive(
    store: Store, jobs: list[ProcessingJob], concurrency: int
) -> tuple[int, float, list[float]]:
    """Each worker walks its jobs QUEUED -> PROCESSING -> COMPLETED, awaiting every commit."""
    latencies: list[float] = []
    transitions = 0

    async def worker(mine: list[ProcessingJob]) -> None:
        nonlocal transitions
        for first in mine:
            t, current = T0, first
            for target in (JobStatus.PROCESSING, JobStatus.COMPLETED):
                t += timedelta(seconds=1)
                before = current
                current, ev = current.transition(target, t, context=CTX)
                started = time.perf_counter()
                await store.commit([PutJob(current, ev, previous=before)])
                latencies.append(time.perf_counter() - started)
                transitions += 1

    chunks = [jobs[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in chunks))
    return transitions, time.perf_counter() - started, latencies


async def drive_prepared(
    store: Store, jobs: list[ProcessingJob], concurrency: int
) -> tuple[int, float, list[float]]:
    """The same transitions built beforehand: what the store alone sustains."""
    steps: list[list[PutJob]] = [[] for _ in range(concurrency)]
    for i, first in enumerate(jobs):
        t, current = T0, first
        for target in (JobStatus.PROCESSING, JobStatus.COMPLETED):
            t += timedelta(seconds=1)
            before = current
            current, ev = current.transition(target, t, context=CTX)
            steps[i % concurrency].append(PutJob(current, ev, previous=before))
    latencies: list[float] = []

    async def worker(mine: list[PutJob]) -> None:
        for change in mine:
            started = time.perf_counter()
            await store.commit([change])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in steps))
    return len(jobs) * 2, time.perf_counter() - started, latencies


def bench_transitions(
    root: Path, n_jobs: int, concurrency: int, *, prepared: bool = False, **opts: object
) -> tuple[float, float, float, Store]:
    store = open_store(root, **opts)
    jobs = make_jobs(store, n_jobs)
    store.run_exclusive(lambda con: con.execute("CHECKPOINT")).result()
    before = store.stats.commits
    run = drive_prepared if prepared else drive
    transitions, elapsed, lat = asyncio.run(run(store, jobs, concurrency))
    commits = store.stats.commits - before
    store.close()
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[int(len(lat) * 0.99)] * 1000
    rate = transitions / elapsed
    print(
        f"    {transitions} transitions in {elapsed:.2f} s over {commits} commits: {rate:,.0f}/s, "
        f"latency p50 {p50:.2f} ms p99 {p99:.2f} ms"
    )
    return rate, p50, p99, store


def strike_table(snapshot_id: str, n: int, day: date) -> pa.Table:
    """Random strike rows in the gex_strikes shape (counts as integers, the rest as floats)."""
    rng = np.random.default_rng(1)
    cols: dict[str, object] = {
        "snapshot_id": pa.array([snapshot_id] * n, pa.string()),
        "snapshot_date": pa.array([day] * n, pa.date32()),
    }
    for name in GEX_STRIKE_FIELDS:
        if name == "strike_price":
            cols[name] = pa.array(np.arange(n, dtype=np.float64) * 5 + 1000)
        elif name in GEX_STRIKE_COUNTS:
            cols[name] = pa.array(rng.integers(0, 50_000, n))
        else:
            cols[name] = pa.array(rng.standard_normal(n))
    return pa.table(cols)


def snapshot_head(snapshot_id: str, day: date) -> dict[str, object]:
    return {
        "snapshot_id": snapshot_id,
        "job_id": str(uuid.uuid4()),
        "market_symbol": "SPX",
        "snapshot_date": day,
        "snapshot_time": datetime(2026, 1, 1, 10, 0).time(),
        "total_open_interest": 1,
        "total_volume": 1,
        "processed_at": T0,
        "data_quality_score": 1.0,
        "snapshot_at": T0,
        "spot_price": 4500.0,
        "gex_unit": "usd_per_1pct",
        "sign_model": "dealer_long_calls_short_puts",
        "gamma_source": "model",
        "expiry_filter": "all",
        "total_gex": 0.0,
        "zero_gamma": None,
        "zero_gamma_crossings": [],
        "call_wall": None,
        "put_wall": None,
        "abs_gamma_strike": None,
        "lake_path": None,
        "source_format": "bench",
        "rows_read": 1,
        "excluded_rows": "{}",
    }


def bench_strikes(root: Path) -> list[tuple[str, float]]:
    store = open_store(root)
    day = date(2026, 11, 26)
    results = []
    expected = 0
    for label, per_snapshot, count in (
        ("1 x 1,000,000-row snapshot", 1_000_000, 1),
        ("40 x 50,000-row snapshots", 50_000, 40),
        ("200 x 5,000-row snapshots", 5_000, 200),
    ):
        tables = [(str(uuid.uuid4()), strike_table("x", per_snapshot, day)) for _ in range(count)]
        prepared = [
            (sid, t.set_column(0, "snapshot_id", pa.array([sid] * t.num_rows))) for sid, t in tables
        ]
        started = time.perf_counter()
        for i in range(0, len(prepared), 20):
            store.commit_sync(
                [PutSnapshot(snapshot_head(sid, day), t) for sid, t in prepared[i : i + 20]]
            )
        elapsed = time.perf_counter() - started
        total = per_snapshot * count
        expected += total
        rate = total / elapsed
        print(f"    {label}: {total:,} rows in {elapsed:.3f} s = {rate:,.0f} rows/s")
        results.append((label, rate))
    n = store.fetch_sync(f"SELECT count(*) AS n FROM {rows.STRIKES.name}")[0]["n"]
    assert n == expected, (n, expected)
    store.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--transitions", type=int, default=60_000, help="group-commit transitions (2 per job)"
    )
    ap.add_argument("--autocommit-transitions", type=int, default=1_000)
    ap.add_argument(
        "--concurrency",
        type=int,
        default=512,
        help="coroutines changing jobs at once (a daemon under a burst of work)",
    )
    ap.add_argument("--window-ms", type=float, default=1.0)
    args = report_arguments(ap, "20,000 transitions")
    if args.quick:
        args.transitions = 20_000
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the daemon runs
    print(describe())
    print(f"store_bench: concurrency {args.concurrency}, group-commit window {args.window_ms} ms\n")
    root = Path(tempfile.mkdtemp(prefix="gexd-store-bench-"))
    try:
        print(
            "durable job transitions, group commit, each built as the daemon does (model + commit):"
        )
        group, _, gp99, _ = bench_transitions(
            root / "group", args.transitions // 2, args.concurrency, window_ms=args.window_ms
        )
        print("durable job transitions, group commit, built beforehand (the store alone):")
        alone, _, sp99, _ = bench_transitions(
            root / "alone",
            args.transitions // 2,
            args.concurrency,
            prepared=True,
            window_ms=args.window_ms,
        )
        print("durable job transitions, one autocommit transaction per change (baseline):")
        auto, _, ap99, _ = bench_transitions(
            root / "auto",
            args.autocommit_transitions // 2,
            args.concurrency,
            prepared=True,
            window_ms=0.0,
            max_changes=1,
        )
        print("strike rows appended from Arrow:")
        strikes = bench_strikes(root / "strikes")
        best_strikes = max(r for _, r in strikes)
        print("\nsummary")
        print(
            f"  group commit, daemon path  {group:>10,.0f} transitions/s  p99 {gp99:.1f} ms  (target >= 20,000)"
        )
        print(f"  group commit, store alone  {alone:>10,.0f} transitions/s  p99 {sp99:.1f} ms")
        print(f"  autocommit (baseline)      {auto:>10,.0f} transitions/s  p99 {ap99:.1f} ms")
        print(
            f"  ratio, daemon path / baseline {group / auto:>7.1f}x  (target >= 15x); store alone "
            f"{alone / auto:.1f}x"
        )
        print(
            f"  strike rows                {best_strikes:>10,.0f} rows/s  (target >= 2,000,000; best of "
            f"{len(strikes)} shapes, median {statistics.median(r for _, r in strikes):,.0f})"
        )
        if args.json:
            print(
                json.dumps(
                    {
                        "store": {
                            "daemon_path_transitions_per_s": round(group),
                            "store_alone_transitions_per_s": round(alone),
                            "autocommit_transitions_per_s": round(auto),
                            "strike_rows_per_s": round(best_strikes),
                        }
                    }
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
