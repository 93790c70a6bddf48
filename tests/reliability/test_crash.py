"""SIGKILL under mixed load, a few cycles (bench/crash.py runs hundreds): nothing acknowledged
is lost, nothing is stuck or duplicated, the database and the lake open cleanly."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import FeedServer
from tests.reliability.crashlab import run_crash_cycles, summarize

CYCLES = 5


def test_kills_under_mixed_load_lose_nothing(feeds: FeedServer, tmp_path: Path) -> None:
    report, _ = run_crash_cycles(CYCLES, feeds=feeds, seed=20261126, root=tmp_path)
    listing = "\n".join(str(f) for f in report.findings)
    assert report.findings == [], f"{summarize(report)}\n{listing}"
    assert report.kills == report.cycles == CYCLES
    # The checks had something to check: acknowledged work of both kinds, leases held at a
    # kill and reaped afterwards, snapshots in the lake, files through the drop folder.
    assert report.acked_requests > CYCLES and report.acked_by_receipt > 0
    assert report.leases_verified >= 1
    assert report.snapshots > 0 and report.lake_files_verified > 0
    assert report.drop_files > 0
    assert sum(report.jobs_by_status.values()) == report.acked_requests
