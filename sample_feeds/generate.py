"""Generate the committed sample chains: realistic synthetic SPX, NDX and SPY option chains.

Deterministic for a given --seed (default 20261124). Prices and vendor greeks are
Black-Scholes with a volatility smile/skew and a term structure; open interest
clusters at round strikes, near spot and on monthly/quarterly expiries; deep
in-the-money contracts carry IV 0.0 like CBOE's feed. Every format the daemon
reads is written (see sample_feeds/README.md), plus deliberately broken files
under broken/.

Run from the repository root:  python sample_feeds/generate.py [--seed N] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gexdaemon.core.chain import validate_contracts
from gexdaemon.core.gex import compute_gex
from gexdaemon.core.settings import GexSettings
from gexdaemon.feeds.base import FeedFile
from gexdaemon.feeds.registry import parse

NEW_YORK = ZoneInfo("America/New_York")
HERE = Path(__file__).resolve().parent

# The snapshot every sample describes: Tuesday 24 November 2026, 15:45 New York.
SNAPSHOT_AT = datetime(2026, 11, 24, 15, 45, tzinfo=NEW_YORK).astimezone(UTC)

# NYSE full-day closures between the snapshot and the longest expiry generated.
HOLIDAYS = {
    date(2026, 11, 26),
    date(2026, 12, 25),
    date(2027, 1, 1),
    date(2027, 1, 18),
    date(2027, 2, 15),
    date(2027, 3, 26),
    date(2027, 5, 31),
    date(2027, 6, 18),
    date(2027, 7, 5),
    date(2027, 9, 6),
    date(2027, 11, 25),
    date(2027, 12, 24),
    date(2028, 1, 17),
    date(2028, 2, 21),
    date(2028, 4, 14),
    date(2028, 5, 29),
    date(2028, 6, 19),
    date(2028, 7, 4),
    date(2028, 9, 4),
    date(2028, 11, 23),
    date(2028, 12, 25),
    date(2029, 1, 1),
}
AM_ROOTS = {"SPX", "NDX"}


@dataclass(frozen=True)
class Underlying:
    symbol: str  # as the index is quoted: SPX, NDX, SPY
    name: str  # CBOE's name line
    spot: float
    dividend_yield: float
    atm_vol: float
    am_root: str | None  # AM-settled monthly root (SPX, NDX) or None
    pm_root: str  # PM-settled root (SPXW, NDXP, SPY)
    spacings: tuple[tuple[float, float], ...]  # (max |moneyness|, strike step), inner to outer
    round_strikes: tuple[tuple[float, float], ...]  # (multiple, OI boost)
    daily_weeks: int  # PM dailies out to this many weeks
    weekly_months: int  # PM Friday weeklies out to this many months
    monthly_months: int  # third-Friday monthlies out to this many months
    leap_years: int  # June/December LEAPS out to this many years
    oi_scale: float
    tick: float
    multiplier: int = 100


SPX = Underlying(
    symbol="SPX",
    name="S&P 500 INDEX",
    spot=6850.25,
    dividend_yield=0.013,
    atm_vol=0.135,
    am_root="SPX",
    pm_root="SPXW",
    spacings=((0.06, 5.0), (0.25, 25.0), (0.60, 100.0)),
    round_strikes=((100.0, 3.0), (50.0, 1.8), (25.0, 1.3)),
    daily_weeks=8,
    weekly_months=6,
    monthly_months=13,
    leap_years=3,
    oi_scale=450.0,
    tick=0.05,
)
NDX = Underlying(
    symbol="NDX",
    name="NASDAQ 100 INDEX",
    spot=24150.75,
    dividend_yield=0.007,
    atm_vol=0.18,
    am_root="NDX",
    pm_root="NDXP",
    spacings=((0.06, 50.0), (0.20, 250.0), (0.45, 1000.0)),
    round_strikes=((1000.0, 3.0), (500.0, 1.8), (250.0, 1.3)),
    daily_weeks=3,
    weekly_months=2,
    monthly_months=6,
    leap_years=1,
    oi_scale=40.0,
    tick=0.10,
)
SPY = Underlying(
    symbol="SPY",
    name="SPDR S&P 500 ETF TRUST",
    spot=684.57,
    dividend_yield=0.012,
    atm_vol=0.14,
    am_root=None,
    pm_root="SPY",
    spacings=((0.05, 1.0), (0.15, 5.0), (0.40, 10.0)),
    round_strikes=((10.0, 2.5), (5.0, 1.6)),
    daily_weeks=3,
    weekly_months=2,
    monthly_months=7,
    leap_years=1,
    oi_scale=2500.0,
    tick=0.01,
)
RATE = 0.04


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def monthly_expiry(year: int, month: int) -> date:
    """Third Friday, or the trading day before it when it is a holiday (Good Friday)."""
    day = third_friday(year, month)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def add_months(day: date, months: int) -> tuple[int, int]:
    total = day.year * 12 + day.month - 1 + months
    return total // 12, total % 12 + 1


def expiries(u: Underlying, today: date) -> list[tuple[str, date]]:
    """(root, expiry) pairs: PM dailies, PM Friday weeklies, AM and PM monthlies, LEAPS."""
    out: set[tuple[str, date]] = set()
    day = today + timedelta(days=1)
    while day <= today + timedelta(weeks=u.daily_weeks):
        if is_trading_day(day):
            out.add((u.pm_root, day))
        day += timedelta(days=1)
    end_weekly = date(*add_months(today, u.weekly_months), 1)
    while day < end_weekly:
        if day.weekday() == 4:
            friday = day
            while not is_trading_day(friday):
                friday -= timedelta(days=1)
            out.add((u.pm_root, friday))
        day += timedelta(days=1)
    for k in range(u.monthly_months + 1):
        y, m = add_months(today, k)
        expiry = monthly_expiry(y, m)
        if expiry <= today:
            continue
        out.add((u.am_root or u.pm_root, expiry))
        if u.am_root and k <= 6:
            out.add((u.pm_root, expiry))  # the AM/PM pair on the same date
    for year in range(today.year + 1, today.year + u.leap_years + 1):
        for month in (6, 12):
            out.add((u.am_root or u.pm_root, monthly_expiry(year, month)))
    return sorted(out, key=lambda re: (re[1], re[0]))


def settlement(root: str, expiry: date) -> datetime:
    at = time(9, 30) if root in AM_ROOTS else time(16, 0)
    return datetime.combine(expiry, at, tzinfo=NEW_YORK).astimezone(UTC)


# ---------------------------------------------------------------------------
# Black-Scholes
# ---------------------------------------------------------------------------

_ERF = np.frompyfunc(math.erf, 1, 1)


def norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64))


def black_scholes(
    spot: float,
    strike: np.ndarray,
    years: np.ndarray,
    vol: np.ndarray,
    *,
    is_call: np.ndarray,
    q: float,
) -> dict[str, np.ndarray]:
    sqrt_t = np.sqrt(years)
    vt = vol * sqrt_t
    d1 = (np.log(spot / strike) + (RATE - q + 0.5 * vol * vol) * years) / vt
    d2 = d1 - vt
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    dq, dr = np.exp(-q * years), np.exp(-RATE * years)
    nd1, nd2 = norm_cdf(d1), norm_cdf(d2)
    call = spot * dq * nd1 - strike * dr * nd2
    put = strike * dr * (1 - nd2) - spot * dq * (1 - nd1)
    price = np.where(is_call, call, put)
    delta = np.where(is_call, dq * nd1, dq * (nd1 - 1))
    gamma = dq * pdf / (spot * vt)
    vega = spot * dq * pdf * sqrt_t / 100
    common = -spot * dq * pdf * vol / (2 * sqrt_t)
    theta_c = common - RATE * strike * dr * nd2 + q * spot * dq * nd1
    theta_p = common + RATE * strike * dr * (1 - nd2) - q * spot * dq * (1 - nd1)
    theta = np.where(is_call, theta_c, theta_p) / 365
    rho = np.where(is_call, strike * years * dr * nd2, -strike * years * dr * (1 - nd2)) / 100
    return {
        "price": price,
        "delta": delta,
        "gamma": gamma,
        "vega": vega,
        "theta": theta,
        "rho": rho,
    }


# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------


def strike_grid(u: Underlying, years: float) -> np.ndarray:
    """Strikes for one expiry: fine near spot, coarser further out, wider for longer expiries."""
    reach = min(1.0, 0.35 + 1.4 * math.sqrt(years))
    strikes: set[float] = set()
    inner = 0.0
    spacings = list(u.spacings)
    if years > 0.3:  # longer expiries list no fine strikes: the first band takes the second's step
        spacings[0] = (spacings[0][0], spacings[1][1])
    for edge, step in spacings:
        lo = u.spot * (1 - min(edge * reach, 0.92))
        hi = u.spot * (1 + edge * reach)
        k = math.floor(lo / step) * step
        while k <= hi:
            if abs(k / u.spot - 1) >= inner * reach * 0.999:
                strikes.add(round(k, 2))
            k += step
        inner = edge
    return np.array(sorted(s for s in strikes if s > 0))


def smile(u: Underlying, moneyness: np.ndarray, years: np.ndarray) -> np.ndarray:
    atm = u.atm_vol + 0.035 * np.exp(-years * 6.0) - 0.01 * np.minimum(years, 2.0)
    x = moneyness / np.sqrt(np.maximum(years, 1 / 365))
    vol = atm * (1 - 0.13 * x + 0.055 * x * x)
    return np.clip(vol, 0.55 * atm, 4.0 * atm)


def round_to_tick(values: np.ndarray, tick: float) -> np.ndarray:
    return np.round(np.round(values / tick) * tick, 2)


@dataclass
class Chain:
    underlying: Underlying
    table: dict[str, np.ndarray]  # one entry per contract
    snapshot_at: datetime


def build_chain(u: Underlying, rng: np.random.Generator, snapshot_at: datetime) -> Chain:
    today = snapshot_at.astimezone(NEW_YORK).date()
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("root", "expiry", "strike", "is_call", "years", "monthly", "quarterly")
    }
    for root, expiry in expiries(u, today):
        years = (settlement(root, expiry) - snapshot_at).total_seconds() / (365 * 86400)
        strikes = strike_grid(u, years)
        n = len(strikes)
        is_monthly = expiry == monthly_expiry(expiry.year, expiry.month)
        for is_call in (True, False):
            cols["root"].append(np.full(n, root, dtype=object))
            cols["expiry"].append(np.full(n, expiry, dtype=object))
            cols["strike"].append(strikes)
            cols["is_call"].append(np.full(n, is_call))
            cols["years"].append(np.full(n, years))
            cols["monthly"].append(np.full(n, is_monthly))
            cols["quarterly"].append(np.full(n, is_monthly and expiry.month % 3 == 0))
    t = {k: np.concatenate(v) for k, v in cols.items()}
    strike, years, is_call = t["strike"], t["years"], t["is_call"]
    forward = u.spot * np.exp((RATE - u.dividend_yield) * years)
    k = np.log(strike / forward)
    vol = smile(u, k, years)
    bs = black_scholes(u.spot, strike, years, vol, is_call=is_call, q=u.dividend_yield)
    theo = np.maximum(bs["price"], 0.0)
    # Quotes: a spread that widens with price and for far, illiquid strikes; one tick minimum.
    spread = np.maximum(u.tick, np.maximum(0.015 * theo, u.tick * (1 + 6 * np.abs(k))))
    bid = round_to_tick(np.maximum(theo - spread / 2, 0.0), u.tick)
    ask = round_to_tick(np.maximum(theo + spread / 2, u.tick), u.tick)
    ask = np.maximum(ask, bid + u.tick)
    # Open interest: near spot, round strikes, monthly/quarterly, puts below and calls above.
    width = 0.025 + 0.16 * np.sqrt(years)
    otm = np.where(is_call, k > 0, k < 0)
    side_weight = np.where(otm, np.where(is_call, 1.0, 1.12), 0.5)
    expiry_weight = np.where(t["quarterly"], 5.0, np.where(t["monthly"], 3.0, 0.55))
    expiry_weight *= np.where(years < 5 / 365, 0.6, 1.0)
    round_weight = np.ones_like(strike)
    for multiple, boost in u.round_strikes:
        on_round = np.isclose(np.mod(strike, multiple), 0.0) & (round_weight == 1.0)
        round_weight = np.where(on_round, boost, round_weight)
    base = u.oi_scale * expiry_weight * side_weight * round_weight * np.exp(-np.abs(k) / width)
    oi = np.floor(base * rng.lognormal(0.0, 0.7, size=len(strike)))
    oi = np.where(rng.random(len(strike)) < 0.04, 0.0, oi)
    near = np.exp(-np.abs(k) / (0.01 + 0.05 * np.sqrt(years)))
    volume = np.floor(
        (oi * 0.15 + u.oi_scale * 0.3 * near)
        * np.exp(-years * 3)
        * rng.lognormal(0, 0.9, len(strike))
    )
    volume = np.where(rng.random(len(strike)) < 0.1, 0.0, volume)
    last = np.where(
        volume > 0, round_to_tick(theo * (1 + rng.normal(0, 0.03, len(strike))), u.tick), 0.0
    )
    last = np.maximum(last, 0.0)
    # CBOE's feed: IV 0.0 where it cannot solve (deep in the money); gamma to 4 decimals.
    iv = np.where(np.abs(bs["delta"]) > 0.985, 0.0, np.round(vol, 4))
    table = {
        "root": t["root"],
        "expiry": t["expiry"],
        "strike": strike,
        "is_call": is_call,
        "years": years,
        "bid": bid,
        "ask": ask,
        "last": last,
        "theo": np.round(theo, 4),
        "iv": iv,
        "model_vol": vol,
        "open_interest": oi,
        "volume": volume,
        "delta": np.round(bs["delta"], 4),
        "gamma": np.round(bs["gamma"], 4),
        "theta": np.round(bs["theta"], 4),
        "vega": np.round(bs["vega"], 4),
        "rho": np.round(bs["rho"], 4),
    }
    return Chain(underlying=u, table=table, snapshot_at=snapshot_at)


def occ_symbols(chain: Chain) -> list[str]:
    t = chain.table
    return [
        f"{root}{expiry:%y%m%d}{'C' if call else 'P'}{round(k * 1000):08d}"
        for root, expiry, call, k in zip(
            t["root"], t["expiry"], t["is_call"], t["strike"], strict=True
        )
    ]


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def fmt(value: float) -> float:
    return float(round(float(value), 4))


def write_cboe_json(chain: Chain, path: Path, rng: np.random.Generator) -> None:
    u, t = chain.underlying, chain.table
    symbols = occ_symbols(chain)
    options = []
    stamp = chain.snapshot_at.astimezone(UTC)
    for i, symbol in enumerate(symbols):
        traded = t["volume"][i] > 0
        prev = fmt(t["theo"][i] * (1 + rng.normal(0, 0.05)))
        options.append(
            {
                "option": symbol,
                "bid": fmt(t["bid"][i]),
                "bid_size": float(rng.integers(1, 60)),
                "ask": fmt(t["ask"][i]),
                "ask_size": float(rng.integers(1, 60)),
                "iv": fmt(t["iv"][i]),
                "open_interest": float(t["open_interest"][i]),
                "volume": float(t["volume"][i]),
                "delta": fmt(t["delta"][i]),
                "gamma": fmt(t["gamma"][i]),
                "vega": fmt(t["vega"][i]),
                "theta": fmt(t["theta"][i]),
                "rho": fmt(t["rho"][i]),
                "theo": fmt(t["theo"][i]),
                "change": fmt(t["last"][i] - prev) if traded else 0.0,
                "open": fmt(t["last"][i]) if traded else 0.0,
                "high": fmt(t["last"][i] * 1.04) if traded else 0.0,
                "low": fmt(t["last"][i] * 0.96) if traded else 0.0,
                "tick": "up"
                if traded and rng.random() < 0.5
                else ("down" if traded else "no_change"),
                "last_trade_price": fmt(t["last"][i]),
                "last_trade_time": (
                    (stamp - timedelta(minutes=int(rng.integers(1, 300))))
                    .astimezone(NEW_YORK)
                    .strftime("%Y-%m-%dT%H:%M:%S")
                    if traded
                    else None
                ),
                "percent_change": fmt((t["last"][i] / prev - 1) * 100)
                if traded and prev > 0
                else 0.0,
                "prev_day_close": prev,
            }
        )
    prefix = "_" if u.am_root else ""
    doc = {
        "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S"),
        "data": {
            "options": options,
            "symbol": ("^" if u.am_root else "") + u.symbol,
            "security_type": "index" if u.am_root else "fund",
            "exchange_id": 5,
            "current_price": u.spot,
            "price_change": 12.35,
            "price_change_percent": 0.1806,
            "bid": round(u.spot - 0.4, 2),
            "ask": round(u.spot + 0.4, 2),
            "bid_size": 1.0,
            "ask_size": 1.0,
            "open": round(u.spot * 0.997, 2),
            "high": round(u.spot * 1.004, 2),
            "low": round(u.spot * 0.994, 2),
            "close": u.spot,
            "prev_day_close": round(u.spot - 12.35, 2),
            "volume": 0.0 if u.am_root else 74482292.0,
            "iv30": round(u.atm_vol * 100, 2),
            "iv30_change": -0.31,
            "iv30_change_percent": -2.1,
            "seqno": 184467,
            "last_trade_time": stamp.astimezone(NEW_YORK).strftime("%Y-%m-%dT%H:%M:%S"),
            "tick": "up",
        },
        "symbol": prefix + u.symbol,
    }
    path.write_bytes(msgspec.json.encode(doc))


QUOTE_HEADER = (
    "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,"
    "Strike,Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest"
)


def write_quote_table(chain: Chain, path: Path, style: str) -> None:
    """CBOE's quote-table CSV in one of the drifts real downloads show."""
    u, t = chain.underlying, chain.table
    symbols = occ_symbols(chain)
    local = chain.snapshot_at.astimezone(NEW_YORK)
    hour12 = local.strftime("%I").lstrip("0")
    zone = local.strftime("%Z")
    pairs: dict[tuple[date, str, float], dict[bool, int]] = {}
    for i in range(len(symbols)):
        key = (t["expiry"][i], t["root"][i], float(t["strike"][i]))
        pairs.setdefault(key, {})[bool(t["is_call"][i])] = i
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    volume = "Volume: 0" if u.am_root else '"Volume: 74,482,292"'
    if style == "classic":  # 2022 style: leading blank line
        lines = [
            "",
            f"{u.name},Last: {u.spot},Change:  12.35",
            f'"Date: {local:%B} {local.day} {local.year}, {hour12}:{local:%M} {local:%p} {zone}",'
            f"Bid: {u.spot - 0.4:.2f},Ask: {u.spot + 0.4:.2f},Size: 1*1,{volume}",
        ]
    elif style == "banner":  # a banner line first, "at" in the date
        lines = [
            "CBOE Delayed Quotes - Options Chain",
            "",
            f"{u.name},Last: {u.spot:,.2f},Change:  +41.20",
            f'"Date: {local:%B} {local.day}, {local.year} at {hour12}:{local:%M} {local:%p} {zone}",'
            f"Bid: {u.spot - 0.4:.2f},Ask: {u.spot + 0.4:.2f},Size: 1*1,{volume}",
        ]
    else:  # "spreadsheet": EU locale date, no leading blank line, padded with commas
        offset = int(local.utcoffset().total_seconds() // 3600)  # type: ignore[union-attr]
        lines = [
            f"{u.name},Last: {u.spot},Change:  0.82" + "," * 19,
            f"Date: {local.day} {local:%B} {local.year} at {local:%H:%M} GMT{offset:+d},"
            f"Bid: {u.spot - 0.01:.2f},Ask: {u.spot + 0.01:.2f},Size: 12*9,{volume}" + "," * 17,
        ]
    out.write("\n".join(lines) + "\n")
    out.write(QUOTE_HEADER + "\n")
    for (expiry, _root, strike), sides in sorted(pairs.items()):
        if True not in sides or False not in sides:
            continue
        c, p = sides[True], sides[False]

        def side(i: int) -> list[str]:
            return [
                symbols[i],
                f"{t['last'][i]:g}",
                "0",
                f"{t['bid'][i]:g}",
                f"{t['ask'][i]:g}",
                f"{int(t['volume'][i])}",
                f"{t['iv'][i]:g}",
                f"{t['delta'][i]:g}",
                f"{t['gamma'][i]:g}",
                f"{int(t['open_interest'][i])}",
            ]

        writer.writerow([f"{expiry:%a %b %d %Y}", *side(c), f"{strike:.2f}", *side(p)])
    path.write_text(out.getvalue())


def long_table(chain: Chain, *, by_symbol: bool, rows: np.ndarray) -> pa.Table:
    t = chain.table
    symbols = np.array(occ_symbols(chain), dtype=object)
    cols: dict[str, object] = {}
    if by_symbol:
        cols["option_symbol"] = pa.array(symbols[rows].tolist(), type=pa.string())
    else:
        cols["underlying"] = pa.array([chain.underlying.symbol] * len(rows), type=pa.string())
        cols["root"] = pa.array(t["root"][rows].tolist(), type=pa.string())
        cols["expiration"] = pa.array(t["expiry"][rows].tolist(), type=pa.date32())
        cols["strike"] = pa.array(t["strike"][rows], type=pa.float64())
        cols["option_type"] = pa.array(
            np.where(t["is_call"][rows], "call", "put").tolist(), type=pa.string()
        )
    for name in ("bid", "ask", "last", "iv", "delta", "gamma", "theta", "vega"):
        cols[name] = pa.array(t[name][rows], type=pa.float64())
    cols["volume"] = pa.array(t["volume"][rows].astype(np.int64))
    cols["open_interest"] = pa.array(t["open_interest"][rows].astype(np.int64))
    cols["underlying_price"] = pa.array(np.full(len(rows), chain.underlying.spot))
    cols["quote_time"] = pa.array([chain.snapshot_at] * len(rows), type=pa.timestamp("s", tz="UTC"))
    return pa.table(cols)


def subset(chain: Chain, max_years: float, max_moneyness: float) -> np.ndarray:
    t = chain.table
    k = np.abs(np.log(t["strike"] / chain.underlying.spot))
    return np.flatnonzero((t["years"] <= max_years) & (k <= max_moneyness))


def write_long_csv(table: pa.Table, path: Path, snapshot_at: datetime) -> None:
    # Spot and time sit in columns; a header comment says so for a human reader.
    buf = io.StringIO()
    names = table.column_names
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    columns = [table.column(n).to_pylist() for n in names]
    for row in zip(*columns, strict=True):
        writer.writerow(
            [
                v.isoformat()
                if isinstance(v, datetime | date)
                else (f"{v:g}" if isinstance(v, float) else v)
                for v in row
            ]
        )
    path.write_text(buf.getvalue())


def strike_level_rows(chain: Chain) -> list[dict[str, float | int]]:
    """The chain's own exposure per strike, computed by gexdaemon's engine."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "_SOURCE.json"
        write_cboe_json(chain, scratch, np.random.default_rng(0))
        _, raw = parse(FeedFile(scratch.name, scratch.read_bytes()))
    checked = validate_contracts(
        raw, spot=chain.underlying.spot, snapshot_at=chain.snapshot_at, underlying=None
    )
    gex = compute_gex(
        checked.contracts,
        spot=chain.underlying.spot,
        snapshot_at=chain.snapshot_at,
        settings=GexSettings(),
        with_profile=False,
    )
    s = gex.strikes
    rows = []
    for i in range(len(s)):
        rows.append(
            {
                "strike_price": float(s.strike[i]),
                "call_open_interest": int(s.call_open_interest[i]),
                "put_open_interest": int(s.put_open_interest[i]),
                "call_volume": int(s.call_volume[i]),
                "put_volume": int(s.put_volume[i]),
                "call_bid": float(s.call_bid[i]),
                "call_ask": float(s.call_ask[i]),
                "put_bid": float(s.put_bid[i]),
                "put_ask": float(s.put_ask[i]),
                "gamma": round(float(s.gamma[i]), 4),
                "delta": round(float(s.delta[i]), 4),
                "theta": round(float(s.theta[i]), 4),
                "vega": round(float(s.vega[i]), 4),
                "call_gex": round(float(s.call_gex[i]), 2),  # type: ignore[index]
                "put_gex": round(float(s.put_gex[i]), 2),  # type: ignore[index]
                "net_gex": round(float(s.call_gex[i]) + float(s.put_gex[i]), 2),  # type: ignore[index]
            }
        )
    return rows


def write_strike_files(chain: Chain, out: Path, stem: str) -> None:
    rows = strike_level_rows(chain)
    meta = {
        "symbol": chain.underlying.symbol,
        "spot_price": chain.underlying.spot,
        "snapshot_at": chain.snapshot_at.isoformat().replace("+00:00", "Z"),
        "gex_unit": "usd_per_1pct",
        "sign_model": "dealer_long_calls_short_puts",
        "gamma_source": "model",
        "expiry_filter": "all",
    }
    names = list(rows[0])
    lines = [f"# {k}: {v}" for k, v in meta.items()]
    lines.append(",".join(names))
    lines.extend(",".join(f"{r[n]}" for n in names) for r in rows)
    (out / f"{stem}.csv").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_bytes(msgspec.json.encode({**meta, "strikes": rows}))
    nd = [msgspec.json.encode({"metadata": meta}).decode()]
    nd.extend(msgspec.json.encode(r).decode() for r in rows)
    (out / f"{stem}.ndjson").write_text("\n".join(nd) + "\n")
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata({"gexdaemon": msgspec.json.encode(meta)})
    pq.write_table(table, out / f"{stem}.parquet", compression="zstd")


# ---------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------


def write_broken(out: Path, spx_json: Path, spx_csv: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = spx_json.read_bytes()
    (out / "truncated_SPX.json").write_bytes(data[:40_000])
    (out / "empty.csv").write_bytes(b"")
    (out / "whitespace.json").write_bytes(b"  \n\n  ")
    (out / "binary_junk.csv").write_bytes(bytes(rng.integers(0, 256, 4096, dtype=np.uint8)))
    (out / "not_a_chain.csv").write_text(
        "date,open,high,low,close,volume\n2026-11-23,6801.2,6850.1,6790.4,6837.9,2415000000\n"
    )
    (out / "not_a_chain.json").write_text('{"status": "ok", "results": [1, 2, 3]}')
    doc = msgspec.json.decode(data)
    bad = dict(doc)
    opts = list(doc["data"]["options"][:200])
    opts[17] = {**opts[17], "bid": "n/a"}
    bad["data"] = {**doc["data"], "options": opts}
    (out / "wrong_type_SPX.json").write_bytes(msgspec.json.encode(bad))
    huge = dict(doc)
    huge_opts = [
        {**o, "open_interest": 1e300, "gamma": 1e300, "iv": 1e300}
        for o in doc["data"]["options"][:300]
    ]
    huge["data"] = {**doc["data"], "options": huge_opts}
    (out / "huge_numbers_SPX.json").write_bytes(msgspec.json.encode(huge))
    future = dict(doc)
    future["timestamp"] = "2031-01-02 15:00:00"
    future["data"] = {**doc["data"], "options": doc["data"]["options"][:300]}
    (out / "future_dated_SPX.json").write_bytes(msgspec.json.encode(future))
    text = spx_csv.read_text().splitlines()
    header_at = next(i for i, line in enumerate(text) if line.startswith("Expiration Date,"))
    (out / "no_header_quotedata.csv").write_text(
        "\n".join(text[:header_at] + text[header_at + 1 :][:200]) + "\n"
    )
    # Every contract moved to expiries a year before the file's date: all already settled.
    expired = text[: header_at + 1] + [
        line.replace("W2611", "W2511").replace("W2612", "W2512").replace(" 2026,", " 2025,")
        for line in text[header_at + 1 : header_at + 300]
    ]
    (out / "all_expired_quotedata.csv").write_text("\n".join(expired) + "\n")
    ragged = text[: header_at + 1] + [
        line + ",surplus" if i % 3 == 0 else line
        for i, line in enumerate(text[header_at + 1 : header_at + 120])
    ]
    (out / "ragged_rows_quotedata.csv").write_text("\n".join(ragged) + "\n")
    (out / "no_spot_strikes.csv").write_text(
        "strike_price,call_open_interest,put_open_interest,gamma\n6800,1200,3400,-1520.5\n6850,2400,800,3050.25\n"
    )


# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    chains = {u.symbol: build_chain(u, rng, SNAPSHOT_AT) for u in (SPX, NDX, SPY)}
    spx, ndx, spy = chains["SPX"], chains["NDX"], chains["SPY"]
    write_cboe_json(spx, out / "_SPX.json", rng)
    write_cboe_json(ndx, out / "_NDX.json", rng)
    write_cboe_json(spy, out / "SPY.json", rng)
    write_quote_table(spx, out / "SPX_quotedata.csv", "classic")
    write_quote_table(ndx, out / "NDX_quotedata.csv", "banner")
    write_quote_table(spy, out / "SPY_quotedata.csv", "spreadsheet")
    spy_rows = subset(spy, max_years=0.5, max_moneyness=0.15)
    write_long_csv(
        long_table(spy, by_symbol=False, rows=spy_rows), out / "SPY_contracts.csv", SNAPSHOT_AT
    )
    ndx_rows = np.arange(len(ndx.table["strike"]))
    pq.write_table(
        long_table(ndx, by_symbol=True, rows=ndx_rows),
        out / "NDX_contracts.parquet",
        compression="zstd",
    )
    spx_rows = subset(spx, max_years=0.1, max_moneyness=0.06)
    write_long_csv(
        long_table(spx, by_symbol=True, rows=spx_rows), out / "SPX_contracts.csv", SNAPSHOT_AT
    )
    pq.write_table(
        long_table(spx, by_symbol=False, rows=spx_rows),
        out / "SPX_contracts.parquet",
        compression="zstd",
    )
    write_strike_files(spx, out, "SPX_strikes")
    write_broken(out / "broken", out / "_SPX.json", out / "SPX_quotedata.csv", rng)
    for u in (SPX, NDX, SPY):
        print(f"{u.symbol}: {len(chains[u.symbol].table['strike']):,} contracts")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".py")
    print(f"wrote {out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
