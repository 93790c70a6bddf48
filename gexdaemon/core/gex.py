"""The GEX engine: dealer gamma exposure per strike, totals, zero gamma and walls (NumPy).

Conventions (see docs/gex.md and ../shared/reference/gex-math.md):

- Units (`GexUnit`), per contract, g the per-share gamma, OI the open interest, M
  the multiplier and S the spot: usd_per_1pct = g*OI*M*S^2*0.01,
  usd_per_point = g*OI*M*S, shares_per_point = g*OI*M.
- Sign (`SignModel`): dealer_long_calls_short_puts (calls +, puts -),
  dealer_short_calls_long_puts (calls -, puts +), dealer_short_both (both -).
  call_gex, put_gex and net_gex carry the sign; net = call + put.
- Gamma (`GammaSource`): `model` recomputes Black-Scholes gamma from the contract's
  IV (r, q from settings) and falls back to the vendor gamma where IV is missing or
  zero; `vendor` uses the vendor gamma and falls back to the model where the vendor
  gave none. Each contract records which one it used.
- Time to expiry: ACT/365 from the snapshot instant to the settlement instant
  (AM roots 09:30 New York, PM 16:00), floored at `min_time_to_expiry_minutes`.
  Contracts already settled are dropped and counted as `expired`.
- Expiry filters: all; 0dte (contracts expiring on the snapshot's New York date);
  ex_next (all but the nearest expiry); ex_next_monthly (all but the next
  third-Friday monthly, the Thursday before when that Friday is Good Friday).
- Per strike (summed over roots and expiries): the seed's GEXStrike fields, where
  `gamma`, `delta`, `theta` and `vega` are dealer exposures (signed by the sign
  model): gamma in shares per 1-point move (sum of g*OI*M), delta in shares,
  theta in $ per day, vega in $ per vol point; bid/ask are the quotes of the
  nearest-expiry contract at the strike. Plus call_gex, put_gex, net_gex in `unit`.
- Levels: total GEX at spot; call wall = strike with the largest |call GEX|,
  put wall = largest |put GEX|, absolute gamma strike = largest |call| + |put|.
- Zero gamma: the total is recomputed at `profile_points` hypothetical spots over
  [profile_low, profile_high] x spot with each contract's IV and T held fixed (the
  profile always uses model gamma, also under `gamma_source = vendor`: a vendor
  gamma is only valid at the vendor's spot; contracts without IV are left out of
  the profile). Every sign change is a crossing; each is refined by bisection on
  the exact float64 total to 1e-7 x spot, far under one strike step. All crossings
  are reported; the one nearest to spot is `zero_gamma`.

The profile is one (points x contracts) NumPy computation in chunks. With
ln S_i = a_i, b_j = 1/(sigma_j sqrt(T_j)) and c_j = (-ln K_j + (r - q + sigma_j^2/2) T_j) b_j,
d1_ij = a_i b_j + c_j, so each chunk costs an outer product, a square, an exp and
a matrix-vector product. A contract only matters where |d1| < 8.5 (beyond that
its gamma is below 1e-15 of its peak); contracts are sorted by that band and each
chunk is evaluated only over the profile rows its band covers, which is what keeps
short-dated chains cheap. The row sums use einsum rather than BLAS: OpenBLAS
spreads a small matrix-vector product over threads, and with several workers
computing at once on a 2-core machine that oversubscription made the profile 7x
slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from gexdaemon.core.chain import ChainError, settlement_instants, to_micros
from gexdaemon.core.settings import GexSettings
from gexdaemon.core.timeutil import new_york_date
from gexdaemon.core.vocab import ExpiryFilter, GammaSource, GexUnit, SignModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

YEAR_SECONDS = 365.0 * 86400.0
D1_CUTOFF = 8.5
SQRT_2PI = math.sqrt(2.0 * math.pi)
CHUNK_CONTRACTS = 128  # (points x 128) float32 blocks stay in L2 cache
REFINE_ITERATIONS = 40
REFINE_TOLERANCE = 1e-7  # x spot
# exp() of arguments below about -708 returns subnormals, which run on a slow path
# (5x slower); -700 keeps results normal and still ~1e-304 of a contract's peak.
EXP_FLOOR = -700.0
EXP_FLOOR_32 = -87.0  # the same for float32

GAMMA_FROM_MODEL = 1
GAMMA_FROM_VENDOR = 2
GAMMA_NONE = 0


@dataclass
class StrikeExposure:
    """Per-strike columns, sorted by strike (all arrays have one entry per strike)."""

    strike: FloatArray
    call_open_interest: npt.NDArray[np.int64]
    put_open_interest: npt.NDArray[np.int64]
    call_volume: npt.NDArray[np.int64]
    put_volume: npt.NDArray[np.int64]
    call_bid: FloatArray
    call_ask: FloatArray
    put_bid: FloatArray
    put_ask: FloatArray
    gamma: FloatArray
    delta: FloatArray
    theta: FloatArray
    vega: FloatArray
    call_gex: FloatArray | None
    put_gex: FloatArray | None
    net_gex: FloatArray

    def __len__(self) -> int:
        return len(self.strike)


@dataclass
class Levels:
    total_gex: float
    call_wall: float | None
    put_wall: float | None
    abs_gamma_strike: float | None
    zero_gamma: float | None
    zero_gamma_crossings: list[float]


@dataclass
class GexResult:
    """Everything the engine computed for one snapshot."""

    spot: float
    snapshot_at: datetime
    unit: GexUnit
    sign_model: SignModel
    gamma_source: GammaSource
    expiry_filter: ExpiryFilter
    strikes: StrikeExposure
    levels: Levels
    excluded: dict[str, int]
    contracts: pa.Table | None  # the contracts used, with per-contract exposure columns
    profile_spots: FloatArray = field(default_factory=lambda: np.zeros(0))
    profile_gex: FloatArray = field(default_factory=lambda: np.zeros(0))
    profile_contracts: int = 0
    gamma_origin_counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Black-Scholes pieces (vectorised)
# ---------------------------------------------------------------------------


def bs_gamma(
    spot: float | FloatArray,
    strike: FloatArray,
    years: FloatArray,
    iv: FloatArray,
    *,
    r: float = 0.0,
    q: float = 0.0,
) -> FloatArray:
    """Per-share Black-Scholes gamma (identical for calls and puts); 0 where iv or T <= 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vol_t = iv * np.sqrt(years)
        d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * years) / vol_t
        g = np.exp(-q * years - 0.5 * d1 * d1) / (spot * vol_t * SQRT_2PI)
    return np.asarray(np.where((iv > 0) & (years > 0) & np.isfinite(g), g, 0.0), dtype=np.float64)


