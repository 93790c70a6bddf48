"""Live proof of the scheduler in the daemon: CRITICAL meets its deadline under a flood, LOW progresses."""

from __future__ import annotations

import pytest

from tests.daemon.harness import FeedServer, make_daemon, wait_until


@pytest.mark.slow
def test_critical_deadlines_hold_under_a_low_and_medium_flood(feeds: FeedServer) -> None:
    d = make_daemon(
        "[daemon]\nworkers = 3\n[sources]\nmax_concurrency = 8\nrate_per_s = 200.0\nburst = 200\n"
    ).start()
    try:
        c = d.client()
        slow = f"{feeds.url}SPX_strikes.csv?delay=0.4"
        flood = [
            c.submit({"source_url": slow, "data_type": "historical", "market_symbol": "SPX"})
            for _ in range(24)
        ]
        flood += [
            c.submit({"source_url": slow, "data_type": "snapshot", "market_symbol": "SPX"})
            for _ in range(12)
        ]
        assert {a["priority_level"] for a in flood} == {"low", "medium"}
        critical = []
        for _ in range(5):
            critical.append(
                c.submit(
                    {
                        "source_url": f"{feeds.url}_SPX.json?delay=0.1",
                        "data_type": "real_time",
                        "market_symbol": "SPX",
                    }
                )
            )
            wait_until(
                lambda: c.job(critical[-1]["job_id"])["job"]["status"] == "completed",
                timeout=30,
                what="the CRITICAL job to finish",
            )
        for a in critical:
            assert a["priority_level"] == "critical"
            job = c.job(a["job_id"])["job"]
            assert job["status"] == "completed" and job["sla_status"] == "met", job
            waited = (job.started_at - job.queued_at).total_seconds()
            assert waited < 5.0, f"a CRITICAL job waited {waited:.1f} s behind the flood"
        finished = {a["job_id"]: d.wait_job(a["job_id"], timeout=120)["job"] for a in flood}
        assert all(j["status"] == "completed" for j in finished.values())
        # LOW was not starved: some LOW jobs finished before the last MEDIUM one did.
        medium_done = max(
            j.completed_at for j in finished.values() if j["priority_level"] == "medium"
        )
        low_before = [
            j
            for j in finished.values()
            if j["priority_level"] == "low" and j.completed_at < medium_done
        ]
        assert low_before, "LOW made no progress while MEDIUM had a backlog"
        phases = {c.job(a["job_id"])["job"]["dispatch_phase"] for a in critical}
        assert phases <= {"critical", "critical_late"}
    finally:
        assert d.stop() == 0
