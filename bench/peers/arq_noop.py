"""arq: no-op jobs end to end on a given Redis, as a comparison line for the cluster bench.

Run with the peers' venv (bench/peers/env.py):

    .bench-peers/bin/python bench/peers/arq_noop.py --redis redis://127.0.0.1:6379/0 --jobs 10000

- W worker processes (subprocesses of this script, arq's own Worker, `max_jobs` C each) are
  started and have run their on_startup hook before the clock starts.
- Throughput: from the first enqueue to the moment arq's queue (a sorted set, from which
  `finish_job` removes a job in the same MULTI that writes its result) is empty; then every
  job's result (arq:result:<id>) is read back and must say success.
- arq has no batch or pipelined enqueue: `ArqRedis.enqueue_job` is one WATCH/EXISTS/MULTI/
  PSETEX/ZADD/EXEC exchange on its own connection. We run --enqueue-concurrency of them at a
  time with asyncio.gather.
- arq workers poll: each `poll_delay` they read up to `queue_read_limit` ids (default
  max(5 x max_jobs, 100)) and start them one after another (a WATCH/MULTI/EXEC each, so one
  fsync each under appendfsync always). arq's default poll_delay is 0.5 s, which would leave a
  worker idle between reads once a read is started faster than that; we pass --poll-delay
  (default 0.01 s) so that polling is never what limits arq. `--poll-delay 0.5` gives arq's
  out-of-the-box setting (no clear difference here: see bench/peers/README.md).
- Enqueue acknowledgement latency: 500 sequential `enqueue_job` awaits, workers still running.

Everything lives under one fresh queue name used as the queue key and as the prefix of every job
id, so all keys contain it; they are deleted at the end and nothing else in the Redis is touched.
The last line printed is one JSON object.
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

from arq import Worker, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import deserialize_result
from arq.version import VERSION

LIBRARY = "arq"


async def noop(ctx: dict[str, Any]) -> None:
    return None


# ---------------------------------------------------------------- worker process


def run_worker(url: str, name: str, concurrency: int, poll_delay: float, ready_key: str) -> None:
    async def startup(ctx: dict[str, Any]) -> None:
        await ctx["redis"].incr(ready_key)

    worker = Worker(
        functions=[noop],
        queue_name=name,
        redis_settings=RedisSettings.from_dsn(url),
        max_jobs=concurrency,
        poll_delay=poll_delay,
        on_startup=startup,
    )
    worker.run()  # until SIGTERM/SIGINT
    print(
        f"worker {os.getpid()}: complete={worker.jobs_complete} failed={worker.jobs_failed} "
        f"retried={worker.jobs_retried}",
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
                "--poll-delay",
                str(args.poll_delay),
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


async def wait_ready(redis: ArqRedis, ready_key: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while int(await redis.get(ready_key) or 0) < len(procs):
        check_alive(procs)
        if time.monotonic() > deadline:
            raise Failed("workers did not start within 60 s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # let each worker reach its poll loop


async def wait_done(
    redis: ArqRedis, name: str, procs: list[subprocess.Popen], progress: dict[str, Any]
) -> None:
    """Until arq's queue (sorted set) is empty: every enqueued job finished."""
    while True:
        left = await redis.zcard(name)
        progress["queued"] = left
        if left == 0:
            return
        check_alive(procs)
        await asyncio.sleep(0.005)


