"""A writer process for the SIGKILL durability test: commits job transitions, prints each ack.

Run: python -m tests.storage.killable_writer DATA_DIR [commit|accept]. Prints
`ACK <job_id> <status>` after each commit returns (the caller was told "durable") and
flushes stdout, until killed. With `accept`, new jobs go in the way intake writes them
(`Store.accept`: acknowledged once the intake journal has synced them).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gexdaemon.core.models import DomainContext, JobStatus
from gexdaemon.storage.store import PutJob, PutRequest, Store
from tests.storage.seeding import queued_job, store_options

START = datetime(2026, 11, 1, tzinfo=UTC)
CTX = DomainContext(now=datetime(2030, 1, 1, tzinfo=UTC))


async def worker(store: Store, n: int, how: str) -> None:
    i = 0
    while True:
        i += 1
        req, job, event = queued_job(f"http://127.0.0.1:9/feeds/{n}/{i}.json", START, context=CTX)
        if how == "accept":
            await store.accept([PutRequest(req), PutJob(job, event)])
        else:
            await store.commit([PutRequest(req), PutJob(job, event)])
        print(f"ACK {job.job_id} queued", flush=True)
        t = START
        for target in (JobStatus.PROCESSING, JobStatus.COMPLETED):
            t += timedelta(seconds=1)
            job, event = job.transition(target, t, context=CTX)
            await store.commit([PutJob(job, event)])
            print(f"ACK {job.job_id} {target.value}", flush=True)


async def main(data_dir: Path, how: str) -> None:
    store = Store.open(store_options(data_dir, window_ms=0.5))
    print("READY", flush=True)
    await asyncio.gather(*(worker(store, n, how) for n in range(32)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "commit"))
