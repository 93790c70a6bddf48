"""The GEX engine on chains small enough to check by hand."""

from __future__ import annotations

import itertools
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
    StrikeExposure,
    _Profile,
    bs_gamma,
    compute_gex,
    expiry_filter_mask,
    is_monthly_expiry,
    levels_from_strikes,
    unit_factor,
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


# --- every output of the engine against a contract-by-contract reference -----------------

from tests.core.test_gex_properties import greeks  # noqa: E402 - the scalar reference

SETTLE = {
    "261127": datetime(2026, 11, 27, 21, 0, tzinfo=UTC),
    "261224": datetime(2026, 12, 24, 21, 0, tzinfo=UTC),
}
MIXED = [
    # right, strike, oi, iv, expiry, extra vendor columns
    ("C", 95.0, 300, 0.25, "261224", {"volume": 11, "bid": 6.1, "ask": 6.3}),
    ("P", 95.0, 900, 0.30, "261224", {"volume": 13, "bid": 1.1, "ask": 1.2}),
    ("C", 100.0, 1200, 0.20, "261127", {"volume": 17, "bid": 1.9, "ask": 2.0}),
    ("C", 100.0, 500, 0.22, "261224", {"volume": 19, "bid": 3.3, "ask": 3.5}),
    ("P", 100.0, 1500, 0.24, "261224", {"volume": 23, "bid": 3.0, "ask": 3.1}),
    # no IV: the vendor's gamma and greeks stand in
    (
        "P",
        105.0,
        400,
        0.0,
        "261224",
        {"volume": 29, "gamma": 0.04, "delta": -0.7, "theta": -0.02, "vega": 0.09},
    ),
    ("C", 105.0, 0, 0.18, "261224", {"volume": 31}),  # no open interest: not in the profile
    ("C", 110.0, 700, 0.0, "261224", {"volume": 37}),  # neither IV nor vendor gamma
]
R, Q = 0.03, 0.01


def mixed_table() -> pa.Table:
    rows = [
        option(right, strike, oi, iv=iv, expiry=expiry, **extra)
        for right, strike, oi, iv, expiry, extra in MIXED
    ]
    return contracts(rows, spot=101.0)


def reference_contracts(spot: float) -> list[dict[str, Any]]:
    out = []
    for right, strike, oi, iv, expiry, extra in MIXED:
        years = (SETTLE[expiry] - SNAP).total_seconds() / (365 * 86400)
        sign = 1.0 if right == "C" else -1.0
        if iv > 0:
            g = greeks(right == "C", spot, strike, years, iv, R, Q)
            origin = "model"
        elif "gamma" in extra:
            g = {k: extra[k] for k in ("gamma", "delta", "theta", "vega")}
            origin = "vendor"
        else:
            g = {"gamma": 0.0, "delta": 0.0, "theta": 0.0, "vega": 0.0}
            origin = "none"
        position = sign * oi * 100
        out.append(
            {
                "right": right,
                "strike": strike,
                "expiry": expiry,
                "oi": oi,
                "iv": iv,
                "years": years,
                "volume": extra["volume"],
                "bid": extra.get("bid", 0.0),
                "ask": extra.get("ask", 0.0),
                "origin": origin,
                "gamma": g["gamma"],
                "gamma_shares": g["gamma"] * position,
                "delta_shares": g["delta"] * position,
                "theta_usd": g["theta"] * position,
                "vega_usd": g["vega"] * position,
                "gex": g["gamma"] * position * spot * spot * 0.01,
                "position": position,
            }
        )
    return out


def reference_profile(x: float) -> float:
    total = 0.0
    for c in reference_contracts(101.0):
        if c["iv"] > 0 and c["oi"] > 0:
            g = greeks(True, x, c["strike"], c["years"], c["iv"], R, Q)["gamma"]
            total += g * c["position"] * x * x * 0.01
    return total


