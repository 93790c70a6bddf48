"""The Parquet lake: atomic writes, hive layout, and the DuckDB view over it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gexdaemon.storage import lake
from gexdaemon.storage.store import Store, StoreOptions

AT = datetime(2026, 11, 26, 15, 30, 12, 123456, tzinfo=UTC)


def strikes_table(n: int = 10, symbol_id: uuid.UUID | None = None) -> pa.Table:
    sid = str(symbol_id or uuid.uuid4())
    return pa.table(
        {
            "snapshot_id": [sid] * n,
            "snapshot_at": pa.array([AT] * n, pa.timestamp("us", tz="UTC")),
            "strike_price": [4000.0 + 5 * i for i in range(n)],
            "net_gex": [float(i - n // 2) * 1e8 for i in range(n)],
        }
    )


def test_snapshot_paths_use_hive_partitions(tmp_path: Path) -> None:
    sid = uuid.UUID("6f1d4c9a-0000-4000-8000-0000000000aa")
    path = lake.snapshot_path(tmp_path, "SPX", date(2026, 11, 26), AT, sid)
    assert (
        path
        == tmp_path
        / "symbol=SPX"
        / "date=2026-11-26"
        / "snapshot_20261126T153012123456Z_6f1d4c9a0000.parquet"
    )


def test_atomic_write_leaves_a_complete_file_and_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "symbol=SPX" / "date=2026-11-26" / "snapshot_x.parquet"
    size = lake.write_parquet_atomic(strikes_table(), final)
    assert size == final.stat().st_size > 0
    assert pq.read_table(final).num_rows == 10
    assert lake.stale_temporaries(tmp_path) == []


def test_a_failed_write_leaves_nothing_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "snap.parquet"

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", broken)  # the lake loads pyarrow.parquet when it writes
    with pytest.raises(OSError, match="No space"):
        lake.write_parquet_atomic(strikes_table(), final)
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


WRITER = """
import sys, itertools, pyarrow as pa
from pathlib import Path
from gexdaemon.storage.lake import write_parquet_atomic
root = Path(sys.argv[1])
big = pa.table({"x": list(range(400_000)), "y": [float(i) for i in range(400_000)]})
print("READY", flush=True)
for i in itertools.count():
    write_parquet_atomic(big, root / f"f{i % 5}.parquet")
"""


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_a_torn_file(tmp_path: Path) -> None:
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for final in tmp_path.glob("f*.parquet"):
            assert pq.read_table(final).num_rows == 400_000  # complete, or not there at all
    lake.remove_stale_temporaries(tmp_path)
    assert not list(tmp_path.glob(".*"))


def test_the_lake_view_exists_before_and_after_the_first_file(tmp_path: Path) -> None:
    store = Store.open(
        StoreOptions(
            path=tmp_path / "gex.duckdb",
            lake_dir=tmp_path / "gex",
            archive_dir=tmp_path / "archive",
        )
    )
    try:
        assert store.fetch_sync("SELECT count(*) AS n FROM gex_lake")[0]["n"] == 0
        for symbol, day in (
            ("SPX", date(2026, 11, 25)),
            ("SPX", date(2026, 11, 26)),
            ("NDX", date(2026, 11, 26)),
        ):
            sid = uuid.uuid4()
            lake.write_parquet_atomic(
                strikes_table(4, sid),
                lake.snapshot_path(store.options.lake_dir, symbol, day, AT, sid),
            )
        store.refresh_views().result()
        rows = store.fetch_sync(
            "SELECT symbol, date, count(*) AS n FROM gex_lake WHERE symbol = 'SPX' GROUP BY ALL ORDER BY date"
        )
        assert rows == [
            {"symbol": "SPX", "date": date(2026, 11, 25), "n": 4},
            {"symbol": "SPX", "date": date(2026, 11, 26), "n": 4},
        ]
    finally:
        store.close()
