"""The GEX engine on chains small enough to check by hand."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.chain import ChainError, RawChain, validate_contracts
from gexdaemon.core.gex import (
    _Profile,
    bs_gamma,
    compute_gex,
    expiry_filter_mask,
    is_monthly_expiry,
)
from gexdaemon.core.models import ExpiryFilter, GammaSource, GexUnit, SignModel
from gexdaemon.core.settings import GexSettings

SNAP = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)  # Tuesday 15:45 New York
SETTLE_DEC24 = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)  # 16:00 New York
YEARS = (SETTLE_DEC24 - SNAP).total_seconds() / (365 * 86400)


def contracts(rows: list[dict[str, Any]], spot: float, underlying: str = "SPY") -> pa.Table:
    names = sorted({k for r in rows for k in r})
    cols = {n: [r.get(n) for r in rows] for n in names}
    cols["source_row"] = list(range(len(rows)))
    raw = RawChain(pa.table(cols), "t", "t", len(rows), str)
    return validate_contracts(raw, spot=spot, snapshot_at=SNAP, underlying=underlying).contracts


def option(
    right: str, strike: float, oi: float, iv: float = 0.2, expiry: str = "261224", **kw: Any
):
    return {
        "occ_symbol": f"SPY{expiry}{right}{round(strike * 1000):08d}",
        "open_interest": oi,
        "iv": iv,
        **kw,
    }


def textbook_gamma(s: float, k: float, t: float, sigma: float, r: float = 0.0, q: float = 0.0):
    d1 = (math.log(s / k) + (r - q + sigma**2 / 2) * t) / (sigma * math.sqrt(t))
    return (
        math.exp(-q * t)
        * math.exp(-(d1**2) / 2)
        / math.sqrt(2 * math.pi)
        / (s * sigma * math.sqrt(t))
    )


def test_one_call_by_hand_in_every_unit() -> None:
    table = contracts([option("C", 100, 1000)], spot=100.0)
    g = textbook_gamma(100.0, 100.0, YEARS, 0.2)
    for unit, expected in (
        (GexUnit.USD_PER_1PCT, g * 1000 * 100 * 100.0**2 * 0.01),
        (GexUnit.USD_PER_POINT, g * 1000 * 100 * 100.0),
        (GexUnit.SHARES_PER_POINT, g * 1000 * 100),
    ):
        result = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings(unit=unit))
        assert result.levels.total_gex == pytest.approx(expected, rel=1e-12)
        assert result.strikes.call_gex is not None
        assert result.strikes.call_gex.tolist() == pytest.approx([expected], rel=1e-12)
        assert result.strikes.gamma.tolist() == pytest.approx([g * 1000 * 100], rel=1e-12)
        assert result.levels.call_wall == 100.0 and result.levels.put_wall is None


@pytest.mark.parametrize(
    ("model", "call_sign", "put_sign"),
    [
        (SignModel.DEALER_LONG_CALLS_SHORT_PUTS, 1, -1),
        (SignModel.DEALER_SHORT_CALLS_LONG_PUTS, -1, 1),
        (SignModel.DEALER_SHORT_BOTH, -1, -1),
    ],
)
def test_sign_models(model: SignModel, call_sign: int, put_sign: int) -> None:
    table = contracts([option("C", 100, 300), option("P", 100, 500)], spot=100.0)
    result = compute_gex(
        table, spot=100.0, snapshot_at=SNAP, settings=GexSettings(sign_model=model)
    )
    unit = textbook_gamma(100.0, 100.0, YEARS, 0.2) * 100 * 100.0**2 * 0.01
    assert result.strikes.call_gex.tolist() == pytest.approx([call_sign * 300 * unit])  # type: ignore[union-attr]
    assert result.strikes.put_gex.tolist() == pytest.approx([put_sign * 500 * unit])  # type: ignore[union-attr]
    assert result.levels.total_gex == pytest.approx((call_sign * 300 + put_sign * 500) * unit)


def test_call_put_gamma_symmetry_cancels_everywhere() -> None:
    rows = []
    for k in (90, 95, 100, 105, 110):
        rows += [option("C", k, 700 + k), option("P", k, 700 + k)]
    table = contracts(rows, spot=100.0)
    result = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings())
    s = result.strikes
    assert s.call_gex is not None and s.put_gex is not None
    np.testing.assert_allclose(s.call_gex, -s.put_gex, rtol=1e-12)
    assert np.abs(s.net_gex).max() <= 1e-9 * np.abs(s.call_gex).max()
    assert abs(result.levels.total_gex) <= 1e-9 * np.abs(s.call_gex).sum()
    assert result.levels.zero_gamma_crossings == []
    assert result.levels.zero_gamma is None


@settings(max_examples=60, deadline=None)
@given(
    s=st.floats(10, 10_000),
    moneyness=st.floats(0.5, 1.5),
    t=st.floats(1e-4, 3.0),
    sigma=st.floats(0.03, 2.0),
    r=st.floats(-0.01, 0.08),
    q=st.floats(0.0, 0.05),
)
def test_vectorised_gamma_matches_the_textbook(
    s: float, moneyness: float, t: float, sigma: float, r: float, q: float
) -> None:
    k = s * moneyness
    got = bs_gamma(s, np.array([k]), np.array([t]), np.array([sigma]), r=r, q=q)[0]
    assert got == pytest.approx(textbook_gamma(s, k, t, sigma, r, q), rel=1e-9, abs=1e-300)


def test_three_crossings_are_all_reported_and_refined() -> None:
    # Dealers short puts at 90 and 110, long calls at 100 and 120: the profile changes sign
    # between each pair of clusters.
    rows = [
        option("P", 90, 1000),
        option("C", 100, 1000),
        option("P", 110, 1000),
        option("C", 120, 1000),
    ]
    spot = 104.0
    table = contracts(rows, spot=spot)
    result = compute_gex(table, spot=spot, snapshot_at=SNAP, settings=GexSettings())
    crossings = result.levels.zero_gamma_crossings
    assert len(crossings) == 3
    assert 90 < crossings[0] < 100 < crossings[1] < 110 < crossings[2] < 120
    assert result.levels.zero_gamma == min(crossings, key=lambda c: abs(c - spot))

    def total(x: float) -> float:
        k = np.array([90.0, 100.0, 110.0, 120.0])
        signs = np.array([-1.0, 1.0, -1.0, 1.0])
        g = bs_gamma(x, k, np.full(4, YEARS), np.full(4, 0.2))
        return float((signs * g * 1000 * 100).sum())

    # Independent check: a 200,000-point brute-force grid finds the same roots.
    grid = np.linspace(0.75 * spot, 1.25 * spot, 200_001)
    values = np.array([total(x) for x in grid[::50]])
    coarse = grid[::50]
    brute = [
        float(coarse[i] - values[i] * (coarse[i + 1] - coarse[i]) / (values[i + 1] - values[i]))
        for i in np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:]))
    ]
    assert crossings == pytest.approx(brute, abs=5e-3)
    scale = max(abs(total(x)) for x in (95.0, 100.0, 105.0))
    for c in crossings:  # refined to well under a strike step: the total vanishes there
        assert abs(total(c)) < 1e-6 * scale


def test_banded_float32_profile_matches_the_exact_total() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    strikes = rng.uniform(60, 140, n)
    years = rng.choice([1 / 365, 0.02, 0.1, 0.5, 2.0], n)
    profile = _Profile(
        strike=strikes,
        years=years,
        iv=rng.uniform(0.1, 0.6, n),
        weight=rng.choice([-1.0, 1.0], n) * rng.integers(1, 5000, n) * 100.0,
        r=0.0,
        q=0.0,
    )
    spots = np.linspace(75, 125, 400)
    banded = profile.shares_per_point(spots)
    exact = profile.exact(spots)
    assert np.abs(banded - exact).max() <= 1e-5 * np.abs(exact).max()


def test_time_floor_caps_zero_dte_gamma() -> None:
    snap = datetime(2026, 11, 24, 20, 59, 30, tzinfo=UTC)  # 30 s before the 16:00 settlement
    raw = RawChain(
        pa.table(
            {
                "occ_symbol": ["SPY261124C00100000"],
                "open_interest": [100.0],
                "iv": [0.3],
                "source_row": [0],
            }
        ),
        "t",
        "t",
        1,
        str,
    )
    table = validate_contracts(raw, spot=100.0, snapshot_at=snap, underlying="SPY").contracts
    for minutes in (15.0, 60.0):
        settings_ = GexSettings(min_time_to_expiry_minutes=minutes, unit=GexUnit.SHARES_PER_POINT)
        result = compute_gex(table, spot=100.0, snapshot_at=snap, settings=settings_)
        floor = minutes / (365 * 24 * 60)
        assert result.levels.total_gex == pytest.approx(
            textbook_gamma(100.0, 100.0, floor, 0.3) * 100 * 100, rel=1e-9
        )


def test_am_and_pm_roots_settle_at_their_own_time() -> None:
    rows = [
        {"occ_symbol": "SPX261218C06800000", "open_interest": 100.0, "iv": 0.15},
        {"occ_symbol": "SPXW261218C06800000", "open_interest": 100.0, "iv": 0.15},
    ]
    cols = {k: [r[k] for r in rows] for k in rows[0]} | {"source_row": [0, 1]}
    table = validate_contracts(
        RawChain(pa.table(cols), "t", "t", 2, str), spot=6850.0, snapshot_at=SNAP, underlying="SPX"
    ).contracts
    result = compute_gex(table, spot=6850.0, snapshot_at=SNAP, settings=GexSettings())
    years = dict(
        zip(
            result.contracts.column("root").to_pylist(),  # type: ignore[union-attr]
            result.contracts.column("years_to_expiry").to_pylist(),  # type: ignore[union-attr]
            strict=True,
        )
    )
    am = datetime(2026, 12, 18, 14, 30, tzinfo=UTC) - SNAP  # 09:30 EST
    pm = datetime(2026, 12, 18, 21, 0, tzinfo=UTC) - SNAP  # 16:00 EST
    assert years["SPX"] == pytest.approx(am.total_seconds() / (365 * 86400), rel=1e-12)
    assert years["SPXW"] == pytest.approx(pm.total_seconds() / (365 * 86400), rel=1e-12)
    assert len(result.strikes) == 1  # both roots sum into the 6800 strike
    assert result.strikes.call_open_interest.tolist() == [200]


def test_good_friday_moves_the_monthly_to_thursday() -> None:
    assert is_monthly_expiry(date(2025, 4, 17))  # third Friday 18 April 2025 was Good Friday
    assert not is_monthly_expiry(date(2025, 4, 18))
    assert is_monthly_expiry(date(2026, 12, 18))
    assert not is_monthly_expiry(date(2026, 12, 11))


def test_expiry_filters() -> None:
    epoch = date(1970, 1, 1).toordinal()
    days = np.array([date(2026, 11, 24), date(2026, 11, 25), date(2026, 12, 18), date(2027, 1, 15)])
    ordinal = np.array([d.toordinal() - epoch for d in days])
    today = date(2026, 11, 24)

    def kept(which: ExpiryFilter) -> list[date]:
        return days[expiry_filter_mask(ordinal, which, today)].tolist()

    assert kept(ExpiryFilter.ALL) == days.tolist()
    assert kept(ExpiryFilter.ZERO_DTE) == [date(2026, 11, 24)]
    assert kept(ExpiryFilter.EX_NEXT) == days[1:].tolist()
    assert kept(ExpiryFilter.EX_NEXT_MONTHLY) == [
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2027, 1, 15),
    ]


def test_a_filter_that_keeps_nothing_is_refused_with_the_date() -> None:
    table = contracts([option("C", 100, 10)], spot=100.0)
    with pytest.raises(ChainError, match=r"'0dte' leaves no contract.*2026-11-24"):
        compute_gex(
            table,
            spot=100.0,
            snapshot_at=SNAP,
            settings=GexSettings(expiry_filter=ExpiryFilter.ZERO_DTE),
        )


def test_ex_next_drops_the_nearest_expiry_and_counts_it() -> None:
    rows = [option("C", 100, 10, expiry="261125"), option("C", 100, 20)]
    table = contracts(rows, spot=100.0)
    result = compute_gex(
        table,
        spot=100.0,
        snapshot_at=SNAP,
        settings=GexSettings(expiry_filter=ExpiryFilter.EX_NEXT),
    )
    assert result.excluded == {"expiry_filter": 1}
    assert result.strikes.call_open_interest.tolist() == [20]


def test_gamma_source_and_fallbacks() -> None:
    rows = [
        option("C", 100, 10, gamma=0.05),  # IV and vendor gamma
        option("C", 105, 10, iv=0.0, gamma=0.03),  # no IV: the model falls back to the vendor
        option("C", 110, 10, gamma=None),  # no vendor gamma: vendor mode falls back to the model
    ]
    table = contracts(rows, spot=100.0)
    model = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings())
    vendor = compute_gex(
        table, spot=100.0, snapshot_at=SNAP, settings=GexSettings(gamma_source=GammaSource.VENDOR)
    )
    assert model.gamma_origin_counts == {"model": 2, "vendor": 1, "none": 0}
    assert vendor.gamma_origin_counts == {"model": 1, "vendor": 2, "none": 0}
    used_model = model.contracts.column("gamma_used").to_pylist()  # type: ignore[union-attr]
    used_vendor = vendor.contracts.column("gamma_used").to_pylist()  # type: ignore[union-attr]
    assert used_model[0] == pytest.approx(textbook_gamma(100, 100, YEARS, 0.2))
    assert used_model[1] == 0.03 and used_vendor[1] == 0.03
    assert used_vendor[0] == 0.05
    assert used_vendor[2] == pytest.approx(textbook_gamma(100, 110, YEARS, 0.2))


def test_walls_pick_the_largest_exposures() -> None:
    rows = [
        option("C", 100, 500),
        option("C", 110, 5000),
        option("P", 95, 4000),
        option("P", 100, 3000),
        option("C", 105, 100),
    ]
    table = contracts(rows, spot=102.0)
    levels = compute_gex(table, spot=102.0, snapshot_at=SNAP, settings=GexSettings()).levels
    assert levels.call_wall == 110.0
    assert levels.put_wall in (95.0, 100.0)
    g95 = textbook_gamma(102, 95, YEARS, 0.2) * 4000
    g100 = textbook_gamma(102, 100, YEARS, 0.2) * 3000
    assert levels.put_wall == (95.0 if g95 > g100 else 100.0)
    abs100 = g100 + textbook_gamma(102, 100, YEARS, 0.2) * 500
    g110 = textbook_gamma(102, 110, YEARS, 0.2) * 5000
    assert (
        levels.abs_gamma_strike
        == max(((95.0, g95), (100.0, abs100), (110.0, g110)), key=lambda kv: kv[1])[0]
    )


def test_per_strike_quotes_come_from_the_nearest_expiry() -> None:
    rows = [
        option("C", 100, 10, expiry="261224", bid=3.0, ask=3.2),
        option("C", 100, 10, expiry="261127", bid=1.0, ask=1.1),
        option("P", 100, 10, expiry="270115", bid=5.0, ask=5.5),
    ]
    table = contracts(rows, spot=100.0)
    s = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings()).strikes
    assert (s.call_bid[0], s.call_ask[0], s.put_bid[0], s.put_ask[0]) == (1.0, 1.1, 5.0, 5.5)


def test_settled_contracts_are_dropped_and_counted_by_the_engine_too() -> None:
    table = contracts([option("C", 100, 10, expiry="261127"), option("C", 100, 20)], spot=100.0)
    later = SNAP + timedelta(days=3, hours=1)  # after the 27 November settlement
    result = compute_gex(table, spot=100.0, snapshot_at=later, settings=GexSettings())
    assert result.excluded == {"expired": 1}
    assert result.strikes.call_open_interest.tolist() == [20]