def test_every_output_of_the_engine_matches_a_contract_by_contract_reference() -> None:
    settings_ = GexSettings(risk_free_rate=R, dividend_yield=Q, profile_points=200)
    result = compute_gex(mixed_table(), spot=101.0, snapshot_at=SNAP, settings=settings_)
    ref = reference_contracts(101.0)

    assert result.spot == 101.0
    assert result.snapshot_at == SNAP and result.snapshot_at.tzinfo is UTC
    assert result.unit is GexUnit.USD_PER_1PCT
    assert result.sign_model is SignModel.DEALER_LONG_CALLS_SHORT_PUTS
    assert result.gamma_source is GammaSource.MODEL
    assert result.expiry_filter is ExpiryFilter.ALL
    assert result.excluded == {}
    assert result.gamma_origin_counts == {"model": 6, "vendor": 1, "none": 1}

    # Per contract (the table the lake keeps).
    table = result.contracts
    assert table is not None
    got = table.select(["years_to_expiry", "gamma_used", "gamma_origin", "gex"]).to_pylist()
    for row, want in zip(got, ref, strict=True):
        assert row["years_to_expiry"] == pytest.approx(want["years"], rel=1e-12)
        assert row["gamma_used"] == pytest.approx(want["gamma"], rel=1e-9, abs=1e-300)
        assert row["gamma_origin"] == want["origin"]
        assert row["gex"] == pytest.approx(want["gex"], rel=1e-9, abs=1e-300)
    assert table.schema.field("gex").type == pa.float64()

    # Per strike: sums over roots and expiries, each side its own.
    s = result.strikes
    assert s.strike.tolist() == [95.0, 100.0, 105.0, 110.0]
    assert s.strike.dtype == np.float64
    for i, k in enumerate(s.strike.tolist()):
        here = [c for c in ref if c["strike"] == k]
        calls = [c for c in here if c["right"] == "C"]
        puts = [c for c in here if c["right"] == "P"]
        assert s.call_open_interest[i] == sum(c["oi"] for c in calls)
        assert s.put_open_interest[i] == sum(c["oi"] for c in puts)
        assert s.call_volume[i] == sum(c["volume"] for c in calls)
        assert s.put_volume[i] == sum(c["volume"] for c in puts)
        for field_, name in (
            ("gamma", "gamma_shares"),
            ("delta", "delta_shares"),
            ("theta", "theta_usd"),
            ("vega", "vega_usd"),
        ):
            want = sum(c[name] for c in here)
            assert getattr(s, field_)[i] == pytest.approx(want, rel=1e-6, abs=1e-6), (k, field_)
        assert s.call_gex is not None and s.put_gex is not None
        assert s.call_gex[i] == pytest.approx(sum(c["gex"] for c in calls), rel=1e-9, abs=1e-9)
        assert s.put_gex[i] == pytest.approx(sum(c["gex"] for c in puts), rel=1e-9, abs=1e-9)
        assert s.net_gex[i] == pytest.approx(s.call_gex[i] + s.put_gex[i], rel=1e-12, abs=1e-9)
    for arr in (s.call_open_interest, s.put_open_interest, s.call_volume, s.put_volume):
        assert arr.dtype == np.int64
    # Quotes of the nearest expiry; a side with no quote is 0, not NaN.
    assert s.call_bid.tolist() == [6.1, 1.9, 0.0, 0.0]
    assert s.call_ask.tolist() == [6.3, 2.0, 0.0, 0.0]
    assert s.put_bid.tolist() == [1.1, 3.0, 0.0, 0.0]
    assert s.put_ask.tolist() == [1.2, 3.1, 0.0, 0.0]

    # Levels.
    levels = result.levels
    assert levels.total_gex == pytest.approx(sum(c["gex"] for c in ref), rel=1e-9)
    call_abs = {k: abs(s.call_gex[i]) for i, k in enumerate(s.strike.tolist())}
    put_abs = {k: abs(s.put_gex[i]) for i, k in enumerate(s.strike.tolist())}
    assert levels.call_wall == max(call_abs, key=call_abs.__getitem__)
    assert levels.put_wall == max(put_abs, key=put_abs.__getitem__)
    assert levels.abs_gamma_strike == max(call_abs, key=lambda k: call_abs[k] + put_abs[k])

    # The profile: model gamma only, contracts with IV and open interest.
    assert result.profile_contracts == 5
    assert result.profile_spots.tolist() == pytest.approx(np.linspace(75.75, 126.25, 200).tolist())
    want_profile = [reference_profile(x) for x in result.profile_spots.tolist()]
    scale = max(abs(v) for v in want_profile)
    assert result.profile_gex.tolist() == pytest.approx(want_profile, abs=1e-5 * scale)
    # Zero gamma: every sign change of the reference profile, found by bisection here.
    roots = []
    xs = np.linspace(75.75, 126.25, 2001).tolist()
    for left, right in itertools.pairwise(xs):
        if reference_profile(left) * reference_profile(right) < 0:
            a, b = left, right
            for _ in range(60):
                mid = 0.5 * (a + b)
                if reference_profile(a) * reference_profile(mid) <= 0:
                    b = mid
                else:
                    a = mid
            roots.append(0.5 * (a + b))
    assert roots, "the mixed chain has a gamma flip"
    assert levels.zero_gamma_crossings == pytest.approx(roots, abs=1e-4)
    assert levels.zero_gamma == pytest.approx(min(roots, key=lambda x: abs(x - 101.0)), abs=1e-4)


