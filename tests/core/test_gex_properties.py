"""The GEX engine's maths against second, obviously-correct implementations.

- Black-Scholes greeks (vectorised, with a rational erfc) against a scalar `math`
  reference, and against finite differences of the Black-Scholes price;
- the expiry calendar (third Fridays, Good Friday, the monthly filter) against a
  table built by counting Fridays and a list of Easter dates;
- AM/PM settlement instants against US daylight-saving rules written out by hand.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.chain import settlement_micros
from gexdaemon.core.gex import (
    _easter,
    _erfc,
    _norm_cdf,
    bs_all,
    bs_gamma,
    expiry_filter_mask,
    is_monthly_expiry,
    third_friday,
)
from gexdaemon.core.models import ExpiryFilter

# --- a scalar Black-Scholes reference ------------------------------------------------------


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def d1_d2(s: float, k: float, t: float, sigma: float, r: float, q: float) -> tuple[float, float]:
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / (sigma * math.sqrt(t))
    return d1, d1 - sigma * math.sqrt(t)


def price(call: bool, s: float, k: float, t: float, sigma: float, r: float, q: float) -> float:
    d1, d2 = d1_d2(s, k, t, sigma, r, q)
    if call:
        return s * math.exp(-q * t) * norm_cdf(d1) - k * math.exp(-r * t) * norm_cdf(d2)
    return k * math.exp(-r * t) * norm_cdf(-d2) - s * math.exp(-q * t) * norm_cdf(-d1)


def greeks(
    call: bool, s: float, k: float, t: float, sigma: float, r: float, q: float
) -> dict[str, float]:
    """Textbook greeks: theta per calendar day, vega per vol point."""
    d1, d2 = d1_d2(s, k, t, sigma, r, q)
    dq, dr = math.exp(-q * t), math.exp(-r * t)
    decay = -s * dq * norm_pdf(d1) * sigma / (2 * math.sqrt(t))
    if call:
        delta = dq * norm_cdf(d1)
        theta = decay - r * k * dr * norm_cdf(d2) + q * s * dq * norm_cdf(d1)
    else:
        delta = -dq * norm_cdf(-d1)
        theta = decay + r * k * dr * norm_cdf(-d2) - q * s * dq * norm_cdf(-d1)
    return {
        "gamma": dq * norm_pdf(d1) / (s * sigma * math.sqrt(t)),
        "delta": delta,
        "theta": theta / 365.0,
        "vega": s * dq * norm_pdf(d1) * math.sqrt(t) / 100.0,
    }


def engine(
    call: bool, s: float, k: float, t: float, sigma: float, r: float, q: float
) -> dict[str, float]:
    g = bs_all(s, np.array([k]), np.array([t]), np.array([sigma]), np.array([call]), r=r, q=q)
    return {"gamma": g.gamma[0], "delta": g.delta[0], "theta": g.theta[0], "vega": g.vega[0]}


contract = st.fixed_dictionaries(
    {
        "call": st.booleans(),
        "s": st.floats(20, 8000),
        "moneyness": st.floats(0.6, 1.6),
        "t": st.floats(2e-3, 3.0),
        "sigma": st.floats(0.04, 1.5),
        "r": st.sampled_from([0.0, 0.0]) | st.floats(-0.01, 0.08),
        "q": st.sampled_from([0.0]) | st.floats(0.0, 0.05),
    }
)


@settings(max_examples=150, deadline=None)
@given(c=contract)
def test_vectorised_greeks_match_the_scalar_textbook(c: dict[str, float]) -> None:
    k = c["s"] * c["moneyness"]
    args = (bool(c["call"]), c["s"], k, c["t"], c["sigma"], c["r"], c["q"])
    want, got = greeks(*args), engine(*args)
    # The engine's erfc is good to 1.2e-7 relative; N(d1) errors scale delta and theta.
    assert got["gamma"] == pytest.approx(want["gamma"], rel=1e-9, abs=1e-300)
    assert got["vega"] == pytest.approx(want["vega"], rel=1e-9, abs=1e-300)
    assert got["delta"] == pytest.approx(want["delta"], abs=2e-7)
    scale = c["s"] * (c["r"] + c["q"] + c["sigma"]) / 365.0
    assert got["theta"] == pytest.approx(want["theta"], rel=1e-6, abs=1e-6 * scale)


@settings(max_examples=80, deadline=None)
@given(
    c=contract.filter(lambda c: c["t"] > 0.02 and c["sigma"] * math.sqrt(c["t"]) > 0.02),
)
def test_greeks_are_the_derivatives_of_the_price(c: dict[str, float]) -> None:
    call, s, t, sigma, r, q = bool(c["call"]), c["s"], c["t"], c["sigma"], c["r"], c["q"]
    k = s * c["moneyness"]
    got = engine(call, s, k, t, sigma, r, q)
    hs, hv, ht = s * 1e-4, 1e-5, min(t * 1e-4, 1e-5)

    def p(**kw: float) -> float:
        base = {"s": s, "t": t, "sigma": sigma}
        base.update(kw)
        return price(call, base["s"], k, base["t"], base["sigma"], r, q)

    delta = (p(s=s + hs) - p(s=s - hs)) / (2 * hs)
    gamma = (p(s=s + hs) - 2 * p() + p(s=s - hs)) / (hs * hs)
    vega = (p(sigma=sigma + hv) - p(sigma=sigma - hv)) / (2 * hv) / 100.0
    theta = -(p(t=t + ht) - p(t=t - ht)) / (2 * ht) / 365.0
    assert got["delta"] == pytest.approx(delta, abs=1e-5)
    # Rounding in the second difference is about eps * price / h^2.
    assert got["gamma"] == pytest.approx(gamma, rel=2e-3, abs=1e-12 * max(s, k) / hs**2)
    assert got["vega"] == pytest.approx(vega, rel=1e-4, abs=1e-7 * s)
    assert got["theta"] == pytest.approx(theta, rel=1e-3, abs=1e-6 * s)


@settings(max_examples=60, deadline=None)
@given(c=contract)
def test_call_and_put_deltas_differ_by_the_dividend_discount(c: dict[str, float]) -> None:
    k = c["s"] * c["moneyness"]
    args = (c["s"], k, c["t"], c["sigma"], c["r"], c["q"])
    call, put = engine(True, *args), engine(False, *args)
    assert call["delta"] - put["delta"] == pytest.approx(math.exp(-c["q"] * c["t"]), abs=1e-12)
    assert 0.0 <= call["delta"] <= 1.0 and -1.0 <= put["delta"] <= 0.0
    assert call["gamma"] == put["gamma"] and call["vega"] == put["vega"]


def test_a_put_deep_in_the_money_has_delta_near_minus_one_and_a_call_near_one() -> None:
    strikes = np.array([50.0, 200.0])
    years, iv = np.array([0.5, 0.5]), np.array([0.2, 0.2])
    calls = bs_all(100.0, strikes, years, iv, np.array([True, True]))
    puts = bs_all(100.0, strikes, years, iv, np.array([False, False]))
    assert calls.delta.tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert puts.delta.tolist() == pytest.approx([0.0, -1.0], abs=1e-6)
    at_the_money = bs_all(100.0, np.array([100.0]), years[:1], iv[:1], np.array([False]))
    d1 = 0.5 * 0.2 * 0.2 * 0.5 / (0.2 * math.sqrt(0.5))
    assert at_the_money.delta[0] == pytest.approx(norm_cdf(d1) - 1.0, abs=1e-7)


def test_rows_without_volatility_or_time_come_out_zero_not_nan() -> None:
    strike = np.array([100.0, 100.0, 100.0])
    years = np.array([0.5, 0.0, 0.5])
    iv = np.array([0.0, 0.2, -0.1])
    for g in (bs_all(100.0, strike, years, iv, np.array([True, False, True])),):
        for values in (g.gamma, g.delta, g.theta, g.vega):
            assert values.tolist() == [0.0, 0.0, 0.0]
    assert bs_gamma(100.0, strike, years, iv).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("x", [-8.0, -5.0, -3.0, -1.5, -0.7, -1e-3, 0.0, 1e-3, 0.7, 1.5, 3.0, 8.0])
def test_the_normal_cdf_and_erfc_match_the_standard_library(x: float) -> None:
    assert _norm_cdf(np.array([x]))[0] == pytest.approx(norm_cdf(x), rel=2e-7, abs=1e-300)
    assert _erfc(np.array([x]))[0] == pytest.approx(math.erfc(x), rel=2e-7)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-9.0, 9.0))
def test_the_normal_cdf_is_a_cdf(x: float) -> None:
    got = _norm_cdf(np.array([x, -x]))
    assert got[0] == pytest.approx(norm_cdf(x), rel=2e-7, abs=1e-15)
    assert got[0] + got[1] == pytest.approx(1.0, abs=1e-7)


# --- the expiry calendar ----------------------------------------------------------------

# Western (Gregorian) Easter Sunday, 2000-2035, from published tables.
EASTER = {
    2000: date(2000, 4, 23), 2001: date(2001, 4, 15), 2002: date(2002, 3, 31),
    2003: date(2003, 4, 20), 2004: date(2004, 4, 11), 2005: date(2005, 3, 27),
    2006: date(2006, 4, 16), 2007: date(2007, 4, 8), 2008: date(2008, 3, 23),
    2009: date(2009, 4, 12), 2010: date(2010, 4, 4), 2011: date(2011, 4, 24),
    2012: date(2012, 4, 8), 2013: date(2013, 3, 31), 2014: date(2014, 4, 20),
    2015: date(2015, 4, 5), 2016: date(2016, 3, 27), 2017: date(2017, 4, 16),
    2018: date(2018, 4, 1), 2019: date(2019, 4, 21), 2020: date(2020, 4, 12),
    2021: date(2021, 4, 4), 2022: date(2022, 4, 17), 2023: date(2023, 4, 9),
    2024: date(2024, 3, 31), 2025: date(2025, 4, 20), 2026: date(2026, 4, 5),
    2027: date(2027, 3, 28), 2028: date(2028, 4, 16), 2029: date(2029, 4, 1),
    2030: date(2030, 4, 21), 2031: date(2031, 4, 13), 2032: date(2032, 3, 28),
    2033: date(2033, 4, 17), 2034: date(2034, 4, 9), 2035: date(2035, 3, 25),
}  # fmt: skip


def fridays(year: int, month: int) -> list[date]:
    day = date(year, month, 1)
    out = []
    while day.month == month:
        if day.weekday() == 4:
            out.append(day)
        day += timedelta(days=1)
    return out


def monthly_table() -> set[date]:
    """Every standard monthly expiry 2000-2035, by counting Fridays."""
    out = set()
    for year, easter in EASTER.items():
        good_friday = easter - timedelta(days=2)
        for month in range(1, 13):
            third = fridays(year, month)[2]
            out.add(third - timedelta(days=1) if third == good_friday else third)
    return out


MONTHLY = monthly_table()


def test_easter_matches_the_published_table() -> None:
    assert {year: _easter(year) for year in EASTER} == EASTER


def test_third_fridays_match_counted_fridays() -> None:
    for year in range(2000, 2036):
        for month in range(1, 13):
            assert third_friday(year, month) == fridays(year, month)[2], (year, month)


def test_monthly_expiries_match_the_table_every_day_for_36_years() -> None:
    day, end = date(2000, 1, 1), date(2035, 12, 31)
    wrong = []
    while day <= end:
        if is_monthly_expiry(day) != (day in MONTHLY):
            wrong.append(day)
        day += timedelta(days=1)
    assert wrong == []
    # The table itself has the Good Friday cases a desk remembers: Thursday expiries.
    thursdays = {d for d in MONTHLY if d.weekday() == 3}
    assert {date(2014, 4, 17), date(2019, 4, 18), date(2022, 4, 14), date(2025, 4, 17)} <= thursdays
    assert all(d + timedelta(days=3) == EASTER[d.year] for d in thursdays)


EPOCH = date(1970, 1, 1).toordinal()


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 120), min_size=1, max_size=12),
    start=st.dates(date(2001, 1, 1), date(2034, 6, 30)),
    which=st.sampled_from(list(ExpiryFilter)),
)
def test_expiry_filters_match_the_table(
    offsets: list[int], start: date, which: ExpiryFilter
) -> None:
    days = [start + timedelta(days=o) for o in offsets]
    ordinals = np.array([d.toordinal() - EPOCH for d in days], dtype=np.int64)
    kept = expiry_filter_mask(ordinals, which, start).tolist()
    if which is ExpiryFilter.ALL:
        want = [True] * len(days)
    elif which is ExpiryFilter.ZERO_DTE:
        want = [d == start for d in days]
    elif which is ExpiryFilter.EX_NEXT:
        want = [d != min(days) for d in days]
    else:
        monthlies = sorted(d for d in set(days) if d in MONTHLY)
        want = [not monthlies or d != monthlies[0] for d in days]
    assert kept == want


# --- settlement instants ----------------------------------------------------------------


def new_york_offset_hours(day: date) -> int:
    """US Eastern: EDT (-4) from the second Sunday of March to the first Sunday of November."""
    march = [date(day.year, 3, d) for d in range(1, 32) if date(day.year, 3, d).weekday() == 6]
    november = [date(day.year, 11, d) for d in range(1, 8) if date(day.year, 11, d).weekday() == 6]
    return -4 if march[1] <= day < november[0] else -5


@settings(max_examples=120, deadline=None)
@given(day=st.dates(date(2008, 1, 1), date(2035, 12, 31)), am=st.booleans())
def test_settlement_instants_are_0930_or_1600_new_york_across_daylight_saving(
    day: date, am: bool
) -> None:
    got = settlement_micros(np.array([day.toordinal() - EPOCH]), np.array([am]))[0]
    local = datetime(day.year, day.month, day.day, 9 if am else 16, 30 if am else 0, tzinfo=UTC)
    want = local - timedelta(hours=new_york_offset_hours(day))
    assert got == int(want.timestamp()) * 1_000_000


def easter_lichtenberg(year: int) -> date:
    """Gauss's Easter formula in Lichtenberg's form: a second, independent algorithm."""
    k = year // 100
    m = 15 + (3 * k + 3) // 4 - (8 * k + 13) // 25
    s = 2 - (3 * k + 3) // 4
    a = year % 19
    d = (19 * a + m) % 30
    r = (d + a // 11) // 29
    full_moon = 21 + d - r
    first_sunday = 7 - (year + year // 4 + s) % 7
    easter_march = full_moon + 7 - (full_moon - first_sunday) % 7
    return date(year, 3, 1) + timedelta(days=easter_march - 1)


def test_easter_matches_a_second_algorithm_for_every_year_of_the_gregorian_calendar() -> None:
    assert {y: easter_lichtenberg(y) for y in EASTER} == EASTER  # the second one is right too
    wrong = [y for y in range(1583, 4100) if _easter(y) != easter_lichtenberg(y)]
    assert wrong == []


def test_greeks_of_degenerate_rows_raise_no_numpy_warnings() -> None:
    # Rows with no volatility, no time, or a volatility so small d1 overflows: zero, silently
    # (a chain with missing IVs must not fill the daemon's log with RuntimeWarnings).
    import warnings

    strike = np.array([100.0, 100.0, 200.0, 100.0])
    years = np.array([0.5, 0.0, 1e-160, 0.0])
    iv = np.array([0.0, 0.2, 1e-160, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = bs_all(100.0, strike, years, iv, np.array([True, False, True, False]), r=0.01, q=0.02)
        gamma = bs_gamma(100.0, strike, years, iv, r=0.01, q=0.02)
    for values in (g.gamma, g.delta, g.theta, g.vega, gamma):
        assert values.tolist() == [0.0, 0.0, 0.0, 0.0]
