"""The intake journal: a new request is durable once synced there, and the store replays it.

The SIGKILL test in test_store.py kills a real writer process mid-stream through
`Store.accept`; these tests take each crash case apart: synced but not yet in DuckDB,
a torn append at the end, damage in an older segment, a replay of what DuckDB already
holds, and a record DuckDB refuses.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from gexdaemon.core.models import JobStatus, ProcessingJob
from gexdaemon.storage import journal as jr
from gexdaemon.storage.jobs import load_job, load_request
from gexdaemon.storage.store import PutJob, PutRequest, Store
from tests.storage.seeding import store_options
from tests.storage.test_store import CTX, T0, make_request


def new_job(i: int) -> tuple[PutRequest, PutJob]:
    req = make_request(i)
    job, event = ProcessingJob.for_request(req, T0, context=CTX)
    return PutRequest(req), PutJob(job, event)


def journal_only(data_dir: Path, changes: list[tuple[PutRequest, PutJob]]) -> None:
    """What a crash right after the sync leaves: records synced, DuckDB never told."""
    journal = jr.Journal(store_options(data_dir).journal_dir)
    journal.start(jr.next_segment_no(store_options(data_dir).journal_dir))
    for pair in changes:
        _seq, synced = journal.append_sync([r for c in pair for r in c.journal_rows()])
        synced.result(timeout=10)
    journal.close(all_applied=False)


def test_a_request_synced_but_never_committed_is_there_after_the_restart(tmp_path: Path) -> None:
    Store.open(store_options(tmp_path)).close()  # a database that exists, as after any first start
    pairs = [new_job(i) for i in range(5)]
    journal_only(tmp_path, pairs)
    assert jr.segments_in(store_options(tmp_path).journal_dir)

    store = Store.open(store_options(tmp_path))
    try:
        assert store.journal_replay is not None and store.journal_replay.records == 5
        for put_request, put_job in pairs:
            assert store.read_sync(load_request, put_request.request.request_id) == (
                put_request.request
            )
            job = store.read_sync(load_job, put_job.job.job_id)
            assert job is not None and job.status is JobStatus.QUEUED
        # Replayed and committed: no record is left to replay twice.
        left = [jr.read_segment(p)[0] for p in jr.segments_in(store_options(tmp_path).journal_dir)]
        assert left in ([], [[]])
    finally:
        store.close()


def test_a_replay_never_undoes_what_the_database_already_holds(tmp_path: Path) -> None:
    pairs = [new_job(i) for i in range(3)]
    store = Store.open(store_options(tmp_path))
    put_request, put_job = pairs[0]
    store.commit_sync([put_request, put_job])
    running, event = put_job.job.transition(
        JobStatus.PROCESSING, T0 + timedelta(seconds=1), context=CTX
    )
    store.commit_sync([PutJob(running, event, previous=put_job.job)])
    store.close()
    journal_only(tmp_path, pairs)  # the first job's creation is journaled again

    store = Store.open(store_options(tmp_path))
    try:
        job = store.read_sync(load_job, put_job.job.job_id)
        assert job is not None and job.status is JobStatus.PROCESSING  # not back to queued
        for _req, other in pairs[1:]:
            assert store.read_sync(load_job, other.job.job_id) is not None
    finally:
        store.close()


def test_a_torn_append_at_the_end_is_dropped_and_the_whole_records_kept(tmp_path: Path) -> None:
    Store.open(store_options(tmp_path)).close()
    pairs = [new_job(i) for i in range(3)]
    journal_only(tmp_path, pairs)
    folder = store_options(tmp_path).journal_dir
    (segment,) = jr.segments_in(folder)
    torn = jr.encode([r for c in new_job(99) for r in c.journal_rows()])
    with segment.open("ab") as fh:
        fh.write(torn[: len(torn) // 2])  # the process died inside this write: never acked

    store = Store.open(store_options(tmp_path))
    try:
        replay = store.journal_replay
        assert replay is not None and replay.records == 3 and replay.damaged == []
        count = store.fetch_sync("SELECT count(*) AS n FROM processing_jobs")[0]["n"]
        assert count == 3
    finally:
        store.close()


def test_damage_in_an_older_segment_is_set_aside_never_deleted(tmp_path: Path) -> None:
    Store.open(store_options(tmp_path)).close()
    journal_only(tmp_path, [new_job(i) for i in range(2)])
    journal_only(tmp_path, [new_job(i) for i in range(10, 12)])  # a second, newer segment
    folder = store_options(tmp_path).journal_dir
    older, _newer = jr.segments_in(folder)
    data = bytearray(older.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte inside the last record of the older segment
    older.write_bytes(bytes(data))

    store = Store.open(store_options(tmp_path))
    try:
        replay = store.journal_replay
        assert replay is not None
        (kept,) = replay.damaged
        assert kept.exists() and kept.name.startswith(older.name + ".damaged-")
        assert kept.read_bytes() == bytes(data)  # as found, for whoever looks into it
        count = store.fetch_sync("SELECT count(*) AS n FROM processing_jobs")[0]["n"]
        assert count == 3  # the older segment's first record and both of the newer one
    finally:
        store.close()


def test_an_accepted_request_is_readable_at_once(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        store = Store.open(store_options(tmp_path))
        try:
            seen = []
            for i in range(20):
                put_request, put_job = new_job(i)
                await store.accept([put_request, put_job])
                seen.append(await store.read(load_job, put_job.job.job_id) is not None)
            return seen
        finally:
            store.close()

    assert asyncio.run(scenario()) == [True] * 20
    assert jr.segments_in(store_options(tmp_path).journal_dir) == []  # a clean close leaves none


def test_a_record_the_database_refuses_is_kept_with_the_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store.open(store_options(tmp_path))
        try:
            _req, orphan = new_job(1)  # a job whose request was never written
            await store.accept([orphan])
            await store.read(load_job, orphan.job.job_id)  # waits until the writer is done
        finally:
            store.close()

    asyncio.run(scenario())
    (refused,) = store_options(tmp_path).journal_dir.glob("refused-*.json")
    kept = json.loads(refused.read_text())
    assert kept["reason"].startswith("write refused by the database")
    assert kept["record"]["processing_jobs"][0]["status"] == "queued"


def test_a_record_refused_at_replay_is_kept_and_the_store_still_opens(tmp_path: Path) -> None:
    Store.open(store_options(tmp_path)).close()
    folder = store_options(tmp_path).journal_dir
    journal = jr.Journal(folder)
    journal.start(jr.next_segment_no(folder))
    good = new_job(1)
    _req, orphan = new_job(2)  # its request was never written: the database refuses it
    for changes in ([*good], [orphan]):
        journal.append_sync([r for c in changes for r in c.journal_rows()])[1].result(10)
    journal.close(all_applied=False)

    store = Store.open(store_options(tmp_path))
    try:
        replay = store.journal_replay
        assert replay is not None and replay.records == 2 and len(replay.refused) == 1
        assert store.read_sync(load_job, good[1].job.job_id) is not None
        assert store.read_sync(load_job, orphan.job.job_id) is None
        kept = json.loads(replay.refused[0].read_text())
        assert kept["record"]["processing_jobs"][0]["job_id"] == str(orphan.job.job_id)
    finally:
        store.close()


def test_an_idempotency_key_is_replayed_with_its_request(tmp_path: Path) -> None:
    from gexdaemon.storage.idempotency import keys_since
    from gexdaemon.storage.store import PutIdempotencyKey

    Store.open(store_options(tmp_path)).close()
    folder = store_options(tmp_path).journal_dir
    journal = jr.Journal(folder)
    journal.start(jr.next_segment_no(folder))
    put_request, put_job = new_job(1)
    key = PutIdempotencyKey(
        "retry-1", "f" * 32, put_request.request.request_id, put_job.job.job_id, T0
    )
    changes = [put_request, put_job, key]
    journal.append_sync([r for c in changes for r in c.journal_rows()])[1].result(10)
    journal.close(all_applied=False)

    store = Store.open(store_options(tmp_path))
    try:
        (use,) = store.read_sync(keys_since, T0 - timedelta(hours=1))
        assert (use.key, use.job_id, use.request_id) == (
            "retry-1",
            put_job.job.job_id,
            put_request.request.request_id,
        )
    finally:
        store.close()
