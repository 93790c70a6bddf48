"""The driver shared by saq_noop.py and arq_noop.py: what does not depend on the library.

Both scripts run as scripts (their folder is on sys.path) and `import harness`. Here: the common
command-line options, spawning the worker processes (the script itself with --worker), checking
they are alive, stopping them, waiting until all have run their startup hook, timing the
throughput and latency phases (percentiles by the cluster bench's rule), deleting the run's keys,
the timeout, and the output (human lines, then one JSON object as the last line). The library's
own parts (its worker, enqueue, completion check, job statuses) stay in each script.
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
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class Failed(Exception):
    pass


# ---------------------------------------------------------------- command line


def make_parser(
    description: str,
    *,
    concurrency_help: str | None = None,
    enqueue_concurrency_help: str,
    add_own: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """The options of both scripts; `add_own` adds a script's own, after --concurrency."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help=concurrency_help)
    if add_own is not None:
        add_own(parser)
    parser.add_argument(
        "--enqueue-concurrency", type=int, default=20, help=enqueue_concurrency_help
    )
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=300, help="fail after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--ready-key", help=argparse.SUPPRESS)
    return parser


def main(
    library: str,
    version: str,
    parser: argparse.ArgumentParser,
    run_worker: Callable[[argparse.Namespace], None],
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> int:
    """A worker process with --worker; else the driver: its lines, then one JSON object."""
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return 0
    try:
        result = asyncio.run(run(args))
    except Failed as exc:
        print(f"{library} FAILED: {exc}", file=sys.stderr)
        print(json.dumps({"library": library, "version": version, "error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------- worker processes


def spawn_workers(
    args: argparse.Namespace,
    script: str,
    name: str,
    ready_key: str,
    own_args: Sequence[str] = (),
) -> list[subprocess.Popen]:
    """args.workers copies of `script --worker`, on queue `name`; `own_args` are the script's."""
    return [
        subprocess.Popen(
            [
                sys.executable,
                script,
                "--worker",
                "--redis",
                args.redis,
                "--queue",
                name,
                "--concurrency",
                str(args.concurrency),
                *own_args,
                "--ready-key",
                ready_key,
            ],
            stdout=subprocess.DEVNULL,
            stderr=None if args.verbose else subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]


def worker_report(complete: int, failed: int, retried: int) -> None:
    """A worker process's last line, on its stderr (shown with --verbose)."""
    print(
        f"worker {os.getpid()}: complete={complete} failed={failed} retried={retried}",
        file=sys.stderr,
    )


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


async def wait_ready(redis: Any, ready_key: str, procs: list[subprocess.Popen]) -> None:
    """Until every worker has incremented `ready_key` from its startup hook (60 s at most)."""
    deadline = time.monotonic() + 60
    while int(await redis.get(ready_key) or 0) < len(procs):
        check_alive(procs)
        if time.monotonic() > deadline:
            raise Failed("workers did not start within 60 s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # let each worker reach its dequeue (saq) or poll (arq) loop


async def wait_empty(
    count: Callable[[], Awaitable[int]], procs: list[subprocess.Popen], progress: dict[str, Any]
) -> None:
    """Until `count()` (the library's own count of unfinished jobs) is 0; polled every 5 ms."""
    while True:
        left = await count()
        progress["left"] = left
        if left == 0:
            return
        check_alive(procs)
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------- the run


async def supervise(
    time_limit: float,
    procs: list[subprocess.Popen],
    drive: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    left_word: str,
    cleanup: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """`drive(progress)` within `time_limit` s; then stop the workers, delete the keys, close.

    On timeout the error names the phase and, once counted, how many jobs are still
    `left_word` (saq: incomplete, arq: queued).
    """
    progress: dict[str, Any] = {"phase": "start"}
    try:
        return await asyncio.wait_for(drive(progress), time_limit)
    except TimeoutError as exc:
        raise Failed(
            f"TIMEOUT after {time_limit} s in phase {progress.get('phase')}"
            + (f": {progress['left']} job(s) still {left_word}" if "left" in progress else "")
        ) from exc
    finally:
        stop_workers(procs)
        with contextlib.suppress(Exception):
            await cleanup()
        await close()


async def throughput(
    enqueue_all: Callable[[], Awaitable[T]],
    wait_done: Callable[[], Awaitable[None]],
    progress: dict[str, Any],
) -> tuple[T, float, float]:
    """(what enqueue_all returned, s to enqueue, s from the first enqueue to all done)."""
    progress["phase"] = "enqueue"
    start = time.perf_counter()
    handles = await enqueue_all()
    enqueued = time.perf_counter() - start
    progress["phase"] = "run"
    await wait_done()
    elapsed = time.perf_counter() - start
    return handles, enqueued, elapsed


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    """p50 and p99 by the cluster bench's rule: sorted[len // 2], sorted[int(len * 0.99)]."""
    lat = sorted(samples_ms)
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


async def latency(
    library: str,
    samples: int,
    enqueue_one: Callable[[int], Awaitable[T | None]],
    settle: Callable[[list[T]], Awaitable[None]],
    progress: dict[str, Any],
) -> tuple[float, float]:
    """(p50, p99) ms of `samples` sequential `enqueue_one(i)` acknowledgements.

    `settle(handles)` then waits for those jobs and checks they all completed; a line is printed.
    """
    progress["phase"] = "latency"
    lat = []
    handles = []
    for i in range(samples):
        t0 = time.perf_counter()
        handle = await enqueue_one(i)
        lat.append((time.perf_counter() - t0) * 1000)
        if handle is None:
            raise Failed("a single enqueue was not accepted")
        handles.append(handle)
    p50, p99 = percentiles(lat)
    await settle(handles)
    print(
        f"{library}: single enqueue acknowledgement over {len(lat)} sequential enqueues: "
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms (all {len(handles)} completed)"
    )
    return p50, p99


def summary(
    library: str,
    version: str,
    args: argparse.Namespace,
    elapsed: float,
    enqueued: float,
    p50: float,
    p99: float,
    enqueue_mode: str,
    redis_version: str | None,
    **own: Any,
) -> dict[str, Any]:
    """The last line's JSON object; `own` are a script's own keys, before redis_version."""
    n = args.jobs
    return {
        "library": library,
        "version": version,
        "jobs": n,
        "jobs_per_s": round(n / elapsed, 1),
        "enqueue_p50_ms": round(p50, 3),
        "enqueue_p99_ms": round(p99, 3),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "elapsed_s": round(elapsed, 3),
        "enqueue_jobs_per_s": round(n / enqueued, 1),
        "enqueue_mode": enqueue_mode,
        **own,
        "redis_version": redis_version,
    }


async def tally(
    ids: list[str], labels: Callable[[list[str]], Awaitable[Iterable[str]]]
) -> dict[str, int]:
    """How many of `ids` have each label; `labels(batch)` reads up to 1000 jobs' labels at once."""
    counts: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        for label in await labels(ids[i : i + 1000]):
            counts[label] = counts.get(label, 0) + 1
    return counts


async def unlink_matching(redis: Any, pattern: str) -> None:
    """Delete every key matching `pattern` (SCAN, UNLINK 1000 at a time)."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch = []
    if batch:
        await redis.unlink(*batch)