def test_without_the_profile_nothing_is_forecast_at_other_spots() -> None:
    result = compute_gex(
        mixed_table(), spot=101.0, snapshot_at=SNAP, settings=GexSettings(), with_profile=False
    )
    assert result.profile_spots.size == 0 and result.profile_gex.size == 0
    assert result.levels.zero_gamma is None and result.levels.zero_gamma_crossings == []


def test_a_chain_with_no_open_interest_has_no_profile_and_no_walls() -> None:
    table = contracts([option("C", 100, 0), option("P", 100, 0)], spot=100.0)
    result = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings())
    assert result.profile_contracts == 0
    assert result.profile_spots.size == 0 and result.profile_gex.size == 0
    levels = result.levels
    assert (levels.call_wall, levels.put_wall, levels.abs_gamma_strike) == (None, None, None)
    assert levels.total_gex == 0.0 and levels.zero_gamma is None


def test_a_contract_settling_at_the_snapshot_instant_is_expired_and_counted() -> None:
    table = contracts([option("C", 100, 10, expiry="261124"), option("C", 100, 20)], spot=100.0)
    at_settlement = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # 16:00 New York
    result = compute_gex(table, spot=100.0, snapshot_at=at_settlement, settings=GexSettings())
    assert result.excluded == {"expired": 1}
    assert result.strikes.call_open_interest.tolist() == [20]
    one_second_before = at_settlement - timedelta(seconds=1)
    kept = compute_gex(table, spot=100.0, snapshot_at=one_second_before, settings=GexSettings())
    assert kept.excluded == {}
    assert kept.strikes.call_open_interest.tolist() == [30]


def test_a_chain_that_has_all_settled_says_so_and_names_the_file() -> None:
    table = contracts([option("C", 100, 10, expiry="261127")], spot=100.0)
    later = SNAP + timedelta(days=10)
    with pytest.raises(ChainError, match=r"^SPY\.csv: nothing usable: every contract had settled"):
        compute_gex(table, spot=100.0, snapshot_at=later, settings=GexSettings(), source="SPY.csv")
    with pytest.raises(ChainError, match=r"^chain: nothing usable"):
        compute_gex(table, spot=100.0, snapshot_at=later, settings=GexSettings())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_an_exposure_that_overflows_is_refused_as_a_corrupt_file() -> None:
    table = contracts([option("C", 100, 1000, gamma=0.05, iv=0.0)], spot=100.0)
    with pytest.raises(ChainError) as caught:  # spot^2 overflows in usd_per_1pct
        compute_gex(table, spot=1e160, snapshot_at=SNAP, settings=GexSettings(), source="x.csv")
    assert str(caught.value) == (
        "x.csv: open_interest: exposure overflowed: the numbers in the file are corrupt"
    )


