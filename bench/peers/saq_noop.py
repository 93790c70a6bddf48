"""saq: no-op jobs end to end on a given Redis, as a comparison line for the cluster bench.

Run with the peers' venv (bench/peers/env.py):

    .bench-peers/bin/python bench/peers/saq_noop.py --redis redis://127.0.0.1:6379/0 --jobs 10000

- W worker processes (subprocesses of this script, saq's own Worker, `concurrency` C each) are
  started and have run their startup hook before the clock starts.
- Throughput: from the first enqueue to the moment saq counts no incomplete job in the queue
  (the `incomplete` sorted set, which `finish` empties in the same MULTI that stores the job as
  COMPLETE), then every job's stored status is read back and must be COMPLETE.
- saq has no batch or pipelined enqueue: `Queue.map` is `asyncio.gather` over `enqueue`
  (one Lua script each), throttled by the queue's `max_concurrent_ops`. We do the same.
- Enqueue acknowledgement latency: 500 sequential `enqueue` awaits, workers still running.

Everything lives under one fresh queue name (keys saq:<name>:* and saq:job:<name>:*), which is
deleted at the end; nothing else in the Redis is touched. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import uuid
from typing import Any

import harness
import saq
from harness import Failed
from saq import Queue, Worker
from saq.job import Status

SCRIPT = os.path.abspath(__file__)  # the workers run this script with --worker
LIBRARY = "saq"


async def noop(ctx: dict[str, Any]) -> None:
    return None


# ---------------------------------------------------------------- worker process


def run_worker(url: str, name: str, concurrency: int, ready_key: str) -> None:
    queue = Queue.from_url(url, name=name)

    async def startup(ctx: dict[str, Any]) -> None:
        await queue.redis.incr(ready_key)  # type: ignore[attr-defined]

    worker = Worker(queue=queue, functions=[noop], concurrency=concurrency, startup=startup)

    async def go() -> None:
        try:
            await queue.connect()
            await worker.start()  # until SIGTERM/SIGINT
        finally:
            await queue.disconnect()

    asyncio.run(go())
    harness.worker_report(queue.complete, queue.failed, queue.retried)


# ---------------------------------------------------------------- driver (the rest: harness.py)


async def statuses(queue: Queue, keys: list[str]) -> dict[str, int]:
    async def labels(batch: list[str]) -> list[str]:
        return [
            "missing" if job is None else str(job.status.value) for job in await queue.jobs(batch)
        ]

    return await harness.tally(keys, labels)


async def cleanup(queue: Queue, name: str) -> None:
    for pattern in (f"saq:{name}:*", f"saq:job:{name}:*"):
        await harness.unlink_matching(queue.redis, pattern)  # type: ignore[attr-defined]


async def drive(
    args: argparse.Namespace,
    procs: list[subprocess.Popen],
    queue: Queue,
    ready_key: str,
    progress: dict[str, Any],
) -> dict[str, Any]:
    await harness.wait_ready(queue.redis, ready_key, procs)  # type: ignore[attr-defined]
    n = args.jobs

    async def wait_done() -> None:
        """Until saq's `incomplete` set is empty (every enqueued job finished)."""
        await harness.wait_empty(lambda: queue.count("incomplete"), procs, progress)

    jobs, enqueued, elapsed = await harness.throughput(
        lambda: asyncio.gather(*(queue.enqueue("noop") for _ in range(n))), wait_done, progress
    )
    keys = [job.key for job in jobs if job is not None]
    if len(keys) != n:
        raise Failed(f"only {len(keys)} of {n} enqueues were accepted")
    counts = await statuses(queue, keys)
    if counts.get(Status.COMPLETE.value, 0) != n:
        raise Failed(f"not every job is COMPLETE after the queue drained: {counts}")
    print(
        f"{LIBRARY} {saq.__version__}: enqueued {n} in {enqueued:.3f} s "
        f"({n / enqueued:,.0f}/s, gather over enqueue, max_concurrent_ops "
        f"{args.enqueue_concurrency})"
    )
    print(
        f"{LIBRARY}: {n} no-op jobs end to end on {args.workers} worker processes x "
        f"concurrency {args.concurrency}: {elapsed:.3f} s = {n / elapsed:,.0f} jobs/s; "
        f"statuses {counts}"
    )

    async def settle(lat_jobs: list[Any]) -> None:
        await wait_done()
        counts = await statuses(queue, [job.key for job in lat_jobs])
        if counts.get(Status.COMPLETE.value, 0) != len(lat_jobs):
            raise Failed(f"latency jobs not all COMPLETE: {counts}")

    p50, p99 = await harness.latency(
        LIBRARY, args.latency_samples, lambda _: queue.enqueue("noop"), settle, progress
    )
    info = await queue.redis.info("server")  # type: ignore[attr-defined]
    return harness.summary(
        LIBRARY,
        saq.__version__,
        args,
        elapsed,
        enqueued,
        p50,
        p99,
        f"asyncio.gather over Queue.enqueue (no batch API), "
        f"max_concurrent_ops={args.enqueue_concurrency}",
        info.get("redis_version"),
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench-noop-{uuid.uuid4().hex[:12]}"
    ready_key = f"saq:{name}:bench-ready"
    queue = Queue.from_url(args.redis, name=name, max_concurrent_ops=args.enqueue_concurrency)
    await queue.connect()
    procs = harness.spawn_workers(args, SCRIPT, name, ready_key)
    return await harness.supervise(
        args.timeout,
        procs,
        lambda progress: drive(args, procs, queue, ready_key, progress),
        "incomplete",
        lambda: cleanup(queue, name),
        queue.disconnect,
    )


def main() -> int:
    parser = harness.make_parser(
        __doc__.split("\n\n")[0],
        enqueue_concurrency_help="saq Queue max_concurrent_ops while enqueueing (saq's default: 20)",
    )
    return harness.main(
        LIBRARY,
        saq.__version__,
        parser,
        lambda args: run_worker(args.redis, args.queue, args.concurrency, args.ready_key),
        main_async,
    )


if __name__ == "__main__":
    raise SystemExit(main())
