"""Real daemon processes in cluster mode on a real redis-server: a request given to any node
is run once by the cluster, its snapshot lands once in the shared lake, every node answers
for it, and a node killed mid-job costs a lease, never the job."""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.redislab import RedisServer, free_port, redis_server
from tests.daemon.harness import (
    FeedServer,
    RunningDaemon,
    make_daemon,
    start_feed_server,
    wait_until,
)

CLUSTER = """
[cluster]
name = "desk"
lease_s = 3.0
leader_ttl_s = 1.0
"""


@pytest.fixture(scope="module")
def feeds() -> Iterator[FeedServer]:
    server = start_feed_server()
    try:
        yield server
    finally:
        server.stop()


def node(redis: RedisServer, lake: Path, node_id: str, extra: str = "") -> RunningDaemon:
    daemon = make_daemon(CLUSTER + extra)
    daemon.env.update(
        GEXD__CLUSTER__REDIS_URL=redis.url,
        GEXD__CLUSTER__LAKE_DIR=str(lake),
        GEXD__CLUSTER__NODE_ID=node_id,
    )
    return daemon


@contextlib.contextmanager
def cluster(
    redis: RedisServer, count: int, extra: str = ""
) -> Iterator[tuple[list[RunningDaemon], Path]]:
    lake = Path(tempfile.mkdtemp(prefix="gxl-"))
    nodes = [node(redis, lake, f"node{i}", extra).start() for i in range(count)]
    try:
        yield nodes, lake
    finally:
        for daemon in nodes:
            with contextlib.suppress(AssertionError):
                daemon.stop()


def body(feeds: FeedServer, path: str = "_SPX.json", **extra: Any) -> dict[str, Any]:
    return {
        "source_url": f"{feeds.url}{path}",
        "data_type": "snapshot",
        "market_symbol": "SPX",
        **extra,
    }


def disable_everywhere(nodes: list[RunningDaemon], server: FeedServer, *, by: RunningDaemon) -> str:
    """Disable the feed server's source on one node; wait until every node holds it."""
    host = server.url.split("//", 1)[1].rstrip("/")
    by.client().set_source_active(host, False)
    wait_until(
        lambda: all(
            s["manually_disabled"]
            for d in nodes
            for s in d.client().sources()["sources"]
            if host in s["base_url"]
        ),
        what="the source held on every node",
    )
    return host


def held_source(nodes: list[RunningDaemon], feeds: FeedServer) -> str:
    """One job through the cluster (so every node knows the source), then the source
    disabled on the first node and held on all of them; its host."""
    first, second = nodes[0], nodes[1]
    done = first.client().submit(body(feeds))["job_id"]
    assert second.wait_job(done)["job"]["status"] == "completed"
    return disable_everywhere(nodes, feeds, by=first)