async def results(redis: ArqRedis, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        for raw in await redis.mget([result_key_prefix + j for j in ids[i : i + 1000]]):
            if raw is None:
                key = "missing"
            else:
                key = "success" if deserialize_result(raw).success else "failed"
            counts[key] = counts.get(key, 0) + 1
    return counts


async def cleanup(redis: ArqRedis, name: str) -> None:
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"*{name}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)


async def drive(
    args: argparse.Namespace,
    procs: list[subprocess.Popen],
    redis: ArqRedis,
    name: str,
    ready_key: str,
    progress: dict[str, Any],
) -> dict[str, Any]:
    await wait_ready(redis, ready_key, procs)
    n = args.jobs
    ids = [f"{name}-{i}" for i in range(n)]
    gate = asyncio.Semaphore(args.enqueue_concurrency)

    async def enqueue(job_id: str) -> bool:
        async with gate:
            return await redis.enqueue_job("noop", _job_id=job_id, _queue_name=name) is not None

    progress["phase"] = "enqueue"
    start = time.perf_counter()
    accepted = await asyncio.gather(*(enqueue(j) for j in ids))
    enqueued = time.perf_counter() - start
    progress["phase"] = "run"
    await wait_done(redis, name, procs, progress)
    elapsed = time.perf_counter() - start

    if not all(accepted):
        raise Failed(f"only {sum(accepted)} of {n} enqueues were accepted")
    counts = await results(redis, ids)
    if counts.get("success", 0) != n:
        raise Failed(f"not every job has a successful result after the queue drained: {counts}")
    rate = n / elapsed
    print(
        f"{LIBRARY} {VERSION}: enqueued {n} in {enqueued:.3f} s ({n / enqueued:,.0f}/s, "
        f"gather over enqueue_job, {args.enqueue_concurrency} in flight)"
    )
    print(
        f"{LIBRARY}: {n} no-op jobs end to end on {args.workers} worker processes x "
        f"max_jobs {args.concurrency}, poll_delay {args.poll_delay} s: {elapsed:.3f} s = "
        f"{rate:,.0f} jobs/s; results {counts}"
    )

    progress["phase"] = "latency"
    lat = []
    lat_ids = [f"{name}-one{i}" for i in range(args.latency_samples)]
    for job_id in lat_ids:
        t0 = time.perf_counter()
        job = await redis.enqueue_job("noop", _job_id=job_id, _queue_name=name)
        lat.append((time.perf_counter() - t0) * 1000)
        if job is None:
            raise Failed("a single enqueue was not accepted")
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    await wait_done(redis, name, procs, progress)
    counts = await results(redis, lat_ids)
    if counts.get("success", 0) != len(lat_ids):
        raise Failed(f"latency jobs not all successful: {counts}")
    print(
        f"{LIBRARY}: single enqueue acknowledgement over {len(lat)} sequential enqueues: "
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms (all {len(lat_ids)} completed)"
    )
    info = await redis.info("server")
    return {
        "library": LIBRARY,
        "version": VERSION,
        "jobs": n,
        "jobs_per_s": round(rate, 1),
        "enqueue_p50_ms": round(p50, 3),
        "enqueue_p99_ms": round(p99, 3),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "elapsed_s": round(elapsed, 3),
        "enqueue_jobs_per_s": round(n / enqueued, 1),
        "enqueue_mode": f"asyncio.gather over ArqRedis.enqueue_job (no batch API), "
        f"{args.enqueue_concurrency} in flight",
        "poll_delay_s": args.poll_delay,
        "redis_version": info.get("redis_version"),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench-noop-{uuid.uuid4().hex[:12]}"
    ready_key = f"{name}:bench-ready"
    redis = await create_pool(RedisSettings.from_dsn(args.redis), default_queue_name=name)
    procs = spawn_workers(args, name, ready_key)
    progress: dict[str, Any] = {"phase": "start"}
    try:
        return await asyncio.wait_for(
            drive(args, procs, redis, name, ready_key, progress), args.timeout
        )
    except TimeoutError as exc:
        raise Failed(
            f"TIMEOUT after {args.timeout} s in phase {progress.get('phase')}"
            + (f": {progress['queued']} job(s) still queued" if "queued" in progress else "")
        ) from exc
    finally:
        stop_workers(procs)
        with contextlib.suppress(Exception):
            await cleanup(redis, name)
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="arq Worker max_jobs")
    parser.add_argument(
        "--poll-delay",
        type=float,
        default=0.01,
        help="arq Worker poll_delay in seconds (arq's default: 0.5)",
    )
    parser.add_argument(
        "--enqueue-concurrency", type=int, default=20, help="enqueue_job calls in flight"
    )
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=300, help="fail after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--ready-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.redis, args.queue, args.concurrency, args.poll_delay, args.ready_key)
        return 0
    try:
        result = asyncio.run(main_async(args))
    except Failed as exc:
        print(f"{LIBRARY} FAILED: {exc}", file=sys.stderr)
        print(json.dumps({"library": LIBRARY, "version": VERSION, "error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
