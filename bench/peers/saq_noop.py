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
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import saq
from saq import Queue, Worker
from saq.job import Status

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
    print(
        f"worker {os.getpid()}: complete={queue.complete} failed={queue.failed} "
        f"retried={queue.retried}",
        file=sys.stderr,
    )


# ---------------------------------------------------------------- driver


class Failed(Exception):
    pass


def spawn_workers(args: argparse.Namespace, name: str, ready_key: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                "--redis",
                args.redis,
                "--queue",
                name,
                "--concurrency",
                str(args.concurrency),
                "--ready-key",
                ready_key,
            ],
            stdout=subprocess.DEVNULL,
            stderr=None if args.verbose else subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]


def check_alive(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is not None:
            raise Failed(f"worker process {proc.pid} exited early with code {proc.returncode}")


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_ready(queue: Queue, ready_key: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while int(await queue.redis.get(ready_key) or 0) < len(procs):  # type: ignore[attr-defined]
        check_alive(procs)
        if time.monotonic() > deadline:
            raise Failed("workers did not start within 60 s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # let each worker's C dequeue tasks reach their BLMOVE


async def wait_done(queue: Queue, procs: list[subprocess.Popen], progress: dict[str, Any]) -> None:
    """Until saq's `incomplete` set is empty (every enqueued job finished)."""
    while True:
        left = await queue.count("incomplete")
        progress["incomplete"] = left
        if left == 0:
            return
        check_alive(procs)
        await asyncio.sleep(0.005)


async def statuses(queue: Queue, keys: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(0, len(keys), 1000):
        for job in await queue.jobs(keys[i : i + 1000]):
            status = "missing" if job is None else str(job.status.value)
            counts[status] = counts.get(status, 0) + 1
    return counts


async def cleanup(queue: Queue, name: str) -> None:
    redis = queue.redis  # type: ignore[attr-defined]
    for pattern in (f"saq:{name}:*", f"saq:job:{name}:*"):
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch = []
        if batch:
            await redis.unlink(*batch)


async def drive(
    args: argparse.Namespace,
    procs: list[subprocess.Popen],
    queue: Queue,
    ready_key: str,
    progress: dict[str, Any],
) -> dict[str, Any]:
    await wait_ready(queue, ready_key, procs)
    n = args.jobs

    progress["phase"] = "enqueue"
    start = time.perf_counter()
    jobs = await asyncio.gather(*(queue.enqueue("noop") for _ in range(n)))
    enqueued = time.perf_counter() - start
    progress["phase"] = "run"
    await wait_done(queue, procs, progress)
    elapsed = time.perf_counter() - start

    keys = [job.key for job in jobs if job is not None]
    if len(keys) != n:
        raise Failed(f"only {len(keys)} of {n} enqueues were accepted")
    counts = await statuses(queue, keys)
    if counts.get(Status.COMPLETE.value, 0) != n:
        raise Failed(f"not every job is COMPLETE after the queue drained: {counts}")
    rate = n / elapsed
    print(
        f"{LIBRARY} {saq.__version__}: enqueued {n} in {enqueued:.3f} s "
        f"({n / enqueued:,.0f}/s, gather over enqueue, max_concurrent_ops "
        f"{args.enqueue_concurrency})"
    )
    print(
        f"{LIBRARY}: {n} no-op jobs end to end on {args.workers} worker processes x "
        f"concurrency {args.concurrency}: {elapsed:.3f} s = {rate:,.0f} jobs/s; statuses {counts}"
    )

    progress["phase"] = "latency"
    lat = []
    lat_keys = []
    for _ in range(args.latency_samples):
        t0 = time.perf_counter()
        job = await queue.enqueue("noop")
        lat.append((time.perf_counter() - t0) * 1000)
        if job is None:
            raise Failed("a single enqueue was not accepted")
        lat_keys.append(job.key)
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    await wait_done(queue, procs, progress)
    counts = await statuses(queue, lat_keys)
    if counts.get(Status.COMPLETE.value, 0) != len(lat_keys):
        raise Failed(f"latency jobs not all COMPLETE: {counts}")
    print(
        f"{LIBRARY}: single enqueue acknowledgement over {len(lat)} sequential enqueues: "
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms (all {len(lat_keys)} completed)"
    )
    info = await queue.redis.info("server")  # type: ignore[attr-defined]
    return {
        "library": LIBRARY,
        "version": saq.__version__,
        "jobs": n,
        "jobs_per_s": round(rate, 1),
        "enqueue_p50_ms": round(p50, 3),
        "enqueue_p99_ms": round(p99, 3),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "elapsed_s": round(elapsed, 3),
        "enqueue_jobs_per_s": round(n / enqueued, 1),
        "enqueue_mode": f"asyncio.gather over Queue.enqueue (no batch API), "
        f"max_concurrent_ops={args.enqueue_concurrency}",
        "redis_version": info.get("redis_version"),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench-noop-{uuid.uuid4().hex[:12]}"
    ready_key = f"saq:{name}:bench-ready"
    queue = Queue.from_url(args.redis, name=name, max_concurrent_ops=args.enqueue_concurrency)
    await queue.connect()
    procs = spawn_workers(args, name, ready_key)
    progress: dict[str, Any] = {"phase": "start"}
    try:
        return await asyncio.wait_for(drive(args, procs, queue, ready_key, progress), args.timeout)
    except TimeoutError as exc:
        raise Failed(
            f"TIMEOUT after {args.timeout} s in phase {progress.get('phase')}"
            + (
                f": {progress['incomplete']} job(s) still incomplete"
                if "incomplete" in progress
                else ""
            )
        ) from exc
    finally:
        stop_workers(procs)
        with contextlib.suppress(Exception):
            await cleanup(queue, name)
        await queue.disconnect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--enqueue-concurrency",
        type=int,
        default=20,
        help="saq Queue max_concurrent_ops while enqueueing (saq's default: 20)",
    )
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=300, help="fail after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--ready-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.redis, args.queue, args.concurrency, args.ready_key)
        return 0
    try:
        result = asyncio.run(main_async(args))
    except Failed as exc:
        print(f"{LIBRARY} FAILED: {exc}", file=sys.stderr)
        print(json.dumps({"library": LIBRARY, "version": saq.__version__, "error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
