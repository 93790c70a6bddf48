"""Start, stop, crash and restart: one daemon per data directory, nothing accepted is ever lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from tests.conftest import REPO
from tests.daemon.harness import FeedServer, make_daemon, wait_until


def submit_slow(d, feeds: FeedServer, n: int, delay: float, symbol: str = "SPY") -> list[str]:  # type: ignore[no-untyped-def]
    c = d.client()
    body = {
        "source_url": f"{feeds.url}SPY.json?delay={delay}",
        "data_type": "historical",
        "market_symbol": symbol,
    }
    return [c.submit(body)["job_id"] for _ in range(n)]


def test_sigterm_stops_cleanly_and_frees_the_data_dir(feeds: FeedServer) -> None:
    d = make_daemon().start()
    assert d.stop() == 0
    assert not d.socket.exists()
    assert any(e.get("event") == "daemon stopped" for e in d.log_events())
    d.start()  # the lock was released
    assert d.stop() == 0


def test_a_second_daemon_on_the_same_data_dir_is_refused(feeds: FeedServer) -> None:
    d = make_daemon().start()
    try:
        other = subprocess.run(
            [sys.executable, "-m", "gexdaemon", "run"],
            cwd=REPO,
            env=d.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode != 0
        assert "in use by gexdaemon run" in other.stderr and f"pid {d.proc.pid}" in other.stderr  # type: ignore[union-attr]
        assert d.client().health()["status"] == "ok"  # the first one is untouched
    finally:
        assert d.stop() == 0


def test_a_live_socket_is_refused_and_a_stale_one_replaced(feeds: FeedServer) -> None:
    d = make_daemon().start()
    try:
        env = dict(d.env, GEXD_DATA_DIR=str(d.root / "other"))
        other = subprocess.run(
            [sys.executable, "-m", "gexdaemon", "run"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode != 0 and "already answering" in other.stderr
    finally:
        assert d.stop() == 0
    # A crash leaves the socket file behind; nothing listens on it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(d.socket))
    stale.close()
    assert d.socket.exists()
    d.start()
    try:
        assert d.client().health()["status"] == "ok"
        assert any(e.get("event") == "removing stale socket" for e in d.log_events())
    finally:
        assert d.stop() == 0


def test_accepted_requests_survive_sigkill(feeds: FeedServer) -> None:
    d = make_daemon().start()
    ids = submit_slow(d, feeds, 12, delay=1.0)
    d.kill()
    d.start()
    try:
        c = d.client()
        found = {j["job_id"] for j in c.jobs(limit=100)["jobs"]}
        assert set(ids) <= found
        for job_id in ids:
            assert d.wait_job(job_id, timeout=120)["job"]["status"] == "completed"
    finally:
        assert d.stop() == 0


def test_an_expired_lease_returns_the_job_to_the_queue_with_the_attempt_counted(
    feeds: FeedServer,
) -> None:
    d = make_daemon().start()
    c = d.client()
    job_id = submit_slow(d, feeds, 1, delay=6.0)[0]
    wait_until(lambda: c.job(job_id)["job"]["status"] == "processing", what="the job to start")
    d.kill()  # the worker dies holding the lease (lease_s = 3 in the test config)
    d.start()
    try:
        done = d.wait_job(job_id, timeout=120)
        assert done["job"]["status"] == "completed"
        assert done["job"]["retry_count"] == 1
        steps = [(e["from_status"], e["to_status"]) for e in done["history"]]
        assert ("processing", "failed") in steps and ("failed", "queued") in steps
        failed = next(e for e in done["history"] if e["to_status"] == "failed")
        assert "worker_lost" in failed["reason"]
    finally:
        assert d.stop() == 0


def test_graceful_stop_releases_the_lease_of_a_job_that_outlives_the_grace(
    feeds: FeedServer,
) -> None:
    d = make_daemon("[daemon]\nshutdown_grace_s = 0.5\n").start()
    c = d.client()
    job_id = submit_slow(d, feeds, 1, delay=5.0)[0]
    wait_until(lambda: c.job(job_id)["job"]["status"] == "processing", what="the job to start")
    assert d.stop() == 0
    d.start()
    try:
        done = d.wait_job(job_id, timeout=120)
        assert done["job"]["status"] == "completed" and done["job"]["retry_count"] == 1
    finally:
        assert d.stop() == 0


def test_sigint_is_a_graceful_stop_too(feeds: FeedServer) -> None:
    d = make_daemon().start()
    assert d.stop(signal.SIGINT) == 0
    assert not d.socket.exists()
    assert os.path.exists(d.data_dir / "gex.duckdb")
