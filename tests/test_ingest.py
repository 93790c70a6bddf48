"""The pipeline end to end on the committed samples: identity, shapes, time handling."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gexdaemon.cli.render import snapshot_text
from gexdaemon.core.chain import ChainError
from gexdaemon.core.models import DomainContext, ExpiryFilter, GammaSource
from gexdaemon.core.settings import GexSettings
from gexdaemon.pipeline.analyze import analyze_file, snapshot_view
from gexdaemon.pipeline.snapshot import compute_snapshot, snapshot_id_for
from gexdaemon.storage.rows import SNAPSHOTS, STRIKES

SAMPLES = Path(__file__).resolve().parent.parent / "sample_feeds"
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CHAINS = {
    "_SPX.json": ("SPX", 6850.25),
    "SPX_quotedata.csv": ("SPX", 6850.25),
    "SPX_contracts.csv": ("SPX", 6850.25),
    "SPX_contracts.parquet": ("SPX", 6850.25),
    "_NDX.json": ("NDX", 24150.75),
    "NDX_quotedata.csv": ("NDX", 24150.75),
    "NDX_contracts.parquet": ("NDX", 24150.75),
    "SPY.json": ("SPY", 684.57),
    "SPY_quotedata.csv": ("SPY", 684.57),
    "SPY_contracts.csv": ("SPY", 684.57),
}


def run(name: str, *, job: uuid.UUID | None = None, now: datetime = NOW, **settings: object):
    return compute_snapshot(
        SAMPLES / name,
        job_id=job or uuid.UUID(int=42),
        symbol_hint=None,
        settings=GexSettings(**settings),  # type: ignore[arg-type]
        now=now,
        context=DomainContext(now=now),
    )


@pytest.mark.parametrize(("name", "expected"), sorted(CHAINS.items()))
def test_every_sample_chain_gives_a_sensible_snapshot(
    name: str, expected: tuple[str, float]
) -> None:
    symbol, spot = expected
    result = run(name)
    snap = result.snapshot
    assert (snap.market_symbol, snap.spot_price) == (symbol, spot)
    assert snap.snapshot_at == datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert snap.data_quality_score > 0.95
    assert snap.zero_gamma is not None and abs(snap.zero_gamma / spot - 1) < 0.1
    for level in (snap.call_wall, snap.put_wall, snap.abs_gamma_strike):
        assert level is not None and abs(level / spot - 1) < 0.1
    assert snap.total_gex < 0  # the samples are generated put-heavy near spot
    assert result.excluded == {}
    assert result.profile_spots.size == 500


def test_snapshot_id_is_derived_from_the_job() -> None:
    job = uuid.UUID("0194f0e0-0000-7000-8000-000000000001")
    a, b = run("SPY.json", job=job), run("SPY.json", job=job)
    assert a.snapshot_id == b.snapshot_id == snapshot_id_for(job)
    assert run("SPY.json", job=uuid.UUID(int=9)).snapshot_id != a.snapshot_id


def test_rows_and_tables_match_the_storage_shapes() -> None:
    result = run("SPY.json")
    assert set(result.snapshot_row) == set(SNAPSHOTS.column_names)
    assert result.strikes.column_names == STRIKES.column_names
    assert result.strikes.cast(STRIKES.arrow_schema()).num_rows == len(result.snapshot.strikes)
    lake = result.lake.column_names
    assert {"snapshot_id", "snapshot_at", "strike_price", "net_gex", "gex_unit"} <= set(lake)
    assert not {"symbol", "date"} & set(lake)  # those come from the hive path
    assert result.lake.num_rows == result.rows_read
    assert set(result.timings_ms) >= {"read_ms", "parse_ms", "validate_ms", "gex_ms", "total_ms"}


def test_an_old_file_computes_the_same_snapshot_whenever_it_is_ingested() -> None:
    today = run("_NDX.json").snapshot
    years_later = run("_NDX.json", now=datetime(2031, 5, 1, tzinfo=UTC)).snapshot
    assert years_later.total_gex == today.total_gex
    assert years_later.zero_gamma == today.zero_gamma
    assert years_later.processed_at == datetime(2031, 5, 1, tzinfo=UTC)


def test_a_file_dated_after_now_is_refused() -> None:
    with pytest.raises(ChainError, match="after now"):
        run("_NDX.json", now=datetime(2026, 11, 24, 20, 0, tzinfo=UTC))


def test_every_number_records_how_it_was_computed() -> None:
    snap = run("_SPX.json", gamma_source=GammaSource.VENDOR, expiry_filter=ExpiryFilter.EX_NEXT)
    row = snap.snapshot_row
    assert (row["gamma_source"], row["expiry_filter"]) == ("vendor", "ex_next")
    assert set(snap.lake.column("gamma_source").to_pylist()) == {"vendor"}
    assert snap.excluded["expiry_filter"] > 0
    all_expiries = run("_SPX.json", gamma_source=GammaSource.VENDOR).snapshot
    assert snap.snapshot.total_open_interest < all_expiries.total_open_interest


def test_zero_dte_on_a_file_without_same_day_expiries_says_so() -> None:
    with pytest.raises(ChainError, match="'0dte' leaves no contract"):
        run("_SPX.json", expiry_filter=ExpiryFilter.ZERO_DTE)


def test_a_missing_file_is_a_chain_error() -> None:
    with pytest.raises(ChainError, match="cannot be read"):
        run("no_such_file.json")


def test_a_symbol_hint_that_the_file_does_not_hold_is_refused() -> None:
    with pytest.raises(ChainError, match="no contract is on NDX"):
        compute_snapshot(
            SAMPLES / "SPY.json",
            job_id=uuid.uuid4(),
            symbol_hint="NDX",
            settings=GexSettings(),
            now=NOW,
            context=DomainContext(now=NOW),
        )


def test_analyze_prints_the_levels_a_trader_reads(tmp_path: Path) -> None:
    chain = tmp_path / "multi.csv"
    chain.write_text(
        "# symbol: SPY\n# spot: 104\n# snapshot_at: 2026-11-24T15:45:00-05:00\n"
        "option,open_interest,iv\n"
        "SPY261224P00090000,1000,0.2\nSPY261224C00100000,1000,0.2\n"
        "SPY261224P00110000,1000,0.2\nSPY261224C00120000,1000,0.2\n"
    )
    result = analyze_file(chain, symbol=None, settings=GexSettings(), now=NOW)
    shape = snapshot_view(result)
    text = snapshot_text(shape, top=2)  # the renderer `gexdaemon gex` uses
    snap = result.snapshot
    assert "SPY  2026-11-24 15:45:00 ET  spot 104.00" in text
    crossings = ", ".join(
        f"{c:,.2f}" + (" *" if c == snap.zero_gamma else "") for c in snap.zero_gamma_crossings
    )
    assert f"(crossings: {crossings}; * nearest spot)" in text
    assert "$ per 1% move" in text and "call wall    100.00    put wall 110.00" in text
    assert "rows         4 read from long_csv; none excluded" in text
    assert "top 2 strikes by |net GEX|" in text
    assert shape["zero_gamma"] == snap.zero_gamma and len(shape["zero_gamma_crossings"]) == 3
    assert shape["source_format"] == "long_csv" and shape["excluded_rows"] == {}
    assert len(shape["strikes"]) == 4 and {"call_gex", "put_gex", "net_gex"} <= set(
        shape["strikes"][0]
    )