def _norm_cdf(x: FloatArray) -> FloatArray:
    # erf through the complementary form keeps precision in the tails; math.erf per element
    # would be a Python loop, so use the Abramowitz-Stegun-grade rational erfc via numpy.
    return np.asarray(0.5 * _erfc(-x / math.sqrt(2.0)), dtype=np.float64)


def _erfc(x: FloatArray) -> FloatArray:
    """Complementary error function, |relative error| < 1.2e-7 (Numerical Recipes erfcc)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t
                            * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    ans = t * np.exp(poly)
    return np.asarray(np.where(x >= 0, ans, 2.0 - ans), dtype=np.float64)


GREEKS_BLOCK = 1 << 13


@dataclass
class Greeks:
    gamma: FloatArray
    delta: FloatArray
    theta: FloatArray  # per calendar day
    vega: FloatArray  # per 1 vol point


def bs_all(
    spot: float,
    strike: FloatArray,
    years: FloatArray,
    iv: FloatArray,
    is_call: BoolArray,
    *,
    r: float = 0.0,
    q: float = 0.0,
) -> Greeks:
    """Black-Scholes gamma, delta, theta (per day) and vega (per vol point) in one pass.

    Callers pass rows with iv > 0 and T > 0 (the engine floors T); others come out 0.
    A long chain goes through in blocks of GREEKS_BLOCK rows: the formula makes some
    thirty temporaries, and at block size they stay in cache instead of streaming
    through memory (about 3x faster on a million rows; the arithmetic per row, and so
    every result, is the same).
    """
    n = len(strike)
    if n <= GREEKS_BLOCK:
        return _bs_block(spot, strike, years, iv, is_call, r=r, q=q)
    out = Greeks(gamma=np.empty(n), delta=np.empty(n), theta=np.empty(n), vega=np.empty(n))
    for start in range(0, n, GREEKS_BLOCK):
        at = slice(start, start + GREEKS_BLOCK)
        part = _bs_block(spot, strike[at], years[at], iv[at], is_call[at], r=r, q=q)
        out.gamma[at], out.delta[at] = part.gamma, part.delta
        out.theta[at], out.vega[at] = part.theta, part.vega
    return out


def _bs_block(
    spot: float,
    strike: FloatArray,
    years: FloatArray,
    iv: FloatArray,
    is_call: BoolArray,
    *,
    r: float,
    q: float,
) -> Greeks:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sqrt_t = np.sqrt(years)
        vol_t = iv * sqrt_t
        d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * years) / vol_t
        d2 = d1 - vol_t
        disc_q = np.exp(-q * years) if q else np.ones_like(years)
        pdf = np.exp(-0.5 * d1 * d1) / SQRT_2PI
        nd1 = _norm_cdf(d1)
        gamma = disc_q * pdf / (spot * vol_t)
        delta = np.where(is_call, disc_q * nd1, disc_q * (nd1 - 1.0))
        theta = -spot * disc_q * pdf * iv / (2.0 * sqrt_t)
        if r or q:
            disc_r = np.exp(-r * years)
            nd2 = _norm_cdf(d2)
            theta += np.where(
                is_call,
                -r * strike * disc_r * nd2 + q * spot * disc_q * nd1,
                r * strike * disc_r * (1 - nd2) - q * spot * disc_q * (1 - nd1),
            )
        theta /= 365.0
        vega = spot * disc_q * pdf * sqrt_t / 100.0
    ok = (iv > 0) & (years > 0) & np.isfinite(gamma)
    return Greeks(
        gamma=np.where(ok, gamma, 0.0),
        delta=np.where(ok, delta, 0.0),
        theta=np.where(ok, theta, 0.0),
        vega=np.where(ok, vega, 0.0),
    )


def unit_factor(unit: GexUnit, spot: float | FloatArray) -> float | FloatArray:
    """What one share of gamma (per point) is worth in `unit` at `spot`."""
    if unit is GexUnit.USD_PER_1PCT:
        return spot * spot * 0.01
    if unit is GexUnit.USD_PER_POINT:
        return spot
    return 1.0 if np.isscalar(spot) else np.ones_like(spot)


def position_signs(model: SignModel) -> tuple[float, float]:
    """(call sign, put sign) of the dealer's position under a sign model."""
    if model is SignModel.DEALER_LONG_CALLS_SHORT_PUTS:
        return 1.0, -1.0
    if model is SignModel.DEALER_SHORT_CALLS_LONG_PUTS:
        return -1.0, 1.0
    return -1.0, -1.0