def lake_files(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*.parquet") if not p.name.startswith("."))


def staged_left(lake: Path) -> list[Path]:
    return sorted(lake.glob(".staging/*/*"))


def test_a_request_to_one_node_runs_once_and_every_node_answers_for_it(
    redis: RedisServer, feeds: FeedServer
) -> None:
    with cluster(redis, 2) as (nodes, lake):
        a, b = nodes
        ids = []
        for symbol, path in [("SPX", "_SPX.json"), ("NDX", "_NDX.json"), ("SPY", "SPY.json")]:
            accepted = a.client().submit(body(feeds, path, market_symbol=symbol))
            ids.append(accepted["job_id"])
        for job_id in ids:
            found = b.wait_job(job_id)  # asked of the other node
            assert found["job"]["status"] == "completed", found
        # each node's history of a job: submitted, started on a node, completed there
        ran_on = b.wait_job(ids[0])["job"]["lease_owner"]
        for daemon in nodes:
            history = wait_until(
                lambda d=daemon: (h := d.client().job(ids[0])["history"]) and len(h) == 3 and h,
                timeout=10,
                what="the job's history on every node",
            )
            assert [e["to_status"] for e in history] == ["queued", "processing", "completed"]
            assert f"started on node {ran_on}" == history[1]["reason"]
            assert f"completed on node {ran_on}" == history[2]["reason"]
        told = a.cli("job", ids[0], check=True).stdout
        assert f"started on node {ran_on}" in told and f"completed on node {ran_on}" in told
        assert len(lake_files(lake)) == 3 and staged_left(lake) == []
        # every node's listing holds every job
        for daemon in nodes:
            listed = {j["job_id"] for j in daemon.client().jobs(limit=50)["jobs"]}
            assert set(ids) <= listed
        status = a.client().cluster()
        assert status["mode"] == "cluster" and status["cluster"] == "desk"
        assert {n["node_id"] for n in status["nodes"]} == {"node0", "node1"}
        assert sum(n["leader"] for n in status["nodes"]) == 1
        assert status["redis"]["durable"] is True and status["redis"]["appendfsync"] == "always"
        # the shared lake, from either node: every snapshot, whichever node published it
        rows = a.client().query("SELECT count(DISTINCT snapshot_id) AS n FROM gex_lake")
        assert rows["rows"][0][0] == 3, rows
        human = b.cli("cluster", "status", check=True).stdout
        assert "node0" in human and "node1" in human and "durable" in human
        assert "leader" in human and "2 node(s)" in human
        machine = json.loads(b.cli("--json", "cluster", "status", check=True).stdout)
        assert machine["epoch"] >= 1


def test_an_idempotency_key_holds_across_nodes(redis: RedisServer, feeds: FeedServer) -> None:
    with cluster(redis, 2) as (nodes, _lake):
        a, b = nodes
        first = a.client().submit(body(feeds), idempotency_key="desk-1")
        again = b.client().submit(body(feeds), idempotency_key="desk-1")
        assert again["job_id"] == first["job_id"] and again["replayed"] is True


def test_a_node_killed_mid_job_costs_a_lease_not_the_job(
    redis: RedisServer, feeds: FeedServer
) -> None:
    slow = start_feed_server(feeds_folder(), "--latency-ms", "4000")
    try:
        with cluster(redis, 2) as (nodes, lake):
            a, b = nodes
            ids = [
                a.client().submit(body(slow, "_SPX.json", metadata={"n": i}))["job_id"]
                for i in range(4)
            ]

            def running_on_a() -> bool:
                jobs = [a.client().job(j)["job"] for j in ids]
                return any(
                    j["status"] == "processing" and j.get("lease_owner") == "node0" for j in jobs
                )

            wait_until(running_on_a, timeout=30, what="a job running on node0")
            a.stop(signal.SIGKILL)
            for job_id in ids:
                found = b.wait_job(job_id, timeout=90)
                assert found["job"]["status"] == "completed", found
            files = lake_files(lake)
            assert len(files) == len(ids)  # one snapshot each: none twice, none lost
            # what the desk reads on the surviving node: the lost lease, then the rerun
            said = [e["reason"] for j in ids for e in b.client().job(j)["history"]]
            assert any("lease expired on node0" in r for r in said), said
            assert any(r == "completed on node node1" for r in said), said
            wait_until(lambda: not staged_left(lake) or _only_dead(lake), what="staging cleared")
    finally:
        slow.stop()


def _only_dead(lake: Path) -> bool:
    """Staging files left only by the killed node (it settles them when it comes back)."""
    return all(p.parent.name == "node0" for p in staged_left(lake))


def feeds_folder() -> Path:
    from tests.daemon.harness import SAMPLE_FEEDS

    return SAMPLE_FEEDS


def test_a_volatile_redis_is_refused_unless_allowed() -> None:
    with redis_server(appendfsync="everysec") as volatile:
        lake = Path(tempfile.mkdtemp(prefix="gxl-"))
        daemon = node(volatile, lake, "v")
        result = daemon.cli("run", timeout=60)
        assert result.returncode == 4, result.stderr
        assert "would lose acknowledged requests" in result.stderr
        assert "--allow-volatile-redis" in result.stderr
        allowed = node(volatile, lake, "v", "allow_volatile_redis = true\n").start()
        try:
            status = allowed.client().cluster()
            assert status["redis"]["durable"] is False
            assert "once a second" in status["redis"]["warning"]
            human = allowed.cli("cluster", "status", check=True).stdout
            assert "VOLATILE" in human
        finally:
            allowed.stop()


def test_an_unreachable_redis_is_a_clear_error_at_start() -> None:
    daemon = make_daemon(CLUSTER)
    daemon.env["GEXD__CLUSTER__REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = daemon.cli("run", timeout=60)
    assert result.returncode == 4, result.stderr
    assert "does not answer" in result.stderr and "redis_url" in result.stderr


def test_embedded_mode_says_it_is_a_cluster_of_one_and_loads_no_redis() -> None:
    daemon = make_daemon().start()
    try:
        status = daemon.client().cluster()
        assert status["mode"] == "embedded" and status["redis"] is None
        assert len(status["nodes"]) == 1
        assert "embedded" in daemon.cli("cluster", check=True).stdout
        maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()  # type: ignore[union-attr]
        assert "hiredis" not in maps
        modules = daemon.cli("--json", "status", check=True)
        assert modules.returncode == 0
    finally:
        daemon.stop()


def test_a_chain_file_dropped_on_a_node_runs_on_that_node(
    redis: RedisServer, feeds: FeedServer
) -> None:
    import shutil

    from tests.daemon.harness import SAMPLE_FEEDS

    with cluster(redis, 2) as (nodes, lake):
        _a, b = nodes
        shutil.copyfile(SAMPLE_FEEDS / "SPX_strikes.csv", b.drop / "SPX_dropped.csv")

        def finished() -> list[dict[str, Any]]:
            jobs = b.client().jobs(limit=10)["jobs"]
            return [j for j in jobs if j["status"] == "completed"]

        try:
            (job,) = wait_until(finished, timeout=60, what="the dropped chain to be processed")
        except AssertionError:
            raise AssertionError(b.log_text()[-4000:]) from None
        detail = b.client().job(job["job_id"])["job"]
        assert detail["lease_owner"] == "node1"  # only node1 can read its drop folder
        assert len(lake_files(lake)) == 1


def test_a_rule_saved_on_one_node_scores_on_every_node_within_a_second(
    redis: RedisServer, feeds: FeedServer
) -> None:
    import time

    with cluster(redis, 2) as (nodes, _lake):
        a, b = nodes
        assert {r["name"] for r in a.client().rules()["rules"]} == {
            r["name"] for r in b.client().rules()["rules"]
        }
        a.client().create_rule(
            {
                "name": "desk-ndx-first",
                "condition": "market_symbol == 'NDX'",
                "priority_score": 0.99,
            }
        )
        saved = time.monotonic()

        def on_b() -> bool:
            return "desk-ndx-first" in {r["name"] for r in b.client().rules()["rules"]}

        wait_until(on_b, timeout=10, every=0.02, what="the rule on the other node")
        assert time.monotonic() - saved < 1.0
        scored = b.client().submit(body(feeds, "_NDX.json", market_symbol="NDX"))
        assert scored["priority_level"] == "critical"
        history = b.cli("rules", "history", "desk-ndx-first", check=True).stdout
        assert "create" in history
        a.client().delete_rule("desk-ndx-first")
        wait_until(lambda: not on_b(), timeout=10, what="the deletion on the other node")


def test_a_source_disabled_on_one_node_holds_its_jobs_on_every_node(
    redis: RedisServer, feeds: FeedServer
) -> None:
    """A trader's switch is one state for the cluster: disabled on node0, node1 shows it
    within a second and the leader gives none of its jobs to anyone until it is enabled
    again (on node1)."""
    import time

    with cluster(redis, 2) as (nodes, _lake):
        a, b = nodes
        done = a.client().submit(body(feeds))["job_id"]
        assert b.wait_job(done)["job"]["status"] == "completed"
        host = feeds.url.split("//", 1)[1].rstrip("/")

        def disabled_on(daemon: RunningDaemon) -> bool:
            found = [s for s in daemon.client().sources()["sources"] if host in s["base_url"]]
            return bool(found) and all(s["manually_disabled"] for s in found)

        a.client().set_source_active(host, False)
        switched = time.monotonic()
        wait_until(lambda: disabled_on(b), timeout=10, every=0.02, what="the switch on node1")
        assert time.monotonic() - switched < 1.0

        held = b.client().submit(body(feeds))["job_id"]
        time.sleep(2.0)
        for daemon in (a, b):
            job = daemon.client().job(held)["job"]
            assert job["status"] == "queued", job
        row = next(line for line in b.cli("sources").stdout.splitlines() if host in line)
        assert row.split()[-1] == "no", row  # the "active" column

        b.client().set_source_active(host, True)
        assert a.wait_job(held)["job"]["status"] == "completed"
        wait_until(lambda: not disabled_on(a), timeout=5, what="the source enabled on node0")


def test_every_node_shows_every_snapshot_and_rebuilds_its_database_from_the_lake(
    redis: RedisServer, feeds: FeedServer
) -> None:
    """Whichever node computed a snapshot, every node lists it and serves it (from the lake
    file's own record); a node whose database is lost gets them all back at start, and
    `gexdaemon lake rebuild` says what it found."""
    with cluster(redis, 2) as (nodes, lake):
        a, b = nodes
        ids = [
            a.client().submit(body(feeds, path, market_symbol=symbol))["job_id"]
            for symbol, path in [("SPX", "_SPX.json"), ("NDX", "_NDX.json"), ("SPY", "SPY.json")]
        ]
        ran_on = {a.wait_job(i)["job"]["lease_owner"] for i in ids}
        wanted = {a.wait_job(i)["snapshot_id"] for i in ids}
        assert None not in wanted

        def listed(daemon: RunningDaemon) -> set[str]:
            return {x["snapshot_id"] for x in daemon.client().snapshots(limit=50)["snapshots"]}

        for daemon in nodes:
            wait_until(lambda d=daemon: wanted <= listed(d), timeout=15, what="every snapshot")
            spx = daemon.client().latest_snapshot("SPX")
            assert spx["snapshot_id"] in wanted and len(spx["strikes"]) > 100
        assert ran_on <= {"node0", "node1"}

        human = a.cli("lake", "rebuild", check=True).stdout
        assert "3 snapshot file(s)" in human and "0 added" in human and "3 already" in human

        b.stop()
        for path in b.data_dir.glob("gex.duckdb*"):
            path.unlink()
        b.start()
        wait_until(lambda: wanted <= listed(b), timeout=30, what="the snapshots after a rebuild")
        assert len(lake_files(lake)) == 3


def test_a_trader_retries_and_bumps_jobs_from_any_node(redis: RedisServer) -> None:
    """Cluster mode answers a retry and a bump as embedded mode does: the failed job runs
    again with a deadline from the retry, the bumped one moves level, both in the history
    every node shows."""
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="gxf-"))
    server = start_feed_server(folder)
    try:
        with cluster(redis, 2) as (nodes, _lake):
            a, b = nodes
            failed = a.client().submit(body(server, "SPY.json", market_symbol="SPY"))["job_id"]
            assert b.wait_job(failed)["job"]["status"] == "failed"  # 404: nothing to fetch yet
            shutil.copy(feeds_folder() / "SPY.json", folder / "SPY.json")
            again = b.client().retry(failed)
            assert again["status"] in ("queued", "processing")  # a free slot takes it at once
            wait_until(
                lambda: a.client().job(failed)["job"]["status"] != "failed",
                what="the retry on the other node",
            )
            assert a.wait_job(failed)["job"]["status"] == "completed"
            said = [e["reason"] for e in a.client().job(failed)["history"]]
            assert any(r.startswith("retried by") for r in said), said
            assert said[-1].startswith("completed on node"), said

            host = disable_everywhere(nodes, server, by=b)  # hold the next job in its queue
            low = a.client().submit(body(server, "SPY.json", market_symbol="SPY"))["job_id"]
            refused = a.client()
            with pytest.raises(Exception) as not_failed:
                refused.retry(low)
            assert "FAILED" in str(not_failed.value) and "QUEUED" in str(not_failed.value)
            b.cli("bump", low, "critical", check=True)
            moved = a.client().job(low)["job"]
            assert moved["priority_level"] == "critical" and moved["status"] == "queued"
            a.client().set_source_active(host, True)
            assert b.wait_job(low)["job"]["status"] == "completed"
            said = [e["reason"] for e in b.client().job(low)["history"]]
            assert any("bumped from " in r and " to CRITICAL" in r for r in said), said
    finally:
        server.stop()


