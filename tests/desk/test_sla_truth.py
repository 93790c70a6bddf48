"""SLA truth on a live daemon: at risk before the deadline, bumps, open breakers, reliability,
and SLA figures that agree everywhere and survive a restart."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from gexdaemon.client import Client
from tests.daemon.harness import FeedServer, RunningDaemon, running_daemon, wait_until


def spx(url: str, **meta: Any) -> dict[str, Any]:
    """A real-time SPX request: the seed rules make it CRITICAL."""
    return {"source_url": url, "data_type": "real_time", "market_symbol": "SPX", "metadata": meta}


def history_reasons(c: Client, job_id: str) -> list[str]:
    return [e.reason for e in c.job(job_id).history]


def test_a_critical_surge_is_flagged_at_risk_well_before_its_deadlines(feeds: FeedServer) -> None:
    """Item 2: a CRITICAL job that cannot make its 30 s is flagged the moment the forecast
    says so, with the reason in words, not when its deadline has passed."""
    config = "[daemon]\nworkers = 2\n[sources]\nmax_concurrency = 1\n"
    slow = f"{feeds.url}_SPX.json?delay=4"
    with running_daemon(config) as d:
        c = d.client()
        warm = c.submit(spx(slow))  # the source's pace is learned from one job
        d.wait_job(warm.job_id)
        surge = c.submit([spx(slow, n=i) for i in range(20)])  # 10 waves of 2 x 4 s: 40 s
        submitted = time.monotonic()
        flagged: dict[str, float] = {}

        def all_finished() -> bool:
            for job in c.jobs(limit=40).jobs:
                if job.at_risk and job.job_id not in flagged:
                    flagged[job.job_id] = time.monotonic() - submitted
            # Every job of the surge, not the last submitted: jobs that turn hopeless step
            # aside, so submission order is not the order they finish in.
            return all(c.job(a.job_id).job.status.value == "completed" for a in surge.requests)

        wait_until(all_finished, timeout=240, every=0.5, what="the surge to finish")
        finals = {a.job_id: c.job(a.job_id) for a in surge.requests}
        missed = [j for j, f in finals.items() if f.job.sla_status.value == "breached"]
        assert missed, "the surge was meant to miss: 40 s of work for a 30 s deadline"
        early = [j for j in missed if flagged.get(j, 99.0) <= 30.0 - 10.0]
        assert len(early) / len(missed) >= 0.9, (missed, flagged)
        reason = next(
            f.live.at_risk_reason for f in finals.values() if f.live and f.live.at_risk_reason
        )
        assert reason is not None
        assert any(w in reason for w in ("at once", "behind", "every worker is busy")), reason


def test_a_bump_runs_its_deadline_from_the_bump_and_is_in_the_history(feeds: FeedServer) -> None:
    """Item 3: `bump ID critical` on a job queued a while gets CRITICAL's 30 s from the bump
    (not from its request, which would breach at once), says who bumped it, and keeps the
    longer fetch timeout of the level it was submitted at for its slow source."""
    config = "[daemon]\nworkers = 1\n"
    with running_daemon(config) as d:
        c = d.client()
        blocker = c.submit(
            {
                "source_url": f"{feeds.url}SPX_strikes.csv?delay=8",
                "data_type": "historical",
                "market_symbol": "SPX",
            }
        )
        queued = c.submit(  # a routine snapshot: MEDIUM; its source answers in 12 s
            {
                "source_url": f"{feeds.url}_SPX.json?delay=12",
                "data_type": "snapshot",
                "market_symbol": "SPX",
            }
        )
        assert queued.priority_level.value == "medium"
        time.sleep(4.0)  # queued for a while behind the one worker
        short = queued.job_id.replace("-", "")[-8:]
        bumped_at = datetime.now().astimezone()
        out = d.cli("bump", short, "critical", check=True)
        assert "CRITICAL" in out.stdout and "ET" in out.stdout
        found = c.job(queued.job_id)
        assert found.job.priority_level.value == "critical"
        assert found.job.sla_status.value == "pending"  # not breached on the spot
        deadline = found.job.deadline
        assert deadline is not None
        assert abs((deadline - bumped_at).total_seconds() - 30.0) < 3.0
        assert (deadline - found.job.requested_at).total_seconds() > 32.0
        bump = [r for r in history_reasons(c, queued.job_id) if r.startswith("bumped")]
        assert bump and re.search(r"bumped from MEDIUM to CRITICAL by uid \d+", bump[0]), bump
        assert "(from the bump)" in bump[0]
        shown = d.cli("job", short, check=True).stdout
        assert "bumped from MEDIUM to CRITICAL" in shown
        done = d.wait_job(queued.job_id, timeout=60)
        # 12 s is past CRITICAL's 10 s fetch timeout: the MEDIUM timeout it came with held.
        assert done["job"]["status"] == "completed", done["job"]["error_message"]
        d.wait_job(blocker.job_id)


def test_jobs_behind_an_open_breaker_are_at_risk_at_once_then_fail_at_their_deadline(
    feeds: FeedServer,
) -> None:
    """Item 4: with a source's circuit open past a CRITICAL job's deadline, the job is flagged
    at risk at once with the reopening time, and fails at its deadline with that reason."""
    # Without the reliability adjustment the failures would make the job HIGH (5 min), and
    # the 90 s cool-down would then leave it in time.
    config = (
        "[sources]\nbreaker_failures = 2\nbreaker_cooldown_s = 90.0\n[retry]\nmax_retries = 0\n"
        "[priority]\nreliability_weight = 0.0\n"
    )
    down = feeds.url.replace("127.0.0.1", "localhost")  # another source: its own breaker
    with running_daemon(config) as d:
        c = d.client()
        for i in range(2):
            failing = c.submit(spx(f"{down}_SPX.json?status=503", n=i))
            d.wait_job(failing.job_id)
        opened = {s.name: s.circuit_state.value for s in c.sources().sources}
        assert opened[down.split("//")[1].rstrip("/")] == "open", opened
        doomed = c.submit(spx(f"{down}_SPX.json"))
        assert doomed.at_risk and doomed.at_risk_reason is not None
        assert re.search(r"circuit open until \d\d:\d\d:\d\d ET", doomed.at_risk_reason)
        final = d.wait_job(doomed.job_id, timeout=45)
        assert final["job"]["status"] == "failed"
        message = final["job"]["error_message"]
        assert message.startswith("source_down: the deadline passed while source localhost")
        assert "circuit open since" in message
        requested = final["job"]["requested_at"]
        assert (final["job"]["completed_at"] - requested).total_seconds() < 35.0


def test_a_chain_that_does_not_parse_counts_against_its_source(feeds: FeedServer) -> None:
    """Item 5: reliability is successful / total requests, and a body that is no chain is
    not a successful request, though it does not trip the breaker."""
    junk_source = feeds.url.replace("127.0.0.1", "localhost")
    with running_daemon() as d:
        c = d.client()
        good = c.submit(spx(f"{junk_source}_SPX.json"))
        bad = c.submit(spx(f"{junk_source}_SPX.json?junk=1"))
        d.wait_job(good.job_id)
        assert d.wait_job(bad.job_id)["job"]["status"] == "failed"
        source = next(s for s in c.sources().sources if s.base_url.startswith("http://localhost"))
        assert (source.total_requests, source.successful_requests) == (2, 1)
        assert source.reliability_score == 0.5
        assert source.circuit_state.value == "closed"


def sla_figures(d: RunningDaemon) -> dict[str, dict[str, Any]]:
    """The CRITICAL figures as `status`, /v1/sla and /metrics each say them."""
    status = json.loads(d.cli("--json", "status", check=True).stdout)
    crit = next(lv for lv in status["queues"]["levels"] if lv["level"] == "critical")
    c = d.client()
    sla = next(lv for lv in c.sla().levels if lv.level.value == "critical")
    metrics = c.metrics()

    def metric(name: str) -> float:
        found = re.search(rf'^{name}{{level="critical"}} (\S+)$', metrics, re.M)
        assert found, name
        return float(found.group(1))

    return {
        "status": {k: crit[k] for k in ("met_total", "breached_total", "breaches_last_hour")},
        "sla": {
            "met_total": sla.met_total,
            "breached_total": sla.breached_total,
            "breaches_last_hour": sla.breaches_last_hour,
        },
        "metrics": {
            "met_total": metric("gexd_sla_met_total"),
            "breached_total": metric("gexd_sla_breached_total"),
            "breaches_last_hour": metric("gexd_sla_breaches_last_hour"),
        },
    }


def test_sla_figures_agree_everywhere_and_survive_a_restart(feeds: FeedServer) -> None:
    """Item 6: `status`, /v1/sla and /metrics say the same figures, over a named window, and
    a restart does not reset them (they start from the store)."""
    with running_daemon() as d:
        c = d.client()
        for i in range(3):
            d.wait_job(c.submit(spx(f"{feeds.url}_SPX.json", n=i)).job_id)
        d.wait_job(c.submit(spx(f"{feeds.url}missing.json")).job_id)  # a 404: failed, breached
        before = sla_figures(d)
        assert (
            before["status"] == before["sla"] == {k: int(v) for k, v in before["metrics"].items()}
        )
        assert before["status"]["met_total"] == 3 and before["status"]["breached_total"] == 1
        d.stop()
        d.start()
        after = sla_figures(d)
        assert after == before
        window = json.loads(d.cli("--json", "status", check=True).stdout)["queues"]["levels"][0]
        assert "breaches_last_hour" in window and "finished_last_hour" in window
        assert "1h" in d.cli("status", check=True).stdout  # the human table names its window