# ---------------------------------------------------------------------------
# Expiry calendar
# ---------------------------------------------------------------------------


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def is_monthly_expiry(day: date) -> bool:
    """The standard monthly expiration: third Friday, or the Thursday before a Good Friday."""
    friday = third_friday(day.year, day.month)
    if day == friday:
        return friday != _easter(day.year) - timedelta(days=2)
    return day == friday - timedelta(days=1) and friday == _easter(day.year) - timedelta(days=2)


def expiry_filter_mask(
    expiry_days: npt.NDArray[np.int64], which: ExpiryFilter, today: date
) -> BoolArray:
    """Which contracts (by expiry, days since 1970) the filter keeps."""
    epoch = date(1970, 1, 1).toordinal()
    if which is ExpiryFilter.ALL or expiry_days.size == 0:
        return np.ones(expiry_days.shape, dtype=bool)
    if which is ExpiryFilter.ZERO_DTE:
        return np.asarray(expiry_days == today.toordinal() - epoch, dtype=bool)
    if which is ExpiryFilter.EX_NEXT:
        return np.asarray(expiry_days != expiry_days.min(), dtype=bool)
    monthly = [
        d
        for d in np.unique(expiry_days).tolist()
        if is_monthly_expiry(date.fromordinal(epoch + int(d)))
    ]
    if not monthly:
        return np.ones(expiry_days.shape, dtype=bool)
    return np.asarray(expiry_days != monthly[0], dtype=bool)


