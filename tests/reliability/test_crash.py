"""SIGKILL under mixed load, a few cycles (bench/crash.py runs hundreds): nothing acknowledged
is lost, nothing is stuck or duplicated, the database and the lake open cleanly."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import FeedServer, make_daemon, wait_until
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


def test_a_cancel_takes_effect_while_a_dead_instance_holds_the_lease(
    feeds: FeedServer, tmp_path: Path
) -> None:
    """Found by the crash bench: after a restart, cancelling a job still leased by the
    killed instance answered 200 and changed nothing; the job later ran to completion."""
    d = make_daemon("[daemon]\nlease_s = 30.0\nheartbeat_s = 1.0\n", root=tmp_path).start()
    c = d.client()
    job_id = c.submit(
        {
            "source_url": f"{feeds.url}SPY.json?delay=5",
            "data_type": "historical",
            "market_symbol": "SPY",
        }
    )["job_id"]
    wait_until(lambda: c.job(job_id)["job"]["status"] == "processing", what="the job to start")
    d.kill()
    d.start()
    try:
        c = d.client()
        assert c.job(job_id)["job"]["status"] == "processing"  # the dead instance's lease runs on
        assert c.cancel(job_id)["status"] == "cancelled"
        found = c.job(job_id)
        assert found["job"]["status"] == "cancelled"
        assert found["history"][-1]["from_status"] == "processing"
    finally:
        assert d.stop() == 0