def test_a_job_at_risk_is_flagged_on_every_node_with_its_reason(
    redis: RedisServer, feeds: FeedServer
) -> None:
    """The leader forecasts the cluster's work as the embedded daemon does: a CRITICAL job
    behind a disabled source is flagged at risk within a couple of seconds, with the reason
    in words, on every node (live listing, job detail, event feed); enabling the source
    clears it and the job runs."""
    with cluster(redis, 2) as (nodes, _lake):
        a, b = nodes
        host = held_source(nodes, feeds)
        urgent = b.client().submit(body(feeds, data_type="real_time"))
        assert urgent["priority_level"] == "critical"
        job_id = urgent["job_id"]

        def flagged(daemon: RunningDaemon) -> str | None:
            live = daemon.client().job(job_id)["live"]
            return live["at_risk_reason"] if live and live["at_risk"] else None

        for daemon in nodes:
            reason = wait_until(lambda d=daemon: flagged(d), timeout=10, what="the at-risk flag")
            assert "disabled" in reason and host.split(":")[0] in reason
            # the queues every node shows count it (the dashboard's AT RISK column)
            wait_until(
                lambda d=daemon: d.client().queues()["levels"][0]["at_risk"] == 1,
                timeout=5,
                what="the at-risk figure",
            )
        a.client().set_source_active(host, True)
        assert a.wait_job(job_id)["job"]["status"] == "completed"
        wait_until(
            lambda: all(d.client().queues()["levels"][0]["at_risk"] == 0 for d in nodes),
            timeout=5,
            what="the figure back to 0",
        )