# ---------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------


def _f64(table: pa.Table, name: str) -> FloatArray:
    col = pc.cast(table.column(name), pa.float64())
    return np.asarray(
        pc.fill_null(col, np.nan).to_numpy(),
        dtype=np.float64,
    )


def compute_gex(
    contracts: pa.Table,
    *,
    spot: float,
    snapshot_at: datetime,
    settings: GexSettings,
    source: str = "chain",
    with_profile: bool = True,
) -> GexResult:
    """Exposure per contract and per strike, totals, walls and zero gamma for a validated chain.

    `contracts` is in `gexdaemon.core.chain.CONTRACT_SCHEMA`. Raises ChainError when
    no contract is left (all settled, or the expiry filter keeps none).
    """
    excluded: dict[str, int] = {}
    snap_us = to_micros(snapshot_at)
    settle = settlement_instants(contracts.column("expiry"), contracts.column("settlement"))
    seconds_left = (settle - snap_us) / 1e6
    alive = seconds_left > 0
    if not alive.all():
        excluded["expired"] = int((~alive).sum())
    expiry_days = np.asarray(contracts.column("expiry").cast(pa.int32()).to_numpy(), dtype=np.int64)
    today = new_york_date(snapshot_at)
    keep_filter = expiry_filter_mask(
        np.where(alive, expiry_days, np.iinfo(np.int64).max), settings.expiry_filter, today
    )
    filtered_out = alive & ~keep_filter
    if filtered_out.any():
        excluded["expiry_filter"] = int(filtered_out.sum())
    keep = alive & keep_filter
    if not keep.any():
        reason = (
            "every contract had settled before the snapshot instant"
            if not alive.any()
            else f"the expiry filter {settings.expiry_filter.value!r} leaves no contract "
            f"(snapshot date {today.isoformat()} in New York)"
        )
        raise ChainError.nothing_usable(source, reason)
    if not keep.all():
        contracts = contracts.filter(pa.array(keep))
        seconds_left = seconds_left[keep]
        expiry_days = expiry_days[keep]

    floor_s = settings.min_time_to_expiry_minutes * 60.0
    years = np.maximum(seconds_left, floor_s) / YEAR_SECONDS
    strike = _f64(contracts, "strike")
    iv = np.nan_to_num(_f64(contracts, "iv"), nan=0.0)
    vendor_gamma = _f64(contracts, "gamma")
    oi = np.asarray(contracts.column("open_interest").to_numpy(), dtype=np.float64)
    volume = np.asarray(contracts.column("volume").to_numpy(), dtype=np.int64)
    is_call = np.asarray(pc.equal(contracts.column("right"), "C").to_numpy(), dtype=bool)
    r, q = settings.risk_free_rate, settings.dividend_yield
    has_iv = iv > 0
    has_vendor = ~np.isnan(vendor_gamma)
    if settings.gamma_source is GammaSource.MODEL:
        use_model = has_iv
        use_vendor = ~has_iv & has_vendor
    else:
        use_vendor = has_vendor
        use_model = ~has_vendor & has_iv
    origin = np.where(
        use_model, GAMMA_FROM_MODEL, np.where(use_vendor, GAMMA_FROM_VENDOR, GAMMA_NONE)
    ).astype(np.int8)
    vendor_delta = _f64(contracts, "delta")
    vendor_theta = _f64(contracts, "theta")
    vendor_vega = _f64(contracts, "vega")
    gamma = np.where(use_vendor, vendor_gamma, 0.0)
    delta, theta, vega = vendor_delta, vendor_theta, vendor_vega
    # Greeks from the model only where the model is the source (all of them under
    # `model`, the fallback rows under `vendor`); one pass shares d1 and the pdf.
    rows = np.flatnonzero(use_model)
    if rows.size:
        sub = slice(None) if rows.size == len(iv) else rows
        model = bs_all(spot, strike[sub], years[sub], iv[sub], is_call[sub], r=r, q=q)
        gamma[sub] = model.gamma
        delta = delta.copy()
        theta = theta.copy()
        vega = vega.copy()
        delta[sub], theta[sub], vega[sub] = model.delta, model.theta, model.vega
    delta, theta, vega = (np.nan_to_num(x, nan=0.0) for x in (delta, theta, vega))

    call_sign, put_sign = position_signs(settings.sign_model)
    sign = np.where(is_call, call_sign, put_sign)
    mult = float(settings.contract_multiplier)
    position = sign * oi * mult  # signed shares-equivalent per contract
    gamma_shares = gamma * position
    factor = float(unit_factor(settings.unit, spot))
    contract_gex = gamma_shares * factor

    strikes = _per_strike(
        contracts,
        strike=strike,
        is_call=is_call,
        oi=oi,
        volume=volume,
        expiry_days=expiry_days,
        gamma_shares=gamma_shares,
        delta_shares=delta * position,
        theta_usd=theta * position,
        vega_usd=vega * position,
        contract_gex=contract_gex,
    )
    if not np.isfinite(contract_gex).all() or not np.isfinite(strikes.net_gex).all():
        raise ChainError.at(
            source, "open_interest", "exposure overflowed: the numbers in the file are corrupt"
        )

    profile_spots = np.zeros(0)
    profile_gex = np.zeros(0)
    crossings: list[float] = []
    in_profile = has_iv & (oi > 0)
    if with_profile and in_profile.any():
        profile = _Profile(
            strike=strike[in_profile],
            years=years[in_profile],
            iv=iv[in_profile],
            weight=position[in_profile],
            r=r,
            q=q,
        )
        profile_spots = np.linspace(
            settings.profile_low * spot, settings.profile_high * spot, settings.profile_points
        )
        shares = profile.shares_per_point(profile_spots)
        profile_gex = shares * np.asarray(unit_factor(settings.unit, profile_spots))
        crossings = profile.crossings(profile_spots, shares, tolerance=REFINE_TOLERANCE * spot)
    levels = levels_from_strikes(strikes, spot=spot, crossings=crossings)
    levels.total_gex = float(contract_gex.sum())

    table = contracts.append_column("years_to_expiry", pa.array(years, type=pa.float64()))
    table = table.append_column("gamma_used", pa.array(gamma, type=pa.float64()))
    table = table.append_column(
        "gamma_origin",
        pa.DictionaryArray.from_arrays(
            pa.array(origin), pa.array(["none", "model", "vendor"])
        ).cast(pa.string()),
    )
    table = table.append_column("gex", pa.array(contract_gex, type=pa.float64()))
    counts = np.bincount(origin, minlength=3)
    return GexResult(
        spot=spot,
        snapshot_at=snapshot_at.astimezone(UTC),
        unit=settings.unit,
        sign_model=settings.sign_model,
        gamma_source=settings.gamma_source,
        expiry_filter=settings.expiry_filter,
        strikes=strikes,
        levels=levels,
        excluded=excluded,
        contracts=table,
        profile_spots=profile_spots,
        profile_gex=profile_gex,
        profile_contracts=int(in_profile.sum()),
        gamma_origin_counts={
            "model": int(counts[GAMMA_FROM_MODEL]),
            "vendor": int(counts[GAMMA_FROM_VENDOR]),
            "none": int(counts[GAMMA_NONE]),
        },
    )