# --- named cases the mutation run asked for ------------------------------------------------


def test_a_contract_with_no_iv_at_all_falls_back_to_the_vendor_gamma() -> None:
    table = contracts([option("C", 100, 10, iv=None, gamma=0.05)], spot=100.0)
    result = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings())
    assert result.gamma_origin_counts == {"model": 0, "vendor": 1, "none": 0}
    assert result.contracts.column("gamma_used").to_pylist() == [0.05]  # type: ignore[union-attr]
    assert result.profile_contracts == 0


def test_one_contract_of_open_interest_is_in_the_profile() -> None:
    table = contracts([option("C", 100, 1)], spot=100.0)
    result = compute_gex(table, spot=100.0, snapshot_at=SNAP, settings=GexSettings())
    assert result.profile_contracts == 1
    assert result.profile_gex.max() > 0


def test_the_first_row_of_the_file_gives_the_quote_when_two_roots_share_an_expiry() -> None:
    rows = [
        {
            "occ_symbol": "SPXW261218C06800000",
            "open_interest": 10.0,
            "iv": 0.2,
            "bid": 5.0,
            "ask": 5.5,
        },
        {
            "occ_symbol": "SPX261218C06800000",
            "open_interest": 10.0,
            "iv": 0.2,
            "bid": 7.0,
            "ask": 7.5,
        },
    ]
    cols = {k: [r[k] for r in rows] for k in rows[0]} | {"source_row": [0, 1]}
    table = validate_contracts(
        RawChain(pa.table(cols), "t", "t", 2, str), spot=6850.0, snapshot_at=SNAP, underlying="SPX"
    ).contracts
    s = compute_gex(table, spot=6850.0, snapshot_at=SNAP, settings=GexSettings()).strikes
    assert (s.call_bid[0], s.call_ask[0]) == (5.0, 5.5)


def test_expired_contracts_are_counted_not_the_live_ones() -> None:
    rows = [
        option("C", 100, 10, expiry="261127"),
        option("P", 95, 10, expiry="261127"),
        option("C", 100, 20),
    ]
    later = SNAP + timedelta(days=3, hours=1)  # after the 27 November settlement
    result = compute_gex(
        contracts(rows, spot=100.0), spot=100.0, snapshot_at=later, settings=GexSettings()
    )
    assert result.excluded == {"expired": 2}


def test_ex_next_drops_the_nearest_expiry_still_alive_not_one_already_settled() -> None:
    rows = [
        option("C", 100, 10, expiry="261125"),
        option("C", 100, 20, expiry="261127"),
        option("C", 100, 40),
    ]
    after_the_25th = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    result = compute_gex(
        contracts(rows, spot=100.0),
        spot=100.0,
        snapshot_at=after_the_25th,
        settings=GexSettings(expiry_filter=ExpiryFilter.EX_NEXT),
    )
    assert result.excluded == {"expired": 1, "expiry_filter": 1}
    assert result.strikes.call_open_interest.tolist() == [40]


def test_a_strike_whose_total_overflows_is_refused_even_if_each_contract_fits() -> None:
    rows = [
        option("C", 100, 1000, iv=0.0, gamma=0.1, expiry="261127"),
        option("C", 100, 1000, iv=0.0, gamma=0.1),
    ]
    table = contracts(rows, spot=100.0)
    with pytest.raises(ChainError, match="exposure overflowed"):  # 1e308 each, 2e308 summed
        compute_gex(table, spot=1e153, snapshot_at=SNAP, settings=GexSettings(), source="x")


