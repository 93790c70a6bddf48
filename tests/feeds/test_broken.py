"""Bad input of every kind comes out as ChainError naming the file, and nothing is stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexdaemon.core.chain import ChainError
from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.feeds.base import FeedFile
from gexdaemon.pipeline.snapshot import compute_snapshot_from_bytes
from gexdaemon.storage.snapshots import persist_snapshot
from gexdaemon.storage.store import Store, StoreOptions
from tests.feeds.conftest import NOW, SAMPLES, ingest_bytes

BROKEN = SAMPLES / "broken"

REFUSED = {
    "truncated_SPX.json": "truncated",
    "empty.csv": "is empty",
    "whitespace.json": "is empty",
    "binary_junk.csv": "is binary",
    "not_a_chain.csv": "not a supported option-chain format",
    "not_a_chain.json": "not a supported option-chain format",
    "wrong_type_SPX.json": "data.options[17].bid",
    "huge_numbers_SPX.json": "implausible_value",
    "future_dated_SPX.json": "after now",
    "no_header_quotedata.csv": "not a supported option-chain format",
    "all_expired_quotedata.csv": "expired",
    "no_spot_strikes.csv": "spot",
}
PARTLY_USABLE = {"ragged_rows_quotedata.csv": "malformed_row"}


def test_every_broken_sample_is_listed() -> None:
    assert {p.name for p in BROKEN.iterdir()} == set(REFUSED) | set(PARTLY_USABLE)


@pytest.mark.parametrize(("name", "says"), sorted(REFUSED.items()))
def test_broken_file_is_refused_with_file_and_reason(name: str, says: str) -> None:
    with pytest.raises(ChainError) as info:
        ingest_bytes(name, (BROKEN / name).read_bytes())
    err = info.value
    assert err.message.startswith(f"{name}: ")
    assert says in err.message
    assert err.code == "chain_invalid"


def test_ragged_rows_are_counted_and_the_rest_computes() -> None:
    result = ingest_bytes("r.csv", (BROKEN / "ragged_rows_quotedata.csv").read_bytes())
    assert result.excluded["malformed_row"] > 0
    assert result.snapshot.data_quality_score < 0.8


# ---------------------------------------------------------------------------
# Property tests: mutate real samples; only ChainError may come out, and a refused file
# leaves nothing in the store.
# ---------------------------------------------------------------------------

SMALL = {
    "json": (SAMPLES / "_NDX.json").read_bytes(),
    "quote": (SAMPLES / "NDX_quotedata.csv").read_bytes(),
    "long": (SAMPLES / "SPY_contracts.csv").read_bytes()[:60_000],
    "strikes": (SAMPLES / "SPX_strikes.csv").read_bytes(),
    "parquet": (SAMPLES / "NDX_contracts.parquet").read_bytes(),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    root = tmp_path_factory.mktemp("broken-store")
    opened = Store.open(
        StoreOptions(path=root / "gex.duckdb", lake_dir=root / "gex", archive_dir=root / "archive")
    )
    yield opened, root / "gex"
    opened.close()


def attempt(name: str, data: bytes, store: tuple[Store, Path]) -> bool:
    """Compute and, if that works, persist; True when a snapshot was stored."""
    try:
        result = compute_snapshot_from_bytes(
            FeedFile(name=name, data=data),
            job_id=uuid.uuid4(),
            settings=GexSettings(profile_points=60),
            now=NOW,
            context=DomainContext(now=NOW),
        )
    except ChainError as err:
        assert err.message.startswith(f"{name}: ")
        return False
    persist_snapshot(store[0], store[1], result.record)
    return True


def stored(store: tuple[Store, Path]) -> int:
    return int(store[0].fetch_sync("SELECT count(*) AS n FROM gex_snapshots")[0]["n"])


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=40)
    ),
    st.tuples(st.just("splice"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
)


def mutate(data: bytes, how: tuple) -> bytes:
    kind = how[0]
    if kind == "truncate":
        return data[: int(len(data) * how[1])]
    if kind == "flip":
        buf = bytearray(data)
        for where, xor in how[1]:
            i = min(int(where * len(buf)), len(buf) - 1)
            buf[i] ^= xor
        return bytes(buf)
    at = int(how[1] * len(data))
    return data[:at] + how[2] + data[at:]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(which=st.sampled_from(sorted(SMALL)), how=mutation)
def test_mutated_files_only_raise_chain_error(
    which: str, how: tuple, store: tuple[Store, Path]
) -> None:
    before = stored(store)
    ok = attempt(f"{which}.bin", mutate(SMALL[which], how), store)
    assert stored(store) == before + (1 if ok else 0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["bid", "ask", "iv", "open_interest", "volume", "delta", "gamma"]),
    value=st.one_of(
        st.floats(allow_nan=False),
        st.sampled_from([1e308, -1e308, 1e300, 0.0, -0.0]),
        st.integers(-(2**70), 2**70),
    ),
    rows=st.lists(st.integers(0, 500), min_size=1, max_size=30),
)
def test_huge_and_hostile_numbers_only_raise_chain_error(
    field: str, value: float, rows: list[int], store: tuple[Store, Path]
) -> None:
    doc = msgspec.json.decode(SMALL["json"])
    for i in rows:
        doc["data"]["options"][i][field] = value
    before = stored(store)
    ok = attempt("_NDX.json", msgspec.json.encode(doc), store)
    assert stored(store) == before + (1 if ok else 0)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drop=st.sets(st.integers(0, 21), min_size=1, max_size=8))
def test_dropped_quote_table_columns_only_raise_chain_error(
    drop: set[int], store: tuple[Store, Path]
) -> None:
    lines = SMALL["quote"].decode().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("Expiration Date,"))
    out = lines[:header_at]
    for line in lines[header_at:]:
        cells = line.split(",")
        out.append(",".join(c for i, c in enumerate(cells) if i not in drop))
    before = stored(store)
    ok = attempt("q.csv", ("\n".join(out) + "\n").encode(), store)
    assert stored(store) == before + (1 if ok else 0)