def _per_strike(
    contracts: pa.Table,
    *,
    strike: FloatArray,
    is_call: BoolArray,
    oi: FloatArray,
    volume: npt.NDArray[np.int64],
    expiry_days: npt.NDArray[np.int64],
    gamma_shares: FloatArray,
    delta_shares: FloatArray,
    theta_usd: FloatArray,
    vega_usd: FloatArray,
    contract_gex: FloatArray,
) -> StrikeExposure:
    # Hash the strikes (Arrow) and sort only the distinct values: far cheaper than a
    # full sort of a million-row column.
    encoded = pc.dictionary_encode(pa.array(strike))
    distinct = encoded.dictionary.to_numpy()
    order = np.argsort(distinct, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    inverse = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    uniq = distinct[order]
    m = len(uniq)
    call_w = is_call.astype(np.float64)
    put_w = 1.0 - call_w

    def total(values: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(inverse, weights=values, minlength=m), dtype=np.float64)

    def count(values: FloatArray) -> npt.NDArray[np.int64]:
        return np.rint(total(values)).astype(np.int64)

    bid = _f64(contracts, "bid")
    ask = _f64(contracts, "ask")
    quotes = {}
    for side, mask in (("call", is_call), ("put", ~is_call)):
        # The nearest expiry at each strike: its quote is the one a trader reads.
        nearest = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(nearest, inverse[mask], expiry_days[mask])
        pick = mask & (expiry_days == nearest[inverse])
        side_bid = np.zeros(m)
        side_ask = np.zeros(m)
        rows = np.flatnonzero(pick)[::-1]  # reversed: the first row of the file wins
        side_bid[inverse[rows]] = np.nan_to_num(bid[rows], nan=0.0)
        side_ask[inverse[rows]] = np.nan_to_num(ask[rows], nan=0.0)
        quotes[side] = (side_bid, side_ask)
    call_gex = total(contract_gex * call_w)
    put_gex = total(contract_gex * put_w)
    return StrikeExposure(
        strike=uniq.astype(np.float64),
        call_open_interest=count(oi * call_w),
        put_open_interest=count(oi * put_w),
        call_volume=count(volume * call_w),
        put_volume=count(volume * put_w),
        call_bid=quotes["call"][0],
        call_ask=quotes["call"][1],
        put_bid=quotes["put"][0],
        put_ask=quotes["put"][1],
        gamma=total(gamma_shares),
        delta=total(delta_shares),
        theta=total(theta_usd),
        vega=total(vega_usd),
        call_gex=call_gex,
        put_gex=put_gex,
        net_gex=call_gex + put_gex,
    )


def levels_from_strikes(strikes: StrikeExposure, *, spot: float, crossings: list[float]) -> Levels:
    """Total, walls and zero gamma from per-strike exposure (walls need the call/put split)."""
    call_wall = put_wall = abs_strike = None
    if strikes.call_gex is not None and strikes.put_gex is not None and len(strikes):
        call_abs = np.abs(strikes.call_gex)
        put_abs = np.abs(strikes.put_gex)
        if call_abs.max() > 0:
            call_wall = float(strikes.strike[int(np.argmax(call_abs))])
        if put_abs.max() > 0:
            put_wall = float(strikes.strike[int(np.argmax(put_abs))])
        both = call_abs + put_abs
        if both.max() > 0:
            abs_strike = float(strikes.strike[int(np.argmax(both))])
    ordered = sorted(crossings)
    zero = min(ordered, key=lambda x: abs(x - spot)) if ordered else None
    return Levels(
        total_gex=float(strikes.net_gex.sum()),
        call_wall=call_wall,
        put_wall=put_wall,
        abs_gamma_strike=abs_strike,
        zero_gamma=zero,
        zero_gamma_crossings=ordered,
    )


@dataclass
class _Profile:
    """Gamma of a set of contracts at hypothetical spots (IV and T held fixed)."""

    strike: FloatArray
    years: FloatArray
    iv: FloatArray
    weight: FloatArray  # signed OI x multiplier
    r: float
    q: float

    def __post_init__(self) -> None:
        vol_t = self.iv * np.sqrt(self.years)
        self.b = 1.0 / vol_t
        self.c = (-np.log(self.strike) + (self.r - self.q + 0.5 * self.iv**2) * self.years) * self.b
        self.w = self.weight * np.exp(-self.q * self.years) * self.b / SQRT_2PI

    def exact(self, spots: FloatArray) -> FloatArray:
        """Shares per point at each spot, summed over every contract (float64, no pruning)."""
        out = np.empty(len(spots))
        a = np.log(spots)
        for i0 in range(0, len(spots), 8):
            d1 = np.multiply.outer(a[i0 : i0 + 8], self.b)
            d1 += self.c
            np.square(d1, out=d1)
            d1 *= -0.5
            np.maximum(d1, EXP_FLOOR, out=d1)
            np.exp(d1, out=d1)
            out[i0 : i0 + 8] = np.einsum("ij,j->i", d1, self.w)
        return np.asarray(out / spots, dtype=np.float64)

    def shares_per_point(self, spots: FloatArray) -> FloatArray:
        """The profile: shares per point at every spot, banded and chunked.

        Computed in float32 (half the memory traffic of float64; about 1e-6 relative
        error in a point's total): the profile locates crossings, and each crossing
        is then refined on the exact float64 total.
        """
        a = np.log(spots)
        p = len(a)
        if p < 2:
            return self.exact(spots)
        # Each contract's band of ln S where |d1| < D1_CUTOFF, as rows of the grid. The
        # spots need not be evenly spaced in ln S (a linspace is not), so the rows come
        # from a search, not from a step: a band narrower than a row (a contract minutes
        # from expiry at low vol) must still land on the rows it covers.
        lo = (-D1_CUTOFF - self.c) / self.b
        hi = (D1_CUTOFF - self.c) / self.b
        i_lo = np.clip(np.searchsorted(a, lo, side="left") - 1, 0, p).astype(np.int64)
        i_hi = np.clip(np.searchsorted(a, hi, side="right") + 1, 0, p).astype(np.int64)
        idx = np.flatnonzero(i_hi > i_lo)
        width = (i_hi - i_lo)[idx]
        bucket = np.floor(np.log2(np.maximum(width, 1))).astype(np.int64)
        order = idx[np.lexsort((i_lo[idx], bucket))]
        # Centre ln S on the middle of the range so float32 keeps the d1 digits.
        a0 = float(a[p // 2])
        a32 = (a - a0).astype(np.float32)
        b32 = self.b.astype(np.float32)
        c32 = (self.c + a0 * self.b).astype(np.float32)
        w32 = self.w.astype(np.float32)
        total = np.zeros(p, dtype=np.float64)
        buf = np.empty(p * CHUNK_CONTRACTS, dtype=np.float32)
        for s in range(0, len(order), CHUNK_CONTRACTS):
            chunk = order[s : s + CHUNK_CONTRACTS]
            r0 = int(i_lo[chunk].min())
            r1 = int(i_hi[chunk].max())
            d1 = buf[: (r1 - r0) * len(chunk)].reshape(r1 - r0, len(chunk))
            np.multiply.outer(a32[r0:r1], b32[chunk], out=d1)
            d1 += c32[chunk]
            np.square(d1, out=d1)
            d1 *= np.float32(-0.5)
            np.maximum(d1, np.float32(EXP_FLOOR_32), out=d1)
            np.exp(d1, out=d1)
            total[r0:r1] += np.einsum("ij,j->i", d1, w32[chunk])
        return np.asarray(total / spots, dtype=np.float64)

    def crossings(self, spots: FloatArray, values: FloatArray, *, tolerance: float) -> list[float]:
        """Every sign change of the profile, refined by bisection on the exact total."""
        scale = float(np.abs(values).max()) if values.size else 0.0
        if scale == 0.0:
            return []
        signs = np.sign(np.where(np.abs(values) <= scale * 1e-12, 0.0, values))
        nz = np.flatnonzero(signs)
        if nz.size < 2:
            return []
        change = np.flatnonzero(signs[nz[:-1]] != signs[nz[1:]])
        if change.size == 0:
            return []
        left = spots[nz[change]].copy()
        right = spots[nz[change + 1]].copy()
        # The float32 profile can misplace a sign change by one point right at a crossing:
        # confirm each bracket on exact totals and widen it by a step if needed.
        grid = float(spots[1] - spots[0]) if len(spots) > 1 else 0.0
        f_left = self.exact(left)
        f_right = self.exact(right)
        for _ in range(3):
            same = np.sign(f_left) == np.sign(f_right)
            if not same.any():
                break
            left = np.where(same, left - grid, left)
            right = np.where(same, right + grid, right)
            f_left = self.exact(left)
            f_right = self.exact(right)
        real = np.sign(f_left) != np.sign(f_right)
        left, right, f_left = left[real], right[real], f_left[real]
        if left.size == 0:
            return []
        for _ in range(REFINE_ITERATIONS):
            if float(np.max(right - left)) <= tolerance:
                break
            mid = 0.5 * (left + right)
            f_mid = self.exact(mid)
            same = np.sign(f_mid) == np.sign(f_left)
            left = np.where(same, mid, left)
            f_left = np.where(same, f_mid, f_left)
            right = np.where(same, right, mid)
        # Linear interpolation inside the final bracket.
        f_right = self.exact(right)
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.where(
                f_right != f_left, left - f_left * (right - left) / (f_right - f_left), left
            )
        root = np.clip(root, left, right)
        return [float(x) for x in root]