def test_a_queued_job_fails_at_its_deadline_while_its_source_is_down(
    redis: RedisServer, feeds: FeedServer
) -> None:
    """As in embedded mode: a CRITICAL job still queued when its deadline passes behind a
    disabled source fails then, with the reason, on every node; it does not wait for ever."""
    with cluster(redis, 2, "[sla]\ncritical_s = 3.0\n") as (nodes, _lake):
        held_source(nodes, feeds)
        job_id = nodes[1].client().submit(body(feeds, data_type="real_time"))["job_id"]
        for daemon in nodes:
            found = daemon.wait_job(job_id, timeout=20)
            assert found["job"]["status"] == "failed", found
            assert found["job"]["sla_status"] == "breached"
            said = found["job"]["error_message"]
            assert said.startswith("source_down: the deadline passed while") and "disabled" in said
            last = found["history"][-1]
            assert (last["from_status"], last["to_status"]) == ("queued", "failed")


def test_archived_jobs_are_in_the_shared_lake_and_read_once_from_every_node(
    redis: RedisServer, feeds: FeedServer
) -> None:
    """Each node archives its copy of finished jobs to `<lake>/archive/node=<id>/`; every node
    reads all of them, each job once, hot or archived."""
    retention = "[storage]\nretention_days = 0.00001\n"  # about a second
    with cluster(redis, 2, retention) as (nodes, lake):
        a, b = nodes
        ids = [a.client().submit(body(feeds, metadata={"n": i}))["job_id"] for i in range(3)]
        for job_id in ids:
            assert b.wait_job(job_id)["job"]["status"] == "completed"
        wait_until(
            lambda: all(
                d.client().query("SELECT count(*) FROM processing_jobs")["rows"][0][0] == 3
                for d in nodes
            ),
            what="every job on every node",
        )
        import time

        time.sleep(1.5)
        told = a.cli("archive", check=True).stdout
        assert told.startswith("archived 3 jobs")
        assert list((lake / "archive" / "node=node0" / "processing_jobs").glob("batch_*.parquet"))
        count = "SELECT count(*), count(DISTINCT job_id) FROM processing_jobs_all"
        for daemon in nodes:  # node0 reads its archive, node1 its hot rows: 3 jobs each
            assert daemon.client().query(count)["rows"][0] == [3, 3]
        b.cli("archive", check=True)
        for daemon in nodes:  # two copies archived, each job read once
            assert daemon.client().query(count)["rows"][0] == [3, 3]
        assert b.client().job(ids[0])["job"]["status"] == "completed"
