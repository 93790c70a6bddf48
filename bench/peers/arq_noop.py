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
import os
import subprocess
import uuid
from typing import Any

import harness
from arq import Worker, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import deserialize_result
from arq.version import VERSION
from harness import Failed

SCRIPT = os.path.abspath(__file__)  # the workers run this script with --worker
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
    harness.worker_report(worker.jobs_complete, worker.jobs_failed, worker.jobs_retried)


# ---------------------------------------------------------------- driver (the rest: harness.py)


async def results(redis: ArqRedis, ids: list[str]) -> dict[str, int]:
    def label(raw: bytes | None) -> str:
        if raw is None:
            return "missing"
        return "success" if deserialize_result(raw).success else "failed"

    async def labels(batch: list[str]) -> list[str]:
        return [label(raw) for raw in await redis.mget([result_key_prefix + j for j in batch])]

    return await harness.tally(ids, labels)


async def drive(
    args: argparse.Namespace,
    procs: list[subprocess.Popen],
    redis: ArqRedis,
    name: str,
    ready_key: str,
    progress: dict[str, Any],
) -> dict[str, Any]:
    await harness.wait_ready(redis, ready_key, procs)
    n = args.jobs
    ids = [f"{name}-{i}" for i in range(n)]
    gate = asyncio.Semaphore(args.enqueue_concurrency)

    async def enqueue(job_id: str) -> bool:
        async with gate:
            return await redis.enqueue_job("noop", _job_id=job_id, _queue_name=name) is not None

    async def wait_done() -> None:
        """Until arq's queue (sorted set) is empty: every enqueued job finished."""
        await harness.wait_empty(lambda: redis.zcard(name), procs, progress)

    accepted, enqueued, elapsed = await harness.throughput(
        lambda: asyncio.gather(*(enqueue(j) for j in ids)), wait_done, progress
    )
    if not all(accepted):
        raise Failed(f"only {sum(accepted)} of {n} enqueues were accepted")
    counts = await results(redis, ids)
    if counts.get("success", 0) != n:
        raise Failed(f"not every job has a successful result after the queue drained: {counts}")
    print(
        f"{LIBRARY} {VERSION}: enqueued {n} in {enqueued:.3f} s ({n / enqueued:,.0f}/s, "
        f"gather over enqueue_job, {args.enqueue_concurrency} in flight)"
    )
    print(
        f"{LIBRARY}: {n} no-op jobs end to end on {args.workers} worker processes x "
        f"max_jobs {args.concurrency}, poll_delay {args.poll_delay} s: {elapsed:.3f} s = "
        f"{n / elapsed:,.0f} jobs/s; results {counts}"
    )

    lat_ids = [f"{name}-one{i}" for i in range(args.latency_samples)]

    async def settle(_jobs: list[Any]) -> None:
        await wait_done()
        counts = await results(redis, lat_ids)
        if counts.get("success", 0) != len(lat_ids):
            raise Failed(f"latency jobs not all successful: {counts}")

    p50, p99 = await harness.latency(
        LIBRARY,
        len(lat_ids),
        lambda i: redis.enqueue_job("noop", _job_id=lat_ids[i], _queue_name=name),
        settle,
        progress,
    )
    info = await redis.info("server")
    return harness.summary(
        LIBRARY,
        VERSION,
        args,
        elapsed,
        enqueued,
        p50,
        p99,
        f"asyncio.gather over ArqRedis.enqueue_job (no batch API), "
        f"{args.enqueue_concurrency} in flight",
        info.get("redis_version"),
        poll_delay_s=args.poll_delay,
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench-noop-{uuid.uuid4().hex[:12]}"
    ready_key = f"{name}:bench-ready"
    redis = await create_pool(RedisSettings.from_dsn(args.redis), default_queue_name=name)
    procs = harness.spawn_workers(
        args, SCRIPT, name, ready_key, ["--poll-delay", str(args.poll_delay)]
    )
    return await harness.supervise(
        args.timeout,
        procs,
        lambda progress: drive(args, procs, redis, name, ready_key, progress),
        "queued",
        lambda: harness.unlink_matching(redis, f"*{name}*"),
        redis.aclose,
    )


def main() -> int:
    def add_poll_delay(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--poll-delay",
            type=float,
            default=0.01,
            help="arq Worker poll_delay in seconds (arq's default: 0.5)",
        )

    parser = harness.make_parser(
        __doc__.split("\n\n")[0],
        concurrency_help="arq Worker max_jobs",
        enqueue_concurrency_help="enqueue_job calls in flight",
        add_own=add_poll_delay,
    )
    return harness.main(
        LIBRARY,
        VERSION,
        parser,
        lambda args: run_worker(
            args.redis, args.queue, args.concurrency, args.poll_delay, args.ready_key
        ),
        main_async,
    )


if __name__ == "__main__":
    raise SystemExit(main())
