"""The idempotency book: the window, and keys that left memory for room (a real store)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.idempotency import IdempotencyBook
from gexdaemon.storage.store import PutIdempotencyKey, Store, StoreOptions

T0 = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def scenario(tmp_path: Path, steps: object) -> None:
    async def run() -> None:
        store = Store.open(
            StoreOptions(
                path=tmp_path / "gex.duckdb", lake_dir=tmp_path / "gex", archive_dir=tmp_path / "a"
            )
        )
        try:
            await steps(store)  # type: ignore[operator]
        finally:
            store.close()

    asyncio.run(run())


async def take(book: IdempotencyBook, store: Store, key: str) -> uuid.UUID:
    """What intake does with a new key: hold it, write it with its job, settle it."""
    job_id = uuid.uuid4()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    use = book.hold(key, "fp", uuid.uuid4(), job_id, done)
    await store.commit(
        [PutIdempotencyKey(use.key, use.fingerprint, use.request_id, use.job_id, use.created_at)]
    )
    done.set_result(None)
    book.settled(key)
    return job_id


def test_a_key_is_free_again_after_24_hours(tmp_path: Path) -> None:
    now = [T0]
    clock = Clock(now=lambda: now[0])

    async def steps(store: Store) -> None:
        book = IdempotencyBook(store=store, clock=clock)
        job = await take(book, store, "k")
        now[0] = T0 + timedelta(hours=23, minutes=59)
        held = await book.find("k")
        assert held is not None and held.use.job_id == job
        now[0] = T0 + timedelta(hours=24, seconds=1)
        assert await book.find("k") is None
        # and a restart a day later neither holds nor keeps the old row
        again = IdempotencyBook(store=store, clock=clock)
        assert await again.load() == 0

    scenario(tmp_path, steps)


def test_keys_that_left_memory_for_room_are_found_in_the_store(tmp_path: Path) -> None:
    now = [T0]
    clock = Clock(now=lambda: now[0])

    async def steps(store: Store) -> None:
        book = IdempotencyBook(store=store, clock=clock, max_held=2)
        jobs = []
        for i in range(3):
            now[0] = T0 + timedelta(seconds=i)
            jobs.append(await take(book, store, f"k{i}"))
        assert len(book) == 2  # k0 left memory
        held = await book.find("k0")
        assert held is not None and held.use.job_id == jobs[0]
        restarted = IdempotencyBook(store=store, clock=clock, max_held=2)
        assert await restarted.load() == 2
        found = await restarted.find("k0")
        assert found is not None and found.use.job_id == jobs[0]

    scenario(tmp_path, steps)


def test_a_failed_first_use_frees_the_key_for_the_repeat(tmp_path: Path) -> None:
    async def steps(store: Store) -> None:
        book = IdempotencyBook(store=store, clock=Clock(now=lambda: T0))
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        job_id = uuid.uuid4()
        book.hold("k", "fp", uuid.uuid4(), job_id, pending)
        held = await book.find("k")
        assert held is not None
        waiting = asyncio.create_task(held.settled())
        await asyncio.sleep(0)
        book.release("k", job_id)
        pending.set_exception(OSError("disk full"))
        assert await waiting is False  # the repeat goes on to make the job itself
        assert await book.find("k") is None

    scenario(tmp_path, steps)
