"""Crash bench: SIGKILL the daemon under mixed load, hundreds of times, and count what was lost.

Run: python bench/crash.py [--cycles 200] [--seed 8] [--drain-every 25] [--baseline 10] [--keep]
Target (issue #8): 0 lost over at least 200 kills.

Each cycle puts the daemon under mixed load for a random 0.5-3 s (socket submits and
cancels through the client library, request and chain files and junk in the drop folder,
jobs fetching from a local feed server with slow, failing, truncated and dripping URLs),
SIGKILLs it, inspects the database (a copy: the WAL replays as the next start will), the
Parquet lake and the drop folder, and restarts it. What is checked is listed in
tests/reliability/crashlab.py; tests/reliability/test_crash.py runs five cycles in CI.

The baseline, run first in the same process on its own data directory: the same cycles
with a graceful stop (SIGTERM) instead of the kill. Its restart time is what a crash's
restart (lease recovery, WAL replay) is compared with, and it must hold everything too.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import time
from pathlib import Path

from machine import describe, print_findings

from tests.daemon.harness import start_feed_server
from tests.reliability.crashlab import CrashReport, run_crash_cycles, summarize


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="SIGKILLs (default 200)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--drain-every", type=int, default=25, help="let the backlog finish")
    parser.add_argument("--baseline", type=int, default=10, help="graceful-stop cycles first")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    print(describe())
    print(f"crash bench: {args.cycles} SIGKILLs, seed {args.seed}, drain every {args.drain_every}")
    feeds = start_feed_server()
    started = time.monotonic()
    roots: list[Path] = []
    try:
        baseline: CrashReport | None = None
        if args.baseline:
            baseline, d0 = run_crash_cycles(
                args.baseline,
                feeds=feeds,
                seed=args.seed + 1,
                stop_signal=signal.SIGTERM,
            )
            roots.append(d0.root)
            print(f"\nbaseline: {args.baseline} graceful stops (SIGTERM)\n{summarize(baseline)}")

        def progress(cycle: int, report: CrashReport) -> None:
            if cycle % 10 == 0 or cycle == args.cycles:
                print(
                    f"  cycle {cycle:4d}: findings {len(report.findings)}, lost {report.lost}, "
                    f"{time.monotonic() - started:.0f} s",
                    flush=True,
                )

        report, d = run_crash_cycles(
            args.cycles,
            feeds=feeds,
            seed=args.seed,
            drain_every=args.drain_every,
            progress=progress,
        )
        roots.append(d.root)
    finally:
        feeds.stop()
    elapsed = time.monotonic() - started
    print(f"\ncrash: {report.kills} SIGKILLs\n{summarize(report)}")
    if baseline is not None and baseline.restart_s and report.restart_s:
        crash_s, clean_s = median(report.restart_s), median(baseline.restart_s)
        print(
            f"restart to healthy after SIGKILL {crash_s:.2f} s vs after SIGTERM {clean_s:.2f} s "
            f"(ratio {crash_s / clean_s:.2f})"
        )
    print(f"elapsed {elapsed / 60:.1f} min")
    findings = (baseline.findings if baseline else []) + report.findings
    failed = print_findings(findings, 100)
    if args.keep:
        print("data directories kept:", ", ".join(str(r) for r in roots))
    else:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    print(f"LOST {report.lost}" + (f" (baseline {baseline.lost})" if baseline else ""))
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
