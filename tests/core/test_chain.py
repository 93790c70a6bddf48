"""Column-wise validation of the canonical contract table: every rule, counted by reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.chain import (
    CONTRACT_SCHEMA,
    NUMBER_COLUMNS,
    ChainError,
    RawChain,
    _quality,
    repeated,
    settlement_instants,
    validate_contracts,
    validate_strikes,
)

SNAP = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)  # 15:45 New York
SPOT = 6850.0


def raw(rows: list[dict[str, Any]], **kw: Any) -> RawChain:
    names: list[str] = []
    for r in rows:
        names.extend(k for k in r if k not in names)
    cols = {n: [r.get(n) for r in rows] for n in names}
    cols["source_row"] = list(range(1, len(rows) + 1))
    return RawChain(
        table=pa.table(cols),
        source="test.json",
        format_name="test",
        rows_read=len(rows),
        locate=lambda i: f"data.options[{i}]",
        **kw,
    )


def good(symbol: str = "SPXW261218C06900000", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "occ_symbol": symbol,
        "bid": 40.0,
        "ask": 41.0,
        "iv": 0.14,
        "open_interest": 1200.0,
        "volume": 35.0,
        "delta": -0.45 if symbol[-9:-8] == "P" else 0.45,
        "gamma": 0.002,
    }
    row.update(extra)
    return row


def check(rows: list[dict[str, Any]], underlying: str | None = "SPX", **kw: Any):
    return validate_contracts(raw(rows, **kw), spot=SPOT, snapshot_at=SNAP, underlying=underlying)


def test_a_clean_chain_keeps_every_contract_in_the_canonical_schema() -> None:
    chain = check([good(), good("SPXW261218P06900000")])
    assert chain.contracts.schema == CONTRACT_SCHEMA
    assert chain.contracts.num_rows == 2
    assert chain.excluded == {}
    row = chain.contracts.to_pylist()[0]
    assert row["underlying"] == "SPX" and row["root"] == "SPXW" and row["settlement"] == "PM"
    assert row["strike"] == 6900.0 and row["right"] == "C" and row["open_interest"] == 1200
    assert chain.quality.score == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (good("garbage"), "unparseable_symbol"),
        (good("NDXP261218C20000000"), "other_underlying"),
        (good("SPXW261218C00000000"), "non_positive_strike"),
        (good(bid=float("nan")), "non_finite"),
        (good(gamma=float("inf")), "non_finite"),
        (good(open_interest=1e300), "implausible_value"),
        (good(open_interest=-5.0), "negative_open_interest"),
        (good(volume=-1.0), "negative_volume"),
        (good(ask=-0.05), "negative_price"),
        (good(iv=-0.2), "negative_iv"),
        (good(open_interest=12.5), "fractional_count"),
        (good(bid=42.0, ask=41.0), "bid_above_ask"),
        (good(delta=1.7), "impossible_delta"),
        (good("SPXW261218P06900000", delta=0.3), "impossible_delta"),
        (good(gamma=-0.01), "negative_gamma"),
        (good("SPX261120C06900000"), "expired"),  # the AM monthly settled on 20 November
    ],
)
def test_each_rule_excludes_and_counts(row: dict[str, Any], reason: str) -> None:
    chain = check([good("SPXW261218C07000000"), row])
    assert chain.excluded == {reason: 1}
    assert chain.contracts.num_rows == 1
    if reason not in ("other_underlying", "expired"):
        example = next(p for p in chain.examples if p.rule == reason)
        assert example.path == "test.json: data.options[2]"


def test_first_failing_rule_wins_so_each_row_counts_once() -> None:
    chain = check([good(), good(bid=float("nan"), open_interest=-1.0, delta=3.0)])
    assert chain.excluded == {"non_finite": 1}


def test_duplicates_keep_the_first_and_spx_spxw_stay_distinct() -> None:
    rows = [
        good("SPX261218C06900000", open_interest=100.0),
        good("SPXW261218C06900000", open_interest=200.0),
        good("SPX261218C06900000", open_interest=999.0),
    ]
    chain = check(rows)
    assert chain.excluded == {"duplicate_contract": 1}
    got = {(r["root"], r["open_interest"]) for r in chain.contracts.to_pylist()}
    assert got == {("SPX", 100), ("SPXW", 200)}
    styles = {r["root"]: r["settlement"] for r in chain.contracts.to_pylist()}
    assert styles == {"SPX": "AM", "SPXW": "PM"}


def test_same_day_pm_contract_is_live_but_am_contract_has_settled() -> None:
    # At 15:45 on 24 November: SPXW (16:00) still lives, an AM root settled at 09:30.
    chain = check([good("SPXW261124C06900000"), good("SPX261124C06900000")])
    assert chain.excluded == {"expired": 1}
    assert chain.contracts.column("root").to_pylist() == ["SPXW"]


def test_explicit_columns_complete_without_a_symbol() -> None:
    rows = [
        {
            "underlying": "^NDX",
            "root": "NDXP",
            "expiry": "2026-12-18",
            "right": "call",
            "strike": 24000.0,
            "open_interest": 10.0,
        }
    ]
    table = raw(rows).table.set_column(
        2, "expiry", pa.array([datetime(2026, 12, 18).date()], type=pa.date32())
    )
    chain = validate_contracts(
        RawChain(table, "t.csv", "t", 1, lambda i: f"line {i}"),
        spot=24100.0,
        snapshot_at=SNAP,
        underlying=None,
    )
    row = chain.contracts.to_pylist()[0]
    assert row["occ_symbol"] == "NDXP261218C24000000"
    assert row["underlying"] == "NDX" and row["right"] == "C"
    assert chain.underlying == "NDX"


def test_several_underlyings_without_a_symbol_are_refused_by_name() -> None:
    with pytest.raises(ChainError, match="several underlyings \\(NDX, SPX\\)"):
        check([good(), good("NDXP261218C20000000")], underlying=None)


def test_nothing_usable_is_refused_with_the_reason_and_examples() -> None:
    with pytest.raises(ChainError) as info:
        check([good(open_interest=-1.0), good("junk")])
    err = info.value
    assert "nothing usable" in err.message
    assert "1 negative_open_interest" in err.message and "1 unparseable_symbol" in err.message
    assert {p.rule for p in err.details} == {"negative_open_interest", "unparseable_symbol"}


def test_all_expired_says_to_check_the_timestamp() -> None:
    with pytest.raises(ChainError, match="is the timestamp right"):
        check([good("SPX261120C06900000")])


def test_bad_spot_is_refused() -> None:
    with pytest.raises(ChainError, match="spot"):
        validate_contracts(raw([good()]), spot=float("nan"), snapshot_at=SNAP, underlying="SPX")


def test_quality_formula_by_hand() -> None:
    # 4 rows read: 1 defect (negative OI) and 1 expired (not a defect) -> coverage 2/3.
    # Kept: one complete contract (1.0) and one with only OI and IV (0.35 + 0.35 = 0.7).
    rows = [
        good(),
        {"occ_symbol": "SPXW261218P06800000", "open_interest": 10.0, "iv": 0.15},
        good(open_interest=-1.0),
        good("SPX261120C06900000"),
    ]
    chain = check(rows)
    q = chain.quality
    assert q.coverage == pytest.approx(2 / 3)
    assert q.completeness == pytest.approx((1.0 + 0.7) / 2)
    assert q.consistency == pytest.approx(1.0)  # 40.5 mid for a 6900 call at 6850: in bounds
    assert q.score == pytest.approx(2 / 3 * (0.7 * 0.85 + 0.3 * 1.0))


def test_consistency_flags_quotes_outside_no_arbitrage_bounds() -> None:
    # A deep in-the-money call quoted at 1.00: far below intrinsic (850 points).
    chain = check([good(), good("SPXW261218C06000000", bid=0.95, ask=1.05, delta=0.99)])
    assert chain.quality.consistency == pytest.approx(0.5)


def test_settlement_instants_follow_new_york_dst() -> None:
    days = pa.array([datetime(2026, 7, 17).date(), datetime(2026, 12, 18).date()] * 2)
    styles = pa.array(["AM", "AM", "PM", "PM"])
    got = settlement_instants(days, styles)
    expect = [
        datetime(2026, 7, 17, 13, 30, tzinfo=UTC),  # 09:30 EDT
        datetime(2026, 12, 18, 14, 30, tzinfo=UTC),  # 09:30 EST
        datetime(2026, 7, 17, 20, 0, tzinfo=UTC),
        datetime(2026, 12, 18, 21, 0, tzinfo=UTC),
    ]
    assert got.tolist() == [int(e.timestamp() * 1_000_000) for e in expect]


def test_strike_rows_follow_the_seed_rules() -> None:
    table = pa.table(
        {
            "strike_price": [6800.0, 0.0, 6850.0, 6900.0, 6800.0, 6950.0],
            "call_open_interest": [10.0, 1.0, -3.0, 5.0, 7.0, 2.5],
            "call_bid": [1.0, 1.0, 1.0, 2.0, 1.0, 1.0],
            "call_ask": [1.1, 1.1, 1.1, 1.5, 1.1, 1.1],
            "gamma": [100.0, 1.0, 1.0, 1.0, 5.0, 1.0],
            "source_row": [1, 2, 3, 4, 5, 6],
        }
    )
    checked = validate_strikes(
        table,
        source="s.csv",
        locate=lambda i: f"line {i}",
        rows_read=6,
        excluded={},
        examples=[],
    )
    assert checked.excluded == {
        "non_positive_strike": 1,
        "negative_open_interest": 1,
        "fractional_count": 1,
        "bid_above_ask": 1,
        "duplicate_contract": 1,
    }
    assert checked.columns["strike_price"].tolist() == [6800.0]
    assert checked.columns["gamma"].tolist() == [100.0]
    assert np.isclose(checked.quality.coverage, 1 / 6)


def test_strike_rows_need_an_exposure_column() -> None:
    table = pa.table({"strike_price": [1.0], "call_open_interest": [1.0], "source_row": [1]})
    with pytest.raises(ChainError, match="gamma"):
        validate_strikes(table, source="s.csv", locate=str, rows_read=1, excluded={}, examples=[])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 40), min_size=1, max_size=300))
def test_repeated_marks_every_occurrence_after_the_first(values: list[int]) -> None:
    keys = np.array(values, dtype=np.int64)
    seen: set[int] = set()
    expected = []
    for v in values:
        expected.append(v in seen)
        seen.add(v)
    assert repeated(keys).tolist() == expected


def _quality_by_the_formula(
    numbers: dict[str, np.ndarray],
    strike: np.ndarray,
    is_call: np.ndarray,
    years: np.ndarray,
    spot: float,
) -> tuple[float, float]:
    """The quality score's two ratios written out row by row (the code before the lookup table)."""
    has = {name: ~np.isnan(values) for name, values in numbers.items()}
    with np.errstate(invalid="ignore"):
        gamma_input = (has["iv"] & (numbers["iv"] > 0)) | has["gamma"]
        completeness = float(
            np.mean(
                0.35 * has["open_interest"]
                + 0.35 * gamma_input
                + 0.20 * (has["bid"] & has["ask"])
                + 0.10 * has["volume"]
            )
        )
        bid, ask = numbers["bid"], numbers["ask"]
        two_sided = has["bid"] & has["ask"] & (ask > 0)
    if not two_sided.any():
        return completeness, 1.0
    mid = (bid + ask)[two_sided] / 2
    k = strike[two_sided]
    call = is_call[two_sided]
    intrinsic = np.where(call, np.maximum(spot - k, 0), np.maximum(k - spot, 0))
    tol = (ask - bid)[two_sided] / 2 + 0.005 * spot + 0.10 * k * np.maximum(years[two_sided], 0)
    upper = np.where(call, spot, k) + tol
    return completeness, float(((mid >= intrinsic - tol) & (mid <= upper)).mean())


@pytest.mark.parametrize("n", [1, 7, 1000, 150_000])
def test_quality_score_is_bit_for_bit_the_formula(n: int) -> None:
    rng = np.random.default_rng(n)
    numbers = {}
    for name in NUMBER_COLUMNS:
        values = rng.normal(10, 20, n)
        values[rng.random(n) < rng.random() * 0.5] = np.nan
        numbers[name] = values
    strike, years = rng.uniform(1, 200, n), rng.uniform(-0.1, 2, n)
    is_call, spot = rng.random(n) < 0.5, float(rng.uniform(50, 150))
    got = _quality(
        n, {}, n, numbers=numbers, strike=strike, is_call=is_call, years=years, spot=spot
    )
    assert (got.completeness, got.consistency) == _quality_by_the_formula(
        numbers, strike, is_call, years, spot
    )
