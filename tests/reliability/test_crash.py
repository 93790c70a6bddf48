"""SIGKILL under mixed load, a few cycles (bench/crash.py runs hundreds): nothing acknowledged
is lost, nothing is stuck or duplicated, the database and the lake open cleanly."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.daemon.harness import SAMPLE_FEEDS, FeedServer, make_daemon, wait_until
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
    # A request committed as the kill landed has a job but no 201: more jobs, never fewer.
    assert sum(report.jobs_by_status.values()) >= report.acked_requests


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


def test_the_drop_folder_finishes_what_a_crash_interrupted(
    feeds: FeedServer, tmp_path: Path
) -> None:
    """Found by the crash bench: a chain file killed between its move to processed/ and
    its receipt stayed there without one for ever (and, killed before its commit, was
    never queued). Each half-done state a kill can leave, set up by hand while the daemon
    is down, is finished at the next start, and nothing is submitted twice."""
    d = make_daemon(root=tmp_path).start()
    c = d.client()
    tag = {"open_interest": 1, "volume": 2}
    request_file = json.dumps(
        {
            "source_url": f"{feeds.url}SPY.json",
            "data_type": "snapshot",
            "market_symbol": "SPY",
            "metadata": tag,
        }
    ).encode()
    (d.drop / "desk.json").write_bytes(request_file)
    shutil.copyfile(SAMPLE_FEEDS / "SPX_strikes.csv", d.drop / "SPX_queued.csv")
    day = wait_until(
        lambda: next((d.drop / "processed").glob("*/SPX_queued.csv.receipt.json"), None)
    )
    day = day.parent
    wait_until((day / "desk.json.receipt.json").exists)
    queued_job = json.loads((day / "SPX_queued.csv.receipt.json").read_bytes())["requests"][0]
    assert d.stop() == 0
    # 1. killed after the chain's commit, before its receipt
    (day / "SPX_queued.csv.receipt.json").unlink()
    (day / ".SPX_queued.csv.receipt.json.1234.tmp").write_bytes(b"{")
    # 2. killed after a chain's move, before its commit: in processed/, never queued
    shutil.copyfile(SAMPLE_FEEDS / "SPX_strikes.csv", day / "SPX_moved.csv")
    # 3. killed after a request file's receipt, before its move
    os.replace(day / "desk.json", d.drop / "desk.json")
    # 4. killed after a rejection's move, before its report
    (d.drop / "rejected" / "junk.csv").write_bytes(bytes(range(256)))
    d.start()
    try:
        c = d.client()
        wait_until((day / "SPX_queued.csv.receipt.json").exists, what="receipt 1")
        again = json.loads((day / "SPX_queued.csv.receipt.json").read_bytes())
        assert [r["job_id"] for r in again["requests"]] == [queued_job["job_id"]]
        assert not list(day.glob(".*.tmp"))
        moved = json.loads(
            wait_until(
                lambda: (
                    (day / "SPX_moved.csv.receipt.json").exists()
                    and (day / "SPX_moved.csv.receipt.json").read_bytes()
                ),
                what="receipt 2",
            )
        )
        assert d.wait_job(moved["requests"][0]["job_id"])["job"]["status"] == "completed"
        wait_until((day / "desk.json").exists, what="the request file's move")
        assert not (d.drop / "desk.json").exists()
        count = c.query(
            "SELECT count(*) FROM priority_requests WHERE market_symbol = 'SPY' "
            "AND json_extract(metadata, '$.open_interest') = 1"
        )["rows"][0][0]
        assert count == 1  # accepted once, not again at the restart
        report_path = d.drop / "rejected" / "junk.csv.error.json"
        wait_until(report_path.exists, what="the rejected file's report")
        assert json.loads(report_path.read_bytes())["error"]["code"]
    finally:
        assert d.stop() == 0
