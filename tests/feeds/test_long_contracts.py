"""Long contract files (CSV, Parquet): columns by name, OCC symbol or explicit identity."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gexdaemon.core.chain import ChainError
from tests.feeds.conftest import ingest_bytes, ingest_sample


def test_symbol_and_explicit_identity_files_agree() -> None:
    by_symbol = ingest_sample("SPX_contracts.csv").snapshot
    by_fields = ingest_sample("SPX_contracts.parquet").snapshot
    assert by_symbol.total_gex == pytest.approx(by_fields.total_gex, rel=1e-12)
    assert by_symbol.zero_gamma == pytest.approx(by_fields.zero_gamma, rel=1e-12)
    assert [s.strike_price for s in by_symbol.strikes] == [
        s.strike_price for s in by_fields.strikes
    ]


def test_header_names_are_matched_loosely_and_metadata_lines_give_spot_and_time() -> None:
    csv = (
        b"# symbol: SPY\n"
        b"# spot: 684.57\n"
        b"# snapshot_at: 2026-11-24 15:45\n"  # naive: New York time
        b"Option Symbol,Bid,Ask,Open Interest,Implied Volatility,Volume\n"
        b"SPY261218C00690000,5.1,5.2,1200,0.14,30\n"
        b"SPY261218P00680000,4.9,5.0,2100,0.15,12\n"
    )
    result = ingest_bytes("contracts.csv", csv)
    snap = result.snapshot
    assert result.format_name == "long_csv"
    assert snap.market_symbol == "SPY" and snap.spot_price == 684.57
    assert snap.snapshot_at == datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert snap.total_open_interest == 3300


def test_explicit_columns_with_vendor_spellings_in_parquet() -> None:
    table = pa.table(
        {
            "underlying_symbol": ["NDX", "NDX"],
            "root": ["NDXP", "NDX"],
            "expiration_date": pa.array([date(2026, 12, 18)] * 2, type=pa.date32()),
            "strike_price": [24000.0, 24000.0],
            "put_call": ["C", "C"],
            "open_interest": [100, 200],
            "iv": [0.18, 0.18],
            "underlying_price": [24150.75, 24150.75],
            "quote_time": pa.array(
                [datetime(2026, 11, 24, 20, 45, tzinfo=UTC)] * 2, type=pa.timestamp("us", tz="UTC")
            ),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    result = ingest_bytes("ndx.parquet", buf.getvalue())
    assert result.format_name == "long_parquet"
    assert set(result.lake.column("occ_symbol").to_pylist()) == {
        "NDXP261218C24000000",
        "NDX261218C24000000",
    }
    assert set(result.lake.column("settlement").to_pylist()) == {"AM", "PM"}
    assert result.snapshot.strikes[0].call_open_interest == 300


def test_request_hints_fill_what_the_file_lacks_and_the_file_wins() -> None:
    csv = b"option,open_interest,iv\nSPY261218C00690000,100,0.14\n"
    hinted = ingest_bytes(
        "c.csv",
        csv,
        spot_hint=684.0,
        snapshot_at_hint=datetime(2026, 11, 24, 21, 0, tzinfo=UTC),
    ).snapshot
    assert hinted.spot_price == 684.0
    with_meta = b"# spot: 690.5\n# snapshot_at: 2026-11-24T20:00:00Z\n" + csv
    snap = ingest_bytes(
        "c.csv", with_meta, spot_hint=684.0, snapshot_at_hint=datetime(2026, 11, 24, 21, tzinfo=UTC)
    ).snapshot
    assert snap.spot_price == 690.5
    assert snap.snapshot_at == datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


def test_missing_timestamp_is_refused_with_what_to_add() -> None:
    with pytest.raises(ChainError, match="snapshot_at header/metadata field"):
        ingest_bytes(
            "c.csv", b"option,open_interest,iv\nSPY261218C00690000,100,0.14\n", spot_hint=684.0
        )


def test_an_opra_scale_file_takes_the_requested_underlying() -> None:
    csv = (
        b"# spot: 684.57\n# snapshot_at: 2026-11-24T20:45:00Z\n"
        b"option,open_interest,iv\n"
        b"SPY261218C00690000,100,0.14\n"
        b"AAPL261218C00250000,400,0.3\n"
        b"QQQ261218C00600000,50,0.2\n"
    )
    with pytest.raises(ChainError, match="several underlyings"):
        ingest_bytes("opra.csv", csv)
    result = ingest_bytes("opra.csv", csv, symbol_hint="SPY")
    assert result.excluded == {"other_underlying": 2}
    # Other underlyings are not defects: coverage stays 1; no quotes or volume: completeness 0.7.
    assert result.snapshot.data_quality_score == pytest.approx(0.7 * 0.7 + 0.3 * 1.0)


def test_malformed_csv_rows_are_counted_with_their_line() -> None:
    csv = (
        b"# spot: 684.57\n# snapshot_at: 2026-11-24T20:45:00Z\n"
        b"option,open_interest,iv\n"
        b"SPY261218C00690000,100,0.14\n"
        b"SPY261218C00700000,100\n"
        b"SPY261218P00680000,300,0.15,extra\n"
        b"SPY261218P00670000,300,0.16\n"
    )
    result = ingest_bytes("c.csv", csv)
    assert result.excluded == {"malformed_row": 2}
    assert sorted(p.path for p in result.examples) == ["c.csv: line 5", "c.csv: line 6"]
    assert result.snapshot.total_open_interest == 400