def exposure(call_gex: list[float] | None, put_gex: list[float] | None) -> StrikeExposure:
    n = len(call_gex or put_gex or [])
    zeros = np.zeros(n)
    ints = np.zeros(n, dtype=np.int64)
    net = np.asarray(call_gex or zeros) + np.asarray(put_gex or zeros)
    return StrikeExposure(
        strike=np.arange(100.0, 100.0 + 5 * n, 5.0)[:n],
        call_open_interest=ints,
        put_open_interest=ints,
        call_volume=ints,
        put_volume=ints,
        call_bid=zeros,
        call_ask=zeros,
        put_bid=zeros,
        put_ask=zeros,
        gamma=zeros,
        delta=zeros,
        theta=zeros,
        vega=zeros,
        call_gex=None if call_gex is None else np.asarray(call_gex),
        put_gex=None if put_gex is None else np.asarray(put_gex),
        net_gex=net,
    )


def test_walls_exist_for_small_exposures_too() -> None:
    levels = levels_from_strikes(
        exposure([0.25, 0.5, 0.1], [-0.2, -0.1, -0.6]), spot=104, crossings=[]
    )
    assert (levels.call_wall, levels.put_wall, levels.abs_gamma_strike) == (105.0, 110.0, 110.0)
    assert levels.total_gex == pytest.approx(-0.05)


def test_levels_without_the_call_put_split_have_no_walls_but_a_total() -> None:
    levels = levels_from_strikes(exposure(None, None), spot=100.0, crossings=[99.0, 101.5])
    assert (levels.call_wall, levels.put_wall, levels.abs_gamma_strike) == (None, None, None)
    split = exposure([1.0, 2.0], [-3.0, -0.5])
    no_split = StrikeExposure(**{**split.__dict__, "call_gex": None})
    levels = levels_from_strikes(no_split, spot=100.0, crossings=[101.5, 99.0])
    assert levels.call_wall is None and levels.put_wall is None
    assert levels.total_gex == pytest.approx(-0.5)
    assert levels.zero_gamma_crossings == [99.0, 101.5] and levels.zero_gamma == 99.0


def test_the_shares_unit_is_one_at_every_spot() -> None:
    spots = np.array([90.0, 100.0])
    factor = unit_factor(GexUnit.SHARES_PER_POINT, spots)
    assert isinstance(factor, np.ndarray) and factor.dtype == np.float64
    assert factor.tolist() == [1.0, 1.0]
    assert unit_factor(GexUnit.SHARES_PER_POINT, 100.0) == 1.0
    assert unit_factor(GexUnit.USD_PER_POINT, 100.0) == 100.0


def two_contract_profile() -> _Profile:
    # Long calls at 100, short puts at 110: gamma positive below ~105, negative above.
    return _Profile(
        strike=np.array([100.0, 110.0]),
        years=np.array([0.1, 0.1]),
        iv=np.array([0.2, 0.2]),
        weight=np.array([1000.0, -1000.0]),
        r=0.0,
        q=0.0,
    )


def test_a_single_crossing_is_found_from_the_coarsest_profile() -> None:
    profile = two_contract_profile()
    spots = np.linspace(80.0, 130.0, 51)
    crossings = profile.crossings(spots, profile.exact(spots), tolerance=1e-7 * 105)
    assert len(crossings) == 1
    root = crossings[0]
    assert 100.0 < root < 110.0
    assert abs(profile.exact(np.array([root]))[0]) < 1e-9 * np.abs(profile.exact(spots)).max()
    # Two points either side are enough; a profile scaled to 1 is still a profile.
    two = np.array([95.0, 115.0])
    assert profile.crossings(two, profile.exact(two), tolerance=1e-5) == pytest.approx([root])
    values = profile.exact(spots)
    assert profile.crossings(spots, values / np.abs(values).max(), tolerance=1e-5) == pytest.approx(
        [root]
    )
    assert profile.crossings(spots[:0], values[:0], tolerance=1e-5) == []
    assert profile.crossings(spots, np.zeros(51), tolerance=1e-5) == []


