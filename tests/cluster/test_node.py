"""Cluster nodes in one process on a real redis-server: the leader's one scheduler hands
work to every node, each job ends exactly once, and a node or a leader that dies costs
a lease or a leader TTL, never a job."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from gexdaemon.cluster.board import Board
from gexdaemon.cluster.keys import Keys
from gexdaemon.cluster.link import connect
from gexdaemon.cluster.node import Attempt, ClusterNode, new_job, pickup_s
from gexdaemon.core.retry import FailureCode
from gexdaemon.core.settings import ClusterSettings, RetrySettings, Settings
from gexdaemon.core.vocab import PriorityLevel
from tests.cluster.redislab import RedisServer

T = TypeVar("T")
C, H, M, L = PriorityLevel.CRITICAL, PriorityLevel.HIGH, PriorityLevel.MEDIUM, PriorityLevel.LOW


def settings_for(server: RedisServer, **cluster: object) -> Settings:
    options: dict[str, object] = {"redis_url": server.url, "lease_s": 2.0, "leader_ttl_s": 1.0}
    options.update(cluster)
    return Settings(
        cluster=ClusterSettings(**options),
        retry=RetrySettings(base_delay_s=0.01, max_delay_s=0.05),
    )


class Lab:
    """Nodes sharing one Redis; each with its own client, as separate hosts would be."""

    def __init__(self, server: RedisServer, **cluster: object) -> None:
        self.settings = settings_for(server, **cluster)
        self.nodes: list[ClusterNode] = []
        self.ran: list[tuple[str, str]] = []  # (job, node) of every attempt that ended
        self.clients: list[object] = []

    async def board(self) -> Board:
        client = await connect(self.settings.cluster)
        self.clients.append(client)
        return Board(client, Keys(self.settings.cluster.name))

    async def node(
        self, node_id: str, slots: int = 4, work: Callable[..., Awaitable[Attempt]] | None = None
    ) -> ClusterNode:
        async def sleep_work(job_id: str, job: Mapping[str, str]) -> Attempt:
            await asyncio.sleep(float(job.get("work_s", "0.05")))
            self.ran.append((job_id, node_id))
            return Attempt(ok=True, fields={"ran_on": node_id})

        node = ClusterNode(
            await self.board(), self.settings, node_id=node_id, slots=slots, work=work or sleep_work
        )
        await node.start()
        self.nodes.append(node)
        return node

    async def close(self) -> None:
        for node in self.nodes:
            await node.stop(grace_s=0.5)
        for client in self.clients:
            await client.aclose()  # type: ignore[attr-defined]


def run(server: RedisServer, body: Callable[[Lab], Awaitable[T]], **cluster: object) -> T:
    async def go() -> T:
        lab = Lab(server, **cluster)
        try:
            return await asyncio.wait_for(body(lab), 60)
        finally:
            await lab.close()

    return asyncio.run(go())


async def submit(board: Board, job_id: str, level: PriorityLevel, **fields: object) -> None:
    now = await board.time_ms()
    sla = {C: 30_000, H: 300_000, M: 1_800_000}.get(level)
    job = new_job(
        job_id,
        level,
        source=str(fields.pop("source", "cdn.test")),
        estimate_s=0.05,
        enqueued_ms=now,
        deadline_ms=None if sla is None else now + sla,
        fields=fields,
    )
    assert await board.submit([job]) == [""]


async def until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> float:
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def statuses(board: Board, ids: list[str]) -> Counter[str]:
    return Counter((h or {}).get("status", "missing") for h in await board.jobs(ids))


async def until_all(
    board: Board, ids: list[str], status: str = "completed", within: float = 20.0
) -> float:
    """Wait until every job in `ids` has `status`; returns how long it took."""

    async def reached() -> bool:
        try:
            return (await statuses(board, ids))[status] == len(ids)
        except Exception:  # the test's own client, reconnecting after a Redis restart
            return False

    return await until(reached, within)


def test_three_nodes_share_the_work_and_every_job_ends_once(redis: RedisServer) -> None:
    async def body(lab: Lab) -> None:
        nodes = [await lab.node(f"n{i}", slots=4) for i in range(3)]
        board = await lab.board()
        ids = [f"j{i:03d}" for i in range(120)]
        for i, job_id in enumerate(ids):
            await submit(board, job_id, (C, H, M, L)[i % 4], source=f"src{i % 6}")

        await until_all(board, ids, "completed")
        ran = Counter(job for job, _ in lab.ran)
        assert set(ran) == set(ids) and max(ran.values()) == 1  # each ran exactly once
        per_node = Counter(node for _, node in lab.ran)
        assert set(per_node) == {"n0", "n1", "n2"}  # one scheduler, every node's slots
        assert sum(n.leader.assigned for n in nodes) == len(ids)
        assert sum(1 for n in nodes if n.leader.scheduler is not None) == 1
        hashes = await board.jobs(ids)
        assert all(h and h["sla_status"] in ("met", "none") for h in hashes)
        assert all(h and h["ran_on"] == h["node"] for h in hashes)

    run(redis, body)


def test_critical_jumps_ahead_of_queued_low_work(redis: RedisServer) -> None:
    async def body(lab: Lab) -> None:
        board = await lab.board()
        for i in range(6):
            await submit(board, f"low{i}", L, work_s="0.2")
        await lab.node("solo", slots=1)
        await until(lambda: _started(board, "low0"))
        await submit(board, "urgent", C, work_s="0.01")

        async def urgent_done() -> bool:
            return ((await board.job("urgent")) or {}).get("status") == "completed"

        await until(urgent_done)
        order = [job for job, _ in lab.ran]
        assert order.index("urgent") <= 1  # right after the LOW job that was running

    run(redis, body)


async def _started(board: Board, job_id: str) -> bool:
    return ((await board.job(job_id)) or {}).get("status") in ("processing", "completed")


def test_a_failed_attempt_is_retried_and_then_fails_with_its_reason(redis: RedisServer) -> None:
    tries: Counter[str] = Counter()

    async def flaky(job_id: str, job: Mapping[str, str]) -> Attempt:
        tries[job_id] += 1
        if job_id == "twice" and tries[job_id] <= 2:
            return Attempt(ok=False, code=FailureCode.TIMEOUT, message="no answer in 10 s")
        if job_id == "never":
            return Attempt(ok=False, code=FailureCode.SERVER_ERROR, message="HTTP 503; will retry")
        if job_id == "gone":
            return Attempt(ok=False, code=FailureCode.NOT_FOUND, message="HTTP 404")
        return Attempt(ok=True)

    async def body(lab: Lab) -> None:
        await lab.node("n", slots=2, work=flaky)
        board = await lab.board()
        for job_id in ("twice", "never", "gone"):
            await submit(board, job_id, H)

        async def settled() -> bool:
            found = await statuses(board, ["twice", "never", "gone"])
            return found["completed"] + found["failed"] == 3

        await until(settled)
        twice, never, gone = await board.jobs(["twice", "never", "gone"])
        assert twice and twice["status"] == "completed" and twice["retries"] == "2"
        assert never and never["status"] == "failed" and never["retries"] == "3"
        assert "gave up after 3 retries" in never["error_message"]
        assert "will retry" not in never["error_message"]  # its last word: it gave up
        assert gone and gone["status"] == "failed" and gone["retries"] == "0"
        assert gone["error_code"] == "not_found"
        assert tries == Counter({"twice": 3, "never": 4, "gone": 1})

    run(redis, body)


def test_a_dead_nodes_jobs_are_reaped_and_run_elsewhere(redis: RedisServer) -> None:
    async def body(lab: Lab) -> None:
        doomed = await lab.node("doomed", slots=4)
        board = await lab.board()
        ids = [f"j{i}" for i in range(4)]
        for i, job_id in enumerate(ids):  # long: still running when it dies
            await submit(board, job_id, H, work_s="30", source=f"src{i}")

        await until_all(board, ids, "processing")
        await lab.node("spare", slots=4, work=_quick(lab, "spare"))
        await doomed.kill()  # no FINISH, no resign, no more heartbeats

        took = await until_all(board, ids, "completed")
        assert took < lab.settings.cluster.lease_s + 6
        hashes = await board.jobs(ids)
        assert all(h and h["node"] == "spare" and h["retries"] == "1" for h in hashes)

    run(redis, body)


def _quick(lab: Lab, node_id: str) -> Callable[[str, Mapping[str, str]], Awaitable[Attempt]]:
    async def work(job_id: str, job: Mapping[str, str]) -> Attempt:
        await asyncio.sleep(0.01)
        lab.ran.append((job_id, node_id))
        return Attempt(ok=True)

    return work


def test_dispatch_resumes_within_the_leader_ttl_after_the_leader_dies(redis: RedisServer) -> None:
    async def body(lab: Lab) -> None:
        first = await lab.node("first", slots=2)
        board = await lab.board()
        await until(lambda: _leads(board, "first"))
        second = await lab.node("second", slots=2)
        await first.kill()
        await submit(board, "after", C)

        async def done() -> bool:
            return ((await board.job("after")) or {}).get("status") == "completed"

        resumed = await until(lambda: _assigned_by(second))
        assert resumed <= lab.settings.cluster.leader_ttl_s + 2
        took = await until(done)
        # at worst it went first to the dead node, moments before that node's last beat
        # aged out, and came back after the pickup lease
        assert took <= lab.settings.cluster.leader_ttl_s + pickup_s(2.0) + 2
        holder, epoch = await board.leader()
        assert holder == "second" and epoch == 2
        assert second.leader.scheduler is not None

    run(redis, body)


async def _assigned_by(node: ClusterNode) -> bool:
    return node.leader.assigned > 0


async def _leads(board: Board, node_id: str) -> bool:
    return (await board.leader())[0] == node_id


def test_a_stale_attempt_never_publishes(redis: RedisServer) -> None:
    """A node paused past its lease: its late result is refused and its staging discarded."""
    published: list[str] = []
    discarded: list[str] = []
    gate = asyncio.Event()

    async def slow_then_done(job_id: str, job: Mapping[str, str]) -> Attempt:
        await gate.wait()

        async def publish() -> None:
            published.append(f"slow:{job['token']}")

        async def discard() -> None:
            discarded.append(f"slow:{job['token']}")

        return Attempt(ok=True, publish=publish, discard=discard)

    async def fast(job_id: str, job: Mapping[str, str]) -> Attempt:
        async def publish() -> None:
            published.append(f"fast:{job['token']}")

        return Attempt(ok=True, publish=publish)

    async def body(lab: Lab) -> None:
        slow = await lab.node("slow", slots=1, work=slow_then_done)
        board = await lab.board()
        await submit(board, "j", H)
        await until(lambda: _started(board, "j"))
        # The slow node's renewals stop reaching Redis (a partition) while its work goes on.
        slow.board = _Partitioned(slow.board)  # type: ignore[assignment]
        await lab.node("fast", slots=1, work=fast)

        async def redone() -> bool:
            return ((await board.job("j")) or {}).get("status") == "completed"

        await until(redone)
        gate.set()  # the paused attempt wakes up and tries to finish
        await until(lambda: _true(bool(discarded)))
        assert published == ["fast:2"] and discarded == ["slow:1"]
        assert ((await board.job("j")) or {})["node"] == "fast"

    run(redis, body)


async def _true(value: bool) -> bool:
    return value


class _Partitioned:
    """The node's view of the board while cut off: lease renewals fail."""

    def __init__(self, board: Board) -> None:
        self._board = board

    def __getattr__(self, name: str) -> object:
        return getattr(self._board, name)

    async def heartbeat(self, *_args: object, **_kw: object) -> str:
        raise ConnectionError("partitioned")


