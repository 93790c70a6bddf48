"""Strike-level files in the seed's GEXStrike shape, in all four encodings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gexdaemon.core.chain import ChainError
from gexdaemon.core.models import GammaSource, GexUnit, SignModel
from gexdaemon.core.settings import GexSettings
from tests.feeds.conftest import ingest_bytes, ingest_sample

FILES = ("SPX_strikes.csv", "SPX_strikes.json", "SPX_strikes.ndjson", "SPX_strikes.parquet")


def test_all_four_encodings_give_the_same_snapshot() -> None:
    snaps = [ingest_sample(name).snapshot for name in FILES]
    first = snaps[0]
    for snap in snaps[1:]:
        assert snap.model_dump(exclude={"snapshot_id"}) == first.model_dump(exclude={"snapshot_id"})
    assert first.market_symbol == "SPX"
    assert first.snapshot_at == datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert first.gamma_source is GammaSource.MODEL  # as the file's metadata says
    assert first.zero_gamma is None  # no contracts: no profile


def test_levels_match_the_chain_the_file_was_made_from() -> None:
    from_strikes = ingest_sample("SPX_strikes.parquet").snapshot
    from_chain = ingest_sample("_SPX.json").snapshot
    assert from_strikes.total_gex == pytest.approx(from_chain.total_gex, rel=1e-6)
    assert (from_strikes.call_wall, from_strikes.put_wall, from_strikes.abs_gamma_strike) == (
        from_chain.call_wall,
        from_chain.put_wall,
        from_chain.abs_gamma_strike,
    )
    assert from_strikes.total_open_interest == from_chain.total_open_interest


def test_units_and_signs_are_converted_to_the_settings() -> None:
    base = ingest_sample("SPX_strikes.json").snapshot
    per_point = ingest_sample("SPX_strikes.json", GexSettings(unit=GexUnit.USD_PER_POINT)).snapshot
    assert per_point.total_gex == pytest.approx(base.total_gex / (base.spot_price * 0.01))
    flipped = ingest_sample(
        "SPX_strikes.json", GexSettings(sign_model=SignModel.DEALER_SHORT_CALLS_LONG_PUTS)
    ).snapshot
    assert flipped.total_gex == pytest.approx(-base.total_gex)
    assert flipped.strikes[0].delta == pytest.approx(-base.strikes[0].delta)
    # Short both: calls flip, puts do not; the file's net delta/theta/vega cannot follow.
    with pytest.raises(ChainError, match="cannot be converted"):
        ingest_sample("SPX_strikes.json", GexSettings(sign_model=SignModel.DEALER_SHORT_BOTH))


def test_gamma_only_rows_need_the_file_sign_model() -> None:
    csv = (
        b"# symbol: SPX\n# spot_price: 6850\n# snapshot_at: 2026-11-24T20:45:00Z\n"
        b"strike_price,call_open_interest,put_open_interest,gamma\n"
        b"6800,1200,3400,-1520.5\n6850,2400,800,3050.25\n"
    )
    snap = ingest_bytes("s.csv", csv).snapshot
    assert snap.total_gex == pytest.approx((3050.25 - 1520.5) * 6850**2 * 0.01)
    assert snap.call_wall is None  # no call/put split: no walls
    with pytest.raises(ChainError, match="sign_model"):
        ingest_bytes("s.csv", csv, GexSettings(sign_model=SignModel.DEALER_SHORT_BOTH))


def test_spot_and_time_from_the_request_when_the_file_has_none() -> None:
    csv = (
        b"strike_price,call_open_interest,put_open_interest,gamma\n"
        b"6800,1200,3400,-1520.5\n6850,2400,800,3050.25\n"
    )
    with pytest.raises(ChainError, match="spot"):
        ingest_bytes("s.csv", csv, symbol_hint="SPX")
    snap = ingest_bytes(
        "s.csv",
        csv,
        symbol_hint="SPX",
        spot_hint=6850.0,
        snapshot_at_hint=datetime(2026, 11, 24, 21, tzinfo=UTC),
    ).snapshot
    assert snap.spot_price == 6850.0


def test_a_bad_metadata_value_names_its_key() -> None:
    body = b'{"spot_price": 6850, "snapshot_at": "2026-11-24T20:45:00Z", "symbol": "SPX", '
    body += b'"gex_unit": "usd_per_moon", "strikes": [{"strike_price": 6800, "gamma": 1.0, '
    body += b'"call_open_interest": 1}]}'
    with pytest.raises(ChainError, match=r"metadata\.gex_unit"):
        ingest_bytes("s.json", body)
