"""CBOE quote-table CSV: header by content, every date-line drift, spreadsheet re-saves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gexdaemon.core.chain import ChainError
from gexdaemon.feeds.cboe_csv import parse_date_line
from tests.feeds.conftest import SAMPLES, ingest_bytes, ingest_sample

HEADER = (
    "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,"
    "Strike,Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest"
)
ROW = (
    "Fri Dec 18 2026,SPX261218C06900000,55.1,0,54.8,55.6,120,0.1412,0.4521,0.0009,1500,"
    "6900.00,SPX261218P06900000,101.2,0,100.5,101.9,80,0.1503,-0.5479,0.0009,2400"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"Date: February 5 2022, 8:09 PM EST"', datetime(2022, 2, 6, 1, 9, tzinfo=UTC)),
        ('"Date: June 11, 2022, 8:47 PM EDT"', datetime(2022, 6, 12, 0, 47, tzinfo=UTC)),
        ('"Date: December 12, 2022 at 8:30 PM EST"', datetime(2022, 12, 13, 1, 30, tzinfo=UTC)),
        ("Date: 11 September 2024 at 12:37 GMT-4", datetime(2024, 9, 11, 16, 37, tzinfo=UTC)),
        (
            "Date: 24 November 2026 at 15:45 GMT-5,Bid: 1",
            datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
        ),
        ('"Date: Nov 24, 2026, 3:45 PM"', datetime(2026, 11, 24, 20, 45, tzinfo=UTC)),  # New York
        ("Date: July 1 2026 12:05 AM UTC", datetime(2026, 7, 1, 0, 5, tzinfo=UTC)),
    ],
)
def test_date_line_variants(line: str, expected: datetime) -> None:
    assert parse_date_line(line) == expected


def test_date_line_without_a_date() -> None:
    assert parse_date_line("Date: soon") is None


def quote_table(*preamble: str, rows: tuple[str, ...] = (ROW,)) -> bytes:
    return ("\n".join([*preamble, HEADER, *rows]) + "\n").encode()


def test_banner_lines_and_thousands_separators() -> None:
    data = quote_table(
        "CBOE Delayed Quotes",
        "",
        "S&P 500 INDEX,Last: 6,850.25,Change: +41.20",
        '"Date: November 24, 2026 at 3:45 PM EST",Bid: 6849.8,Ask: 6850.6,"Volume: 74,482,292"',
        rows=(ROW.replace(",1500,", ',"1,500",'),),
    )
    result = ingest_bytes("quotedata.csv", data)
    snap = result.snapshot
    assert snap.spot_price == 6850.25
    assert snap.snapshot_at == datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert snap.strikes[0].call_open_interest == 1500
    assert snap.strikes[0].put_open_interest == 2400
    assert result.format_name == "cboe_csv"


def test_spreadsheet_resave_with_trailing_commas() -> None:
    pad = "," * 10
    data = quote_table(
        "S&P 500 INDEX,Last: 6850.25,Change: 1" + pad,
        "Date: 24 November 2026 at 15:45 GMT-5,Bid: 1,Ask: 2" + pad,
        rows=(ROW + ",,,", ROW.replace("6900", "6950")),
    )
    result = ingest_bytes("quotedata.csv", data)
    assert [s.strike_price for s in result.snapshot.strikes] == [6900.0, 6950.0]
    assert result.excluded == {}


def test_ragged_rows_are_excluded_with_their_line() -> None:
    data = quote_table(
        "",
        "S&P 500 INDEX,Last: 6850.25,Change: 1",
        '"Date: November 24 2026, 3:45 PM EST"',
        rows=(ROW, ROW.replace("6900", "6950") + ",surplus", ",".join(ROW.split(",")[:10])),
    )
    result = ingest_bytes("quotedata.csv", data)
    assert result.excluded == {"malformed_row": 4}
    assert [p.path for p in result.examples] == ["quotedata.csv: line 6", "quotedata.csv: line 7"]
    assert result.rows_read == 6


def test_unparseable_cell_excludes_the_contract_with_its_line() -> None:
    data = quote_table(
        "",
        "S&P 500 INDEX,Last: 6850.25,Change: 1",
        '"Date: November 24 2026, 3:45 PM EST"',
        rows=(ROW, ROW.replace("6900", "6950").replace(",0.4521,", ",0.45.21,")),
    )
    result = ingest_bytes("quotedata.csv", data)
    assert result.excluded == {"unparseable_number": 1}
    assert result.examples[0].path == "quotedata.csv: line 6"


def test_null_spellings_are_missing_values_not_errors() -> None:
    data = quote_table(
        "",
        "S&P 500 INDEX,Last: 6850.25,Change: 1",
        '"Date: November 24 2026, 3:45 PM EST"',
        rows=(ROW.replace(",0.4521,", ",n/a,"),),
    )
    result = ingest_bytes("quotedata.csv", data)
    assert result.excluded == {}
    assert result.lake.column("delta").to_pylist()[0] is None


def test_a_quote_table_without_a_header_row_is_refused() -> None:
    with pytest.raises(ChainError):
        ingest_bytes("q.csv", b"\nS&P 500 INDEX,Last: 6850.25\n" + ROW.encode() + b"\n")


def test_the_three_committed_drifts_agree_with_their_json(samples: Path) -> None:
    for stem, js in (("SPX", "_SPX.json"), ("NDX", "_NDX.json"), ("SPY", "SPY.json")):
        a = ingest_sample(f"{stem}_quotedata.csv").snapshot
        b = ingest_sample(js).snapshot
        assert a.snapshot_at == b.snapshot_at
        assert a.total_gex == pytest.approx(b.total_gex, rel=1e-9)
        assert a.zero_gamma == pytest.approx(b.zero_gamma, rel=1e-9)
        assert (a.call_wall, a.put_wall) == (b.call_wall, b.put_wall)
    assert (SAMPLES / "SPY_quotedata.csv").read_text().startswith("SPDR")  # no blank line


def test_real_download_parses(shared_spx_csv: Path) -> None:
    result = ingest_bytes(shared_spx_csv.name, shared_spx_csv.read_bytes())
    assert result.rows_read == 20_514
    assert result.snapshot.snapshot_at == datetime(2022, 2, 6, 1, 9, tzinfo=UTC)
