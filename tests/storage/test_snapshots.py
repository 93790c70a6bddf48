"""Persisting snapshots to a real DuckDB file and Parquet lake, and reading them back."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.models import DomainContext, ExpiryFilter
from gexdaemon.core.settings import GexSettings
from gexdaemon.pipeline.snapshot import SnapshotResult, compute_snapshot
from gexdaemon.storage import snapshots as snaps
from gexdaemon.storage.store import Store
from tests.storage.seeding import store_options

SAMPLES = Path(__file__).resolve().parents[2] / "sample_feeds"
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def compute(name: str, job: uuid.UUID, **settings: object) -> SnapshotResult:
    return compute_snapshot(
        SAMPLES / name,
        job_id=job,
        symbol_hint=None,
        settings=GexSettings(**settings),  # type: ignore[arg-type]
        now=NOW,
        context=DomainContext(now=NOW),
    )


def count(store: Store, table: str) -> int:
    return int(store.fetch_sync(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def test_persist_writes_the_lake_file_then_the_rows(store: Store, tmp_path: Path) -> None:
    result = compute("SPY.json", uuid.UUID(int=1))
    path = snaps.persist_snapshot(store, tmp_path / "gex", result.record)
    assert path.parent == tmp_path / "gex" / "symbol=SPY" / "date=2026-11-24"
    assert path.name.startswith("snapshot_20261124T204500") and path.exists()
    assert pq.read_table(path).num_rows == result.lake.num_rows
    assert count(store, "gex_snapshots") == 1
    assert count(store, "gex_strikes") == len(result.snapshot.strikes)
    lake = store.fetch_sync("SELECT count(*) AS n, min(symbol) AS s FROM gex_lake")[0]
    assert lake == {"n": result.lake.num_rows, "s": "SPY"}


def test_processing_the_same_job_twice_stores_one_snapshot(store: Store, tmp_path: Path) -> None:
    job = uuid.UUID(int=2)
    first = snaps.persist_snapshot(store, tmp_path / "gex", compute("SPY.json", job).record)
    again = snaps.persist_snapshot(store, tmp_path / "gex", compute("SPY.json", job).record)
    assert first == again
    assert count(store, "gex_snapshots") == 1
    assert count(store, "gex_strikes") == 131
    assert len(list((tmp_path / "gex").rglob("*.parquet"))) == 1
    snaps.persist_snapshot(store, tmp_path / "gex", compute("SPY.json", uuid.UUID(int=3)).record)
    assert count(store, "gex_snapshots") == 2


async def test_async_persist_and_readers(store: Store, tmp_path: Path) -> None:
    lake = tmp_path / "gex"
    a = compute("_NDX.json", uuid.UUID(int=4))
    b = compute("_NDX.json", uuid.UUID(int=5), expiry_filter=ExpiryFilter.EX_NEXT)
    await snaps.persist_snapshot_async(store, lake, a.record)
    await snaps.persist_snapshot_async(store, lake, b.record)
    await snaps.persist_snapshot_async(store, lake, b.record)
    assert count(store, "gex_snapshots") == 2

    loaded = await store.read(lambda cur: snaps.load_snapshot(cur, a.snapshot_id))
    assert loaded is not None
    expected = a.snapshot.model_dump(mode="json")
    for key in ("market_symbol", "spot_price", "total_gex", "zero_gamma", "call_wall", "put_wall"):
        assert loaded[key] == expected[key]
    assert loaded["snapshot_id"] == str(a.snapshot_id)
    assert loaded["snapshot_date"] == "2026-11-24" and loaded["snapshot_time"] == "15:45:00"
    assert loaded["zero_gamma_crossings"] == expected["zero_gamma_crossings"]
    assert loaded["strikes"] == expected["strikes"]
    assert loaded["lake_path"].endswith(".parquet")

    latest_ex = await store.read(lambda cur: snaps.latest_snapshot(cur, "NDX", "ex_next"))
    assert latest_ex is not None and latest_ex["snapshot_id"] == str(b.snapshot_id)
    assert await store.read(lambda cur: snaps.latest_snapshot(cur, "SPX")) is None

    listed = await store.read(
        lambda cur: snaps.list_snapshots(cur, symbol="ndx", date="2026-11-24")
    )
    assert {s["snapshot_id"] for s in listed} == {str(a.snapshot_id), str(b.snapshot_id)}
    assert all("strikes" not in s for s in listed)
    assert await store.read(lambda cur: snaps.list_snapshots(cur, date="2026-11-23")) == []

    history = await store.read(lambda cur: snaps.gex_history(cur, "NDX", 10))
    assert len(history) == 2
    assert {v for _, v in history} == {a.snapshot.total_gex, b.snapshot.total_gex}
    assert history[0][0] == "2026-11-24T20:45:00+00:00"


def test_a_bad_date_filter_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        store.read_sync(lambda cur: snaps.list_snapshots(cur, date="24/11/2026"))


@pytest.mark.parametrize("overlap", [True, False])
def test_a_lake_file_that_cannot_be_written_leaves_no_row(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    if not overlap:
        monkeypatch.setattr(snaps, "OVERLAP_MAX_LAKE_ROWS", 0)

    def disk_full(*_args: object, **_kw: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snaps.lakefs, "write_parquet_atomic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        snaps.persist_snapshot(
            store, tmp_path / "gex", compute("SPY.json", uuid.UUID(int=8)).record
        )
    assert count(store, "gex_snapshots") == 0
    assert count(store, "gex_strikes") == 0


async def test_a_lake_file_that_cannot_be_written_leaves_no_row_async(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_args: object, **_kw: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snaps.lakefs, "write_parquet_atomic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        await snaps.persist_snapshot_async(
            store, tmp_path / "gex", compute("SPY.json", uuid.UUID(int=9)).record
        )
    assert count(store, "gex_snapshots") == 0


def test_the_rows_commit_only_once_the_lake_file_is_durable(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written side by side, the rows still wait for the file: no row ever names a missing file."""
    seen: list[int] = []
    real = snaps.lakefs.write_parquet_atomic

    def slow_write(table: object, final: Path, **kw: object) -> int:
        time.sleep(0.2)  # the writer has long inserted the rows by now
        seen.append(count(store, "gex_snapshots"))  # what a reader sees before the file is done
        return real(table, final, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(snaps.lakefs, "write_parquet_atomic", slow_write)
    path = snaps.persist_snapshot(
        store, tmp_path / "gex", compute("SPY.json", uuid.UUID(int=10)).record
    )
    assert seen == [0]
    assert path.exists() and count(store, "gex_snapshots") == 1


def test_a_database_rebuilt_from_the_lake_answers_as_the_one_that_wrote_it(
    store: Store, tmp_path: Path
) -> None:
    """Each lake file carries its snapshot: a fresh DuckDB over the same lake gets every
    snapshot back, levels and strike rows equal, and a second rebuild adds nothing."""
    lake = tmp_path / "gex"
    written = [
        compute("SPY.json", uuid.UUID(int=11)),
        compute("_SPX.json", uuid.UUID(int=12)),
        compute("SPY.json", uuid.UUID(int=13), expiry_filter=ExpiryFilter.EX_NEXT),
    ]
    for result in written:
        snaps.persist_snapshot(store, lake, result.record)
    before = {
        str(r.snapshot_id): store.read_sync(
            lambda cur, r=r: snaps.load_snapshot(cur, r.snapshot_id)
        )
        for r in (w.record for w in written)
    }
    other = Store.open(replace(store_options(tmp_path / "other"), lake_dir=lake))
    try:
        report = snaps.rebuild_from_lake(other, lake)
        assert (report.files, report.added, report.present) == (3, 3, 0)
        assert report.without_record == report.unreadable == []
        for snapshot_id, expected in before.items():
            again = other.read_sync(lambda cur, i=snapshot_id: snaps.load_snapshot(cur, i))
            assert again == expected
        again = snaps.rebuild_from_lake(other, lake)
        assert (again.added, again.present) == (0, 3)
        assert count(other, "gex_strikes") == count(store, "gex_strikes")
    finally:
        other.close()


def test_a_lake_file_from_before_records_is_reported_not_guessed(
    store: Store, tmp_path: Path
) -> None:
    lake = tmp_path / "gex"
    result = compute("SPY.json", uuid.UUID(int=21))
    path = snaps.persist_snapshot(store, lake, result.record)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({}), path)  # as files were written before
    other = Store.open(replace(store_options(tmp_path / "other"), lake_dir=lake))
    try:
        report = snaps.rebuild_from_lake(other, lake)
        assert (report.added, report.without_record) == (0, [str(path)])
        assert count(other, "gex_snapshots") == 0
    finally:
        other.close()
