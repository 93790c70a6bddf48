"""The board's scripts against a real redis-server: each state change is atomic, fenced
and idempotent where the design says so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gexdaemon.cluster.board import Board, NewJob
from gexdaemon.cluster.keys import Keys
from gexdaemon.core.settings import ClusterSettings
from gexdaemon.core.vocab import PriorityLevel
from tests.cluster.redislab import RedisServer

T = TypeVar("T")
C, H, M, L = PriorityLevel.CRITICAL, PriorityLevel.HIGH, PriorityLevel.MEDIUM, PriorityLevel.LOW
TTL = 60_000


def on_board(server: RedisServer, body: Callable[[Board], Awaitable[T]]) -> T:
    from gexdaemon.cluster.link import connect

    async def run() -> T:
        client = await connect(ClusterSettings(redis_url=server.url))
        try:
            return await body(Board(client, Keys("t")))
        finally:
            await client.aclose()

    return asyncio.run(run())


def new(job_id: str, level: PriorityLevel = H, score: float = 1.0, **fields: Any) -> NewJob:
    return NewJob(job_id, level, score, {"symbol": "SPX", **fields})


async def node(board: Board, node_id: str, slots: int = 2) -> None:
    await board.node_heartbeat(node_id, 10_000, slots=slots, host="h")


async def lead(board: Board, node_id: str = "n1") -> int:
    found = await board.lead(node_id, 5_000)
    assert found.mine
    return found.epoch


def test_submit_queues_by_level_and_score(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        assert await board.submit([new("b", H, 20.0), new("a", H, 10.0), new("c", C, 5.0)]) == [
            "",
            "",
            "",
        ]
        assert await board.queued(H) == ["a", "b"]
        assert await board.queued(C) == ["c"]
        depths = await board.depths()
        assert depths[H] == 2 and depths[C] == 1 and depths[L] == 0
        job = await board.job("a")
        assert job is not None and job["status"] == "queued" and job["symbol"] == "SPX"

    on_board(redis, body)


def test_an_idempotency_key_used_twice_answers_the_first_job(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        first = NewJob("j1", H, 1.0, {}, idem_key="k", idem_value="j1", idem_ttl_ms=TTL)
        again = NewJob("j2", H, 1.0, {}, idem_key="k", idem_value="j2", idem_ttl_ms=TTL)
        assert await board.submit([first]) == [""]
        assert await board.submit([again]) == ["j1"]
        assert await board.job("j2") is None  # nothing new was queued
        assert await board.queued(H) == ["j1"]

    on_board(redis, body)


def test_only_one_node_leads_and_a_new_leader_gets_a_higher_epoch(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        first = await board.lead("n1", 5_000)
        assert first.mine and first.fresh
        other = await board.lead("n2", 5_000)
        assert not other.mine and other.holder == "n1"
        renewed = await board.lead("n1", 5_000)
        assert renewed.mine and not renewed.fresh and renewed.epoch == first.epoch
        assert await board.resign("n2") is False
        assert await board.resign("n1") is True
        second = await board.lead("n2", 5_000)
        assert second.mine and second.fresh and second.epoch > first.epoch
        assert await board.leader() == ("n2", second.epoch)

    on_board(redis, body)


def test_a_deposed_leader_cannot_assign(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w")
        await board.submit([new("j")])
        old = await lead(board, "n1")
        await board.resign("n1")
        await lead(board, "n2")
        assert await board.assign(old, 10_000, [("j", "w")]) is None
        assert (await board.job("j") or {})["status"] == "queued"

    on_board(redis, body)


def test_assign_gives_a_growing_token_and_respects_slots(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w", slots=1)
        await board.submit([new("a"), new("b")])
        epoch = await lead(board)
        answers = await board.assign(epoch, 10_000, [("a", "w"), ("b", "w"), ("a", "w")])
        assert answers is not None
        token = int(answers[0])
        assert answers[1:] == ["FULL", "SKIP:processing"]
        assert await board.assign(epoch, 10_000, [("b", "gone")]) == ["NODE_GONE"]
        assert await board.pop_assignment("w", 1) == ("a", token)
        assert await board.running() == ["a"]
        assert await board.queued(H) == ["b"]
        assert await board.finish("a", token, "completed", {}, ttl_ms=TTL)
        again = await board.assign(epoch, 10_000, [("b", "w")])
        assert again is not None and int(again[0]) > token

    on_board(redis, body)


def test_a_stale_token_can_neither_heartbeat_nor_finish(redis: RedisServer) -> None:
    """A node paused past its lease wakes up after the job moved on: refused, twice."""

    async def body(board: Board) -> None:
        await node(board, "w1")
        await node(board, "w2")
        await board.submit([new("j")])
        epoch = await lead(board)
        (first,) = await board.assign(epoch, 1, [("j", "w1")]) or []
        await asyncio.sleep(0.02)  # the lease (1 ms) runs out
        assert await board.reap(max_retries=3, ttl_ms=TTL) == [("j", "requeued")]
        (second,) = await board.assign(epoch, 10_000, [("j", "w2")]) or []
        assert await board.heartbeat("j", int(first), 10_000) == "STALE"
        assert not await board.finish("j", int(first), "completed", {"by": "w1"}, ttl_ms=TTL)
        assert await board.heartbeat("j", int(second), 10_000) == "OK"
        assert await board.finish("j", int(second), "completed", {"by": "w2"}, ttl_ms=TTL)
        job = await board.job("j") or {}
        assert job["status"] == "completed" and job["by"] == "w2" and job["retries"] == "1"
        # the winner cannot finish differently afterwards...
        assert not await board.finish("j", int(second), "failed", {}, ttl_ms=TTL)
        # ...but repeating its own FINISH (the answer was lost) is the same FINISH: OK
        assert await board.finish("j", int(second), "completed", {}, ttl_ms=TTL)
        assert (await board.job("j") or {})["status"] == "completed"

    on_board(redis, body)


def test_reaping_is_idempotent_and_fails_a_job_past_its_retries(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w", slots=1)
        await board.submit([new("j")])
        epoch = await lead(board)
        for attempt in range(3):
            assert await board.assign(epoch, 1, [("j", "w")]) is not None
            await asyncio.sleep(0.01)
            assert await board.reap(max_retries=2, ttl_ms=TTL) == [
                ("j", "requeued" if attempt < 2 else "failed")
            ]
            assert await board.reap(max_retries=2, ttl_ms=TTL) == []  # a second reaper: nothing
        job = await board.job("j") or {}
        assert job["status"] == "failed" and "stopped answering" in job["error_message"]
        assert await board.running() == []
        nodes = await board.nodes()
        assert nodes[0]["busy"] == "0"  # every reaped attempt gave its slot back

    on_board(redis, body)


def test_a_retry_goes_back_to_its_queue_with_its_backoff(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w")
        await board.submit([new("j", M, 50.0)])
        epoch = await lead(board)
        (token,) = await board.assign(epoch, 10_000, [("j", "w")]) or []
        assert await board.finish(
            "j", int(token), "queued", {"error_message": "timeout"}, ttl_ms=TTL,
            retry_score=50.0, not_before_ms=123,
        )  # fmt: skip
        job = await board.job("j") or {}
        assert job["status"] == "queued" and job["retries"] == "1"
        assert job["not_before_ms"] == "123" and job["error_message"] == "timeout"
        assert await board.queued(M) == ["j"]
        assert (await board.nodes())[0]["busy"] == "0"

    on_board(redis, body)


def test_cancel_ends_a_queued_job_and_asks_a_running_one_to_stop(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w")
        await board.submit([new("q"), new("r")])
        epoch = await lead(board)
        (token,) = await board.assign(epoch, 10_000, [("r", "w")]) or []
        assert await board.cancel("q", "by a trader", ttl_ms=TTL) == "CANCELLED"
        assert await board.queued(H) == []
        assert await board.cancel("r", "by a trader", ttl_ms=TTL) == "RUNNING"
        assert await board.heartbeat("r", int(token), 10_000) == "CANCEL"
        assert await board.finish("r", int(token), "cancelled", {}, ttl_ms=TTL)
        assert await board.cancel("r", "again", ttl_ms=TTL) == "cancelled"
        assert await board.cancel("nope", "x", ttl_ms=TTL) == "MISSING"
        assert await board.assign(epoch, 10_000, [("q", "w")]) == ["SKIP:cancelled"]

    on_board(redis, body)


def test_a_finished_job_expires_after_its_ttl(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await node(board, "w")
        await board.submit([new("j")])
        epoch = await lead(board)
        (token,) = await board.assign(epoch, 10_000, [("j", "w")]) or []
        assert await board.finish("j", int(token), "completed", {}, ttl_ms=50)
        assert await board.job("j") is not None
        await asyncio.sleep(0.2)
        assert await board.job("j") is None

    on_board(redis, body)


def test_a_node_whose_heartbeat_stops_leaves_the_cluster(redis: RedisServer) -> None:
    async def body(board: Board) -> None:
        await board.node_heartbeat("short", 50, slots=4)
        await board.node_heartbeat("long", 10_000, slots=8)
        assert {n["node_id"] for n in await board.nodes()} == {"short", "long"}
        await asyncio.sleep(0.2)
        (left,) = await board.nodes()
        assert left["node_id"] == "long" and left["slots"] == "8" and left["busy"] == "0"

    on_board(redis, body)