def test_a_job_pinned_to_a_node_runs_only_there(redis: RedisServer) -> None:
    """A chain file dropped on one node's folder: only that node can read it."""

    async def body(lab: Lab) -> None:
        await lab.node("big", slots=8)
        await lab.node("holder", slots=1)
        board = await lab.board()
        ids = [f"f{i}" for i in range(5)]
        for i, job_id in enumerate(ids):
            await submit(board, job_id, H, pin="holder", source=f"file{i}")
        await submit(board, "free", H, source="elsewhere")

        await until_all(board, [*ids, "free"])
        ran = dict(lab.ran)
        assert all(ran[job_id] == "holder" for job_id in ids)

    run(redis, body)


def test_a_redis_crash_mid_job_loses_no_acknowledged_job(redis: RedisServer) -> None:
    """SIGKILL of redis-server (AOF, fsync always) while jobs run: every job still ends once."""

    async def body(lab: Lab) -> None:
        await lab.node("n0", slots=4)
        await lab.node("n1", slots=4)
        board = await lab.board()
        ids = [f"j{i}" for i in range(12)]
        for i, job_id in enumerate(ids):
            await submit(board, job_id, (C, H, M, L)[i % 4], work_s="0.5", source=f"s{i}")

        async def some_running() -> bool:
            return (await statuses(board, ids))["processing"] > 0

        await until(some_running)
        await asyncio.to_thread(redis.restart)

        await until_all(board, ids, within=40)
        assert set(ids) <= {job for job, _ in lab.ran}

    run(redis, body)
