"""Faulty feeds: retries with backoff up to the limit, clear final messages, the circuit
breaker opening and closing, and reliability figures that match what was served."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from gexdaemon.client import Client
from tests.daemon.harness import RunningDaemon, running_daemon, wait_until
from tests.reliability.eventtap import EventTap
from tests.reliability.faults import (
    FAULT_CONFIG,
    FAULTS,
    MAX_RETRIES,
    Fault,
    check_figures,
    check_outcome,
    feed_folder,
    request_for,
)
from tests.reliability.feedfarm import FeedFarm


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedFarm]:
    servers = FeedFarm(feed_folder(tmp_path_factory.mktemp("faults")))
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def fault_daemon() -> Iterator[RunningDaemon]:
    with running_daemon(FAULT_CONFIG) as d:
        yield d


@pytest.fixture(scope="module")
def outcomes(fault_daemon: RunningDaemon, farm: FeedFarm) -> dict[str, tuple[str, Any]]:
    """Every fault submitted at once (each to its own server), then every job waited for."""
    c = fault_daemon.client()
    submitted = {}
    for fault in FAULTS:
        base = farm.add()
        submitted[fault.name] = (base, c.submit(request_for(base, fault))["job_id"])
    return {
        name: (base, fault_daemon.wait_job(job_id, timeout=120))
        for name, (base, job_id) in submitted.items()
    }


def source_of(c: Client, base_url: str) -> dict[str, Any]:
    key = base_url.rstrip("/")
    return next(s for s in c.sources()["sources"] if s["base_url"] == key)


def fetches_of(found: dict[str, Any]) -> int:
    return sum(1 for e in found["history"] if e["to_status"] == "processing")


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_a_fault_ends_the_way_a_trader_expects(
    fault: Fault, outcomes: dict[str, tuple[str, Any]]
) -> None:
    _, found = outcomes[fault.name]
    assert check_outcome(fault, found) == [], found


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_reliability_figures_match_what_the_server_answered(
    fault: Fault, outcomes: dict[str, tuple[str, Any]], fault_daemon: RunningDaemon
) -> None:
    base, found = outcomes[fault.name]
    fetches = fetches_of(found)
    successes = fault.successes(fetches)
    # A delayed answer is counted by the server when it is sent, after the daemon gave up.
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: FeedFarm.served(base) >= fetches * fault.per_fetch,
            timeout=10,
            what="the feed server to count its answers",
        )
    source = source_of(fault_daemon.client(), base)
    served = FeedFarm.served(base)
    assert check_figures(source, served, fetches, successes, fault.per_fetch) == [], (
        source,
        FeedFarm.stats(base),
    )


def test_the_breaker_opens_on_a_failing_source_and_a_probe_closes_it(
    fault_daemon: RunningDaemon, farm: FeedFarm
) -> None:
    base = farm.add()
    key = base.rstrip("/")
    c = fault_daemon.client()
    tap = EventTap(fault_daemon.socket)
    try:
        failing = c.submit(
            request_for(base, Fault("503", "SPX_strikes.csv?status=503", "failed", None, True))
        )
        opened = wait_until(
            lambda: (s := source_of(c, base))["access"] == "blocked" and s,
            what="the breaker to open",
        )
        assert opened["circuit_state"] == "open" and opened["consecutive_failures"] >= 3
        healthy = c.submit(
            {
                "source_url": base + "SPX_strikes.csv",
                "data_type": "historical",
                "market_symbol": "SPX",
            }
        )
        assert c.job(healthy["job_id"])["job"]["status"] == "queued"  # the source is paused
        done = fault_daemon.wait_job(healthy["job_id"])
        gave_up = fault_daemon.wait_job(failing["job_id"])
        assert done["job"]["status"] == "completed"
        assert gave_up["job"]["status"] == "failed" and gave_up["job"]["retry_count"] == MAX_RETRIES
        closed = wait_until(
            lambda: (s := source_of(c, base))["circuit_state"] == "closed" and s,
            what="the breaker to close",
        )
        assert closed["access"] == "allowed"
        changes = [
            e
            for e in tap.of_type("source.")
            if e["type"] != "source.updated" and e["data"]["base_url"] == key
        ]
        kinds = [e["type"] for e in changes]
        assert kinds[0] == "source.created" or kinds[0] == "source.opened", kinds
        assert "source.opened" in kinds and kinds[-1] == "source.closed", kinds
        first_open = kinds.index("source.opened")
        first_probe = kinds.index("source.half_opened")
        assert first_open < first_probe < len(kinds) - 1, kinds
        assert all(e["data"]["message"] for e in changes if e["type"] != "source.created")
        # The healthy job did not run while the source was paused: it started after a probe was allowed.
        probe_at = changes[first_probe]["at"]
        started = next(e for e in done["history"] if e["to_status"] == "processing")
        assert started["occurred_at"] >= probe_at
        fetches = fetches_of(done) + fetches_of(gave_up)
        assert check_figures(closed, FeedFarm.served(base), fetches, 1, 1) == [], closed
    finally:
        tap.close()


def test_a_probe_without_a_verdict_lets_another_probe_go(
    fault_daemon: RunningDaemon, farm: FeedFarm
) -> None:
    """Found by the crash bench: a half-open source whose probe got a 404 (which says
    nothing about the source's health) stayed paused for ever, its jobs QUEUED."""
    base = farm.add()
    c = fault_daemon.client()
    # Three 503s open the breaker; Retry-After keeps their retries out of the way.
    failing = [
        c.submit(
            {
                "source_url": base + f"SPX_strikes.csv?status=503&retry_after=60&n={i}",
                "data_type": "historical",
                "market_symbol": "SPX",
            }
        )
        for i in range(3)
    ]
    wait_until(lambda: source_of(c, base)["access"] == "blocked", what="the breaker to open")
    probe = c.submit(
        {
            "source_url": base + "no_such_chain.csv",
            "data_type": "historical",
            "market_symbol": "SPX",
        }
    )
    ended = fault_daemon.wait_job(probe["job_id"])  # the only job that can be the probe
    assert ended["job"]["status"] == "failed" and "not_found" in ended["job"]["error_message"]
    assert source_of(c, base)["circuit_state"] == "half_open"  # a 404 is no verdict
    healthy = c.submit(
        {"source_url": base + "SPX_strikes.csv", "data_type": "historical", "market_symbol": "SPX"}
    )
    assert fault_daemon.wait_job(healthy["job_id"], timeout=20)["job"]["status"] == "completed"
    closed = source_of(c, base)
    assert closed["circuit_state"] == "closed" and closed["access"] == "allowed"
    for job in failing:
        assert c.cancel(job["job_id"])["status"] == "cancelled"
