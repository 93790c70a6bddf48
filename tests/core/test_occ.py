"""OCC / OSI symbols: every vendor spelling parses, bad ones are flagged, format round-trips."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.occ import (
    OccSymbol,
    format_occ,
    format_occ_symbol,
    parse_occ,
    parse_occ_symbol,
    settlement_styles,
    underlying_of_roots,
)


def test_the_three_spellings_parse_to_the_same_contract() -> None:
    cols = parse_occ(
        pa.array(["AAPL240517P00190000", "AAPL  240517P00190000", "O:AAPL240517P00190000"])
    )
    assert cols.valid.tolist() == [True, True, True]
    assert set(cols.root.to_pylist()) == {"AAPL"}
    assert set(cols.expiry.to_pylist()) == {date(2024, 5, 17)}
    assert set(cols.right.to_pylist()) == {"P"}
    assert set(cols.strike.to_pylist()) == {190.0}


def test_strike_keeps_thousandths_and_roots_may_hold_digits() -> None:
    cols = parse_occ(
        pa.array(["SPY261127C00680500", "BRKB1261218C00500000", "spxw241220c05000000"])
    )
    assert cols.strike.to_pylist() == [680.5, 500.0, 5000.0]
    assert cols.root.to_pylist() == ["SPY", "BRKB1", "SPXW"]
    assert cols.right.to_pylist() == ["C", "C", "C"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "SPX",
        "SPXW241320C05000000",  # month 13
        "SPXW240230C05000000",  # 30 February
        "SPXW230229C05000000",  # 2023 is not a leap year
        "SPXW241220X05000000",  # neither C nor P
        "SPXW241220C0500000",  # 7 strike digits
        "TOOLONGR241220C05000000",  # 8-character root
        "SP-X241220C05000000",
        "SPXW24122OC05000000",  # letter O for a zero
    ],
)
def test_malformed_symbols_are_invalid_and_null(bad: str) -> None:
    cols = parse_occ(pa.array([bad, "SPXW241220C05000000"]))
    assert cols.valid.tolist() == [False, True]
    assert cols.root[0].as_py() is None and cols.expiry[0].as_py() is None
    assert cols.strike[0].as_py() is None and cols.right[0].as_py() is None


def test_leap_day_is_a_valid_expiry() -> None:
    assert parse_occ_symbol("SPX240229C01000000").expiry == date(2024, 2, 29)


def test_null_entries_are_invalid() -> None:
    cols = parse_occ(pa.array([None, "SPX261218P06000000"], type=pa.string()))
    assert cols.valid.tolist() == [False, True]


def test_scalar_parse_error_says_what_a_symbol_looks_like() -> None:
    with pytest.raises(ValueError, match="ROOT \\+ YYMMDD"):
        parse_occ_symbol("not a symbol")


def test_format_builds_the_unpadded_form_and_nulls_impossible_parts() -> None:
    out = format_occ(
        pa.array(["SPXW", "SPY", "SPX", "TOOLONGR"]),
        pa.array([date(2024, 12, 20), date(2026, 11, 27), None, date(2026, 1, 2)]),
        pa.array(["C", "P", "C", "C"]),
        pa.array([5000.0, 680.5, 100.0, 1.0]),
    )
    assert out.to_pylist() == ["SPXW241220C05000000", "SPY261127P00680500", None, None]


roots = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6).filter(
    lambda r: r[0].isalpha()
)
expiries = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
strikes = st.integers(min_value=1, max_value=99_999_999).map(lambda u: u / 1000)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(roots, expiries, st.sampled_from("CP"), strikes), min_size=1, max_size=20)
)
def test_format_then_parse_round_trips(contracts: list[tuple[str, date, str, float]]) -> None:
    symbols = [format_occ_symbol(*c) for c in contracts]
    cols = parse_occ(pa.array(symbols))
    assert cols.valid.all()
    got = list(
        zip(
            cols.root.to_pylist(),
            cols.expiry.to_pylist(),
            cols.right.to_pylist(),
            cols.strike.to_pylist(),
            strict=True,
        )
    )
    assert got == contracts
    rebuilt = format_occ(cols.root, cols.expiry, cols.right, cols.strike)
    assert rebuilt.to_pylist() == symbols
    assert str(OccSymbol(*contracts[0])) == symbols[0]


def test_roots_map_to_underlyings_and_settlement_styles() -> None:
    roots_arr = pa.array(["SPX", "SPXW", "NDX", "NDXP", "RUTW", "SPY", "AAPL"])
    assert underlying_of_roots(roots_arr).to_pylist() == [
        "SPX",
        "SPX",
        "NDX",
        "NDX",
        "RUT",
        "SPY",
        "AAPL",
    ]
    assert settlement_styles(roots_arr).to_pylist() == ["AM", "PM", "AM", "PM", "PM", "PM", "PM"]
