"""Speed work must not move a number: pinned fingerprints of what ingest computes and stores.

Each fingerprint is a SHA-256 over the values (floats by `repr`, so bit for bit) of
one chain's snapshot: the levels, every per-strike row, every lake (per-contract)
row, and, for the persisted case, what DuckDB and the Parquet file hold afterwards.
The pinned digests were produced by `fingerprints()` below on the code before the
ingest-speed work (commit 145ed4a, `python -m tests.test_ingest_exact`) with one
correction on top: the GEX profile's near-expiry row fix (issue 16), which moved the
profile digests and the last digits of zero gamma; the same command on that fix alone
and on the merged speed work prints identical digests. A change that makes ingest
faster must leave all of them as they are. If a digest changes on
purpose (a new column, a corrected formula), print the new ones with the same
command and say why in the commit.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.pipeline.snapshot import SnapshotResult, compute_snapshot
from gexdaemon.storage.snapshots import persist_snapshot
from gexdaemon.storage.store import Store, StoreOptions

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_feeds"
SHARED_SPX_CSV = REPO.parent / "shared" / "data" / "cboe" / "spx_quotedata_20220205.csv"
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
JOB = uuid.UUID(int=42)

FILES = {
    "_SPX.json": SAMPLES / "_SPX.json",
    "SPY.json": SAMPLES / "SPY.json",
    "SPX_quotedata.csv": SAMPLES / "SPX_quotedata.csv",
    "SPX_contracts.csv": SAMPLES / "SPX_contracts.csv",
    "SPX_contracts.parquet": SAMPLES / "SPX_contracts.parquet",
    "SPX_strikes.csv": SAMPLES / "SPX_strikes.csv",
    "SPX_strikes.json": SAMPLES / "SPX_strikes.json",
    "SPX_strikes.parquet": SAMPLES / "SPX_strikes.parquet",
    "shared spx_quotedata_20220205.csv": SHARED_SPX_CSV,
}

# Digests of the code before the speed work (see the module docstring).
PINNED: dict[str, dict[str, str]] = {
    "_SPX.json": {
        "levels": "a17d95d1480e7858aafba7e76c7d8dbd",
        "snapshot_row": "ef98c69f72bc1e6e54e1858e14bc1256",
        "model_strikes": "9468341ba4114b81031ff24817b6b721",
        "strikes": "7ce1608255f50013eef50e8a4b5df673",
        "lake": "4db4bc443b6fc286528de667f5f9a35a",
        "profile": "2b970f127bb01b972ef578b56d41018f",
        "db_snapshot": "a02f936a2822fdc5e7a66cf841d6e423",
        "db_strikes": "d01cdceb8d9b8a7ad1155e5d9167b90d",
        "parquet": "4db4bc443b6fc286528de667f5f9a35a",
    },
    "SPY.json": {
        "levels": "a8039541fa738ae225fbb3c547eb479f",
        "snapshot_row": "6504ec9ad51ea4afde4762f37389489a",
        "model_strikes": "554b165f896403b79d89c9d371efa8d3",
        "strikes": "24e626c2e28a3fd43efd3737784418c9",
        "lake": "6213f7a402edbe82af71f52472092d91",
        "profile": "63aee271bdf79908c4aefbd200bb676f",
        "db_snapshot": "34ebe996ce5e1c6654a87738593bc725",
        "db_strikes": "5a479229f03a87d6c0576f8184fe4c41",
        "parquet": "6213f7a402edbe82af71f52472092d91",
    },
    "SPX_quotedata.csv": {
        "levels": "42053368e7ec778850e79f5b4979f8fc",
        "snapshot_row": "c380ea06d2052880fbbbd7bef0fa08bf",
        "model_strikes": "c1a57428881512e37286619c0dde9d2f",
        "strikes": "619a8a11b62274810fa246076adb22a5",
        "lake": "4469206b8653ecdb1fd556bcc89836d2",
        "profile": "034f82a2ca758b511344228d9ff4de40",
        "db_snapshot": "bc96df5c89a520d236c6d3fbaf1a1152",
        "db_strikes": "8e94ca812221507877d4731b665ad728",
        "parquet": "4469206b8653ecdb1fd556bcc89836d2",
    },
    "SPX_contracts.csv": {
        "levels": "99a78b9b425c6f4f480fe40afe411caa",
        "snapshot_row": "9bfb6c7c6df32bb775677b9deb4eb063",
        "model_strikes": "6225ae908bffe325f0a4f483eb1f090e",
        "strikes": "4341a8ae6ad9ac227cb7ae9ab0798066",
        "lake": "ed5ba938bf09f2601852504713ee14c4",
        "profile": "9b1761ef71df1ff16a15ac73ac0f8926",
        "db_snapshot": "90780e64ce3c11bcc67c7b897c876ad4",
        "db_strikes": "f62be5ec76dee5a17b3c5e5cc615083b",
        "parquet": "ed5ba938bf09f2601852504713ee14c4",
    },
    "SPX_contracts.parquet": {
        "levels": "99a78b9b425c6f4f480fe40afe411caa",
        "snapshot_row": "0c132eba0ae90b5abb2a7431eb2b6f4c",
        "model_strikes": "13b675e41ffe619e652d2beb575886f0",
        "strikes": "68388ffb7d661010bfb37a557cd2b816",
        "lake": "78d79be35f963a07d6fc7ce0e5672bad",
        "profile": "9b1761ef71df1ff16a15ac73ac0f8926",
        "db_snapshot": "8d4e57da973bf2d391458e9ff0a05875",
        "db_strikes": "42e45a65e6d5138842b172712bfd50c1",
        "parquet": "78d79be35f963a07d6fc7ce0e5672bad",
    },
    "SPX_strikes.csv": {
        "levels": "8e227d7a0c16e97aee5fe827b8d20143",
        "snapshot_row": "5cf9619c33dd857240aa573c0e705731",
        "model_strikes": "1eb27a1813f83a3967301b8eb6c56246",
        "strikes": "feeaef2dbebdd0d3c19e1dafaa34a062",
        "lake": "95340e75b48ea1ebb161e7a017fdd94c",
        "profile": "c68c468a1d54bff97452c3e0d386140e",
        "db_snapshot": "de2452faffb24fb82dbdd5613e7be203",
        "db_strikes": "3029278bbe2827269d4c2b44a7067f39",
        "parquet": "95340e75b48ea1ebb161e7a017fdd94c",
    },
    "SPX_strikes.json": {
        "levels": "8e227d7a0c16e97aee5fe827b8d20143",
        "snapshot_row": "73b6d77563c336ae8e916ea6b11e830c",
        "model_strikes": "1eb27a1813f83a3967301b8eb6c56246",
        "strikes": "feeaef2dbebdd0d3c19e1dafaa34a062",
        "lake": "95340e75b48ea1ebb161e7a017fdd94c",
        "profile": "c68c468a1d54bff97452c3e0d386140e",
        "db_snapshot": "2995fea5434355a6389bc443d3692271",
        "db_strikes": "3029278bbe2827269d4c2b44a7067f39",
        "parquet": "95340e75b48ea1ebb161e7a017fdd94c",
    },
    "SPX_strikes.parquet": {
        "levels": "8e227d7a0c16e97aee5fe827b8d20143",
        "snapshot_row": "ab2711a82124e649ad186b69cdaf2014",
        "model_strikes": "1eb27a1813f83a3967301b8eb6c56246",
        "strikes": "feeaef2dbebdd0d3c19e1dafaa34a062",
        "lake": "95340e75b48ea1ebb161e7a017fdd94c",
        "profile": "c68c468a1d54bff97452c3e0d386140e",
        "db_snapshot": "4d14b2f82c05adf0caf42ed378f6be51",
        "db_strikes": "3029278bbe2827269d4c2b44a7067f39",
        "parquet": "95340e75b48ea1ebb161e7a017fdd94c",
    },
    "shared spx_quotedata_20220205.csv": {
        "levels": "33a0c9f88e92e567eac629974796cfbb",
        "snapshot_row": "879923fa7eb867ceaa271761132ec58f",
        "model_strikes": "64cb8b473a489033ab601739c93a352a",
        "strikes": "df5e2dae9ff90cb57638e66d01746176",
        "lake": "99d8d997ef76e1a335ef204dbae05f61",
        "profile": "7a848fa03d14b35301a1e03eeac15c78",
        "db_snapshot": "de32dcb7ec51593dde6dcd359ad728a1",
        "db_strikes": "f512332bb79e9f6236060d5a73a888d2",
        "parquet": "99d8d997ef76e1a335ef204dbae05f61",
    },
}

# The shared real chain's levels, spelled out (same origin as PINNED).
SHARED_LEVELS: dict[str, Any] = {
    "total_gex": -20586414836.2614,
    "zero_gamma": 4586.883105934236,
    "zero_gamma_crossings": [4586.883105934236],
    "call_wall": 4700.0,
    "put_wall": 4500.0,
    "abs_gamma_strike": 4500.0,
    "total_open_interest": 13537093,
    "total_volume": 987033,
    "data_quality_score": 0.9997903007429573,
    "strikes": 499,
}


def _digest(parts: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:32]


def _table_parts(table: pa.Table) -> Iterable[Any]:
    yield table.schema.names
    yield [str(t) for t in table.schema.types]
    for name in table.column_names:
        yield name
        yield table.column(name).to_pylist()


def compute(path: Path, *, with_profile: bool = True) -> SnapshotResult:
    return compute_snapshot(
        path,
        job_id=JOB,
        symbol_hint="SPX" if path.suffix == ".parquet" and "strikes" in path.name else None,
        settings=GexSettings(),
        now=NOW,
        context=DomainContext(now=NOW),
        with_profile=with_profile,
    )


def levels_of(result: SnapshotResult) -> dict[str, Any]:
    snap = result.snapshot
    return {
        "total_gex": snap.total_gex,
        "zero_gamma": snap.zero_gamma,
        "zero_gamma_crossings": list(snap.zero_gamma_crossings),
        "call_wall": snap.call_wall,
        "put_wall": snap.put_wall,
        "abs_gamma_strike": snap.abs_gamma_strike,
        "total_open_interest": snap.total_open_interest,
        "total_volume": snap.total_volume,
        "data_quality_score": snap.data_quality_score,
        "strikes": len(snap.strikes),
    }


def computed_fingerprint(result: SnapshotResult) -> dict[str, str]:
    row = dict(result.snapshot_row)
    return {
        "levels": _digest(sorted(levels_of(result).items())),
        "snapshot_row": _digest(sorted(row.items())),
        "model_strikes": _digest(s.model_dump() for s in result.snapshot.strikes),
        "strikes": _digest(_table_parts(result.strikes)),
        "lake": _digest(_table_parts(result.lake)),
        "profile": _digest([result.profile_spots.tolist(), result.profile_gex.tolist()]),
    }


def stored_fingerprint(result: SnapshotResult, root: Path) -> dict[str, str]:
    store = Store.open(
        StoreOptions(path=root / "gex.duckdb", lake_dir=root / "gex", archive_dir=root / "archive")
    )
    try:
        path = persist_snapshot(store, root / "gex", result.record)
        snapshot = store.fetch_sync("SELECT * EXCLUDE (lake_path) FROM gex_snapshots")
        strikes = store.fetch_sync("SELECT * FROM gex_strikes ORDER BY strike_price")
    finally:
        store.close()
    return {
        "db_snapshot": _digest(sorted(snapshot[0].items())),
        "db_strikes": _digest(sorted(r.items()) for r in strikes),
        "parquet": _digest(_table_parts(pq.read_table(path))),
    }


def fingerprints(root: Path) -> dict[str, dict[str, str]]:
    out = {}
    for i, (name, path) in enumerate(FILES.items()):
        if not path.exists():
            continue
        result = compute(path)
        out[name] = {
            **computed_fingerprint(result),
            **stored_fingerprint(result, root / str(i)),
        }
    return out


@pytest.mark.parametrize("name", sorted(FILES))
def test_ingest_numbers_and_stored_rows_are_unchanged(name: str, tmp_path: Path) -> None:
    path = FILES[name]
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared not present)")
    result = compute(path)
    got = {**computed_fingerprint(result), **stored_fingerprint(result, tmp_path)}
    assert got == PINNED[name]


def test_shared_real_chain_levels_are_unchanged() -> None:
    if not SHARED_SPX_CSV.exists():
        pytest.skip(f"{SHARED_SPX_CSV} is absent (../shared not present)")
    assert levels_of(compute(SHARED_SPX_CSV)) == SHARED_LEVELS


if __name__ == "__main__":
    import pprint
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pprint.pprint(fingerprints(Path(tmp)), width=100, sort_dicts=False)
    if SHARED_SPX_CSV.exists():
        pprint.pprint(levels_of(compute(SHARED_SPX_CSV)), width=100, sort_dicts=False)