@pytest.mark.parametrize("shift", [-2, -1, 1, 2])
def test_a_crossing_the_float32_profile_misplaces_is_still_found(shift: int) -> None:
    profile = two_contract_profile()
    spots = np.linspace(80.0, 130.0, 51)
    exact = profile.exact(spots)
    root = profile.crossings(spots, exact, tolerance=1e-5)[0]
    # Move the coarse sign change `shift` grid steps away from the true root.
    i = int(np.flatnonzero(np.sign(exact[:-1]) != np.sign(exact[1:]))[0])
    misplaced = exact.copy()
    if shift > 0:
        misplaced[i + 1 : i + 1 + shift] = np.abs(misplaced[i + 1 : i + 1 + shift])
    else:
        misplaced[i + 1 + shift : i + 1] = -np.abs(misplaced[i + 1 + shift : i + 1])
    assert profile.crossings(spots, misplaced, tolerance=1e-5) == pytest.approx([root], abs=1e-4)


def test_the_profile_of_a_single_spot_is_the_exact_total() -> None:
    profile = two_contract_profile()
    one = np.array([104.0])
    assert profile.shares_per_point(one).tolist() == pytest.approx(profile.exact(one).tolist())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    points=st.sampled_from([20, 57, 400]),
    n=st.integers(1, 60),
)
def test_banded_profile_matches_the_exact_total_for_any_expiry_mix(
    seed: int, points: int, n: int
) -> None:
    # Contracts from the 15-minute floor (a band narrower than a grid step) to 5 years at
    # 200% vol (a band wider than the range), strikes at and beyond both ends.
    rng = np.random.default_rng(seed)
    years = rng.choice([15 / (365 * 24 * 60), 1 / (365 * 24), 1 / 365, 0.1, 2.0, 5.0], n)
    profile = _Profile(
        strike=rng.uniform(60, 140, n),
        years=years,
        iv=rng.choice([0.05, 0.2, 0.6, 2.0], n),
        weight=rng.integers(1, 5000, n) * 100.0,  # one sign: no cancellation hides an error
        r=0.0,
        q=0.0,
    )
    spots = np.linspace(75.0, 125.0, points)
    banded = profile.shares_per_point(spots)
    exact = profile.exact(spots)
    # float32 keeps about 1e-6 of a point's total; a 15-minute contract at 5% vol peaks so
    # sharply that d1's float32 rounding costs up to ~1e-4 (crossings are refined on exact).
    # Errors are measured against the contracts' own peaks: far in a contract's tail (1e-10
    # of its peak) float32 d1 still costs ~1e-3 of that tail value, and beyond |d1| = 8.5
    # the band prunes it. A contract missing from rows it covers costs 1e-3 of its peak.
    peaks = float(np.abs(profile.w).sum()) / 75.0
    assert np.abs(banded - exact).max() <= 2e-4 * np.abs(exact).max() + 1e-9 * peaks


def test_a_contract_an_hour_from_expiry_is_in_the_profile_at_every_spot_it_moves() -> None:
    # Found by the property above: spots are a linspace, not even in ln S, and a band
    # narrower than one row was put on the wrong row, so the profile read 0 shares at
    # 95.54 where the exact total is 591.
    profile = _Profile(
        strike=np.array([95.33074887]),
        years=np.array([1 / (365 * 24)]),
        iv=np.array([0.05]),
        weight=np.array([244_800.0]),
        r=0.0,
        q=0.0,
    )
    spots = np.linspace(75.0, 125.0, 57)
    exact = profile.exact(spots)
    assert exact[23] == pytest.approx(591.0, rel=1e-3)
    assert profile.shares_per_point(spots) == pytest.approx(exact, rel=1e-4, abs=1e-9)


def test_ex_next_monthly_keeps_everything_when_no_monthly_is_listed() -> None:
    rows = [option("C", 100, 10, expiry="261125"), option("C", 100, 20, expiry="261127")]
    result = compute_gex(
        contracts(rows, spot=100.0),
        spot=100.0,
        snapshot_at=SNAP,
        settings=GexSettings(expiry_filter=ExpiryFilter.EX_NEXT_MONTHLY),
    )
    assert result.excluded == {}
    assert result.strikes.call_open_interest.tolist() == [30]
