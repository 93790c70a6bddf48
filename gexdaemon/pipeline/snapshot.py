"""The ingest pipeline: one local chain file in, one validated GEX snapshot out (pure CPU).

`compute_snapshot` sniffs the file's format by content, decodes it
(gexdaemon.feeds), validates it column-wise (gexdaemon.core.chain), runs the GEX
engine (gexdaemon.core.gex) and builds everything persistence needs: the
`GEXSnapshot` model, the `gex_snapshots` row, the `gex_strikes` rows as Arrow
and the lake table. It reads one file and writes nothing, so the daemon runs it
in a worker thread and `gexdaemon analyze` runs it directly.

Time handling: T is measured from the file's own timestamp (CBOE JSON
`timestamp`, the quote table's date line, a metadata/column timestamp), so an
old file still computes the snapshot it had when it was written; the request's
`snapshot_at_hint` (and `spot_hint`) only fill in what the file lacks. `now` is
the processing instant: it stamps `processed_at` and refuses a file dated in
the future.

Identity: `snapshot_id = uuid5(SNAPSHOT_NAMESPACE, str(job_id))`, so processing
the same job twice yields the same snapshot id and the store keeps one.

Bad input of any kind (truncated, empty, wrong format, binary junk, huge
numbers, adversarial) comes out as `ChainError` with the file and the line or
field path; nothing else escapes for bad input.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from gexdaemon.core.chain import (
    TS,
    ChainError,
    RawChain,
    add_exclusions,
    validate_contracts,
    validate_strikes,
)
from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.gex import (
    GexResult,
    Levels,
    StrikeExposure,
    compute_gex,
    levels_from_strikes,
    position_signs,
    unit_factor,
)
from gexdaemon.core.models import GEX_STRIKE_COUNTS, GEX_STRIKE_FIELDS, DomainContext, GEXSnapshot
from gexdaemon.core.settings import GexSettings
from gexdaemon.core.symbols import normalize_symbol
from gexdaemon.core.timeutil import as_utc
from gexdaemon.feeds import registry
from gexdaemon.feeds.base import FeedFile, RawStrikes
from gexdaemon.storage.snapshot_record import SnapshotRecord

SNAPSHOT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://gexdaemon.local/snapshot")

STRIKE_COLUMNS = GEX_STRIKE_FIELDS
_INT_STRIKE_COLUMNS = GEX_STRIKE_COUNTS


def warm_up() -> bool:
    """Run in a fresh compute process so the first real job does not pay the imports."""
    return True


def snapshot_id_for(job_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(SNAPSHOT_NAMESPACE, str(job_id))


@dataclass(frozen=True)
class SnapshotResult:
    """A computed snapshot and everything needed to persist or print it."""

    snapshot: GEXSnapshot
    snapshot_row: Mapping[str, Any]  # gex_snapshots columns; lake_path is set when persisted
    strikes: pa.Table  # gex_strikes columns (rows.STRIKES)
    lake: pa.Table  # what goes to the Parquet lake: one row per contract (or per strike)
    excluded: Mapping[str, int]
    examples: tuple[Problem, ...]
    rows_read: int
    format_name: str
    source: str
    timings_ms: Mapping[str, float]
    profile_spots: np.ndarray = field(default_factory=lambda: np.zeros(0))
    profile_gex: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gamma_origin_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def snapshot_id(self) -> uuid.UUID:
        return self.snapshot.snapshot_id

    @property
    def record(self) -> SnapshotRecord:
        """What storage persists: the row, the strike rows and the lake table."""
        return SnapshotRecord(row=self.snapshot_row, strikes=self.strikes, lake=self.lake)


# Exceptions computing a parsed chain can raise on hostile values; each becomes a ChainError.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    ArithmeticError,
    IndexError,
    KeyError,
    UnicodeError,
    RecursionError,
    pa.ArrowException,
    msgspec.MsgspecError,
)


def compute_snapshot(
    path: Path,
    *,
    job_id: uuid.UUID,
    symbol_hint: str | None,
    settings: GexSettings,
    now: datetime,
    context: DomainContext,
    spot_hint: float | None = None,
    snapshot_at_hint: datetime | None = None,
    with_profile: bool = True,
) -> SnapshotResult:
    """Sniff, parse, validate and compute one file's snapshot; ChainError for any bad input."""
    name = Path(path).name
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ChainError.at(
            name, "(file)", f"cannot be read ({exc.strerror or exc}); check the path"
        ) from None
    timings["read_ms"] = _ms(started)
    feed = FeedFile(
        name=name,
        data=data,
        symbol_hint=symbol_hint,
        spot_hint=spot_hint,
        snapshot_at_hint=snapshot_at_hint,
    )
    return compute_snapshot_from_bytes(
        feed,
        job_id=job_id,
        settings=settings,
        now=now,
        context=context,
        with_profile=with_profile,
        timings=timings,
    )


def compute_snapshot_from_bytes(
    feed: FeedFile,
    *,
    job_id: uuid.UUID,
    settings: GexSettings,
    now: datetime,
    context: DomainContext,
    with_profile: bool = True,
    timings: dict[str, float] | None = None,
) -> SnapshotResult:
    """`compute_snapshot` for bytes already in memory (a fetched body)."""
    timings = timings if timings is not None else {}
    t = time.perf_counter()
    _, parsed = registry.parse(feed)  # bad bytes of any kind: ChainError
    timings["parse_ms"] = _ms(t)
    try:
        if isinstance(parsed, RawChain):
            result = _from_chain(
                parsed,
                feed=feed,
                job_id=job_id,
                settings=settings,
                now=now,
                context=context,
                with_profile=with_profile,
                timings=timings,
            )
        else:
            result = _from_strikes(
                parsed,
                feed=feed,
                job_id=job_id,
                settings=settings,
                now=now,
                context=context,
                timings=timings,
            )
    except ChainError:
        raise
    except InvalidInput as exc:
        raise ChainError(f"{feed.name}: {exc.message}", details=exc.details) from None
    except _DECODE_ERRORS as exc:
        raise ChainError.at(
            feed.name,
            "(file)",
            f"holds values that cannot be computed ({type(exc).__name__}: {str(exc)[:200]})",
        ) from None
    total = sum(v for k, v in timings.items() if k != "total_ms")
    timings["total_ms"] = total
    return result


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _spot_and_time(
    source: str,
    spot: float | None,
    snapshot_at: datetime | None,
    feed: FeedFile,
    now: datetime,
) -> tuple[float, datetime]:
    spot = spot if spot is not None else feed.spot_hint
    snapshot_at = snapshot_at if snapshot_at is not None else feed.snapshot_at_hint
    if spot is None:
        raise ChainError.at(
            source,
            "spot",
            "the file gives no spot price: add a spot_price header/metadata field or a "
            "spot column, or pass the spot with the request",
        )
    if snapshot_at is None:
        raise ChainError.at(
            source,
            "snapshot_at",
            "the file gives no timestamp: add a snapshot_at header/metadata field (ISO 8601, "
            "e.g. 2026-11-25T15:45:00-05:00) or a quote_time column, or pass it with the request",
        )
    try:
        snapshot_at = as_utc(snapshot_at)
    except ValueError:
        raise ChainError.at(source, "snapshot_at", "the timestamp has no time zone") from None
    if not np.isfinite(spot) or spot <= 0:
        raise ChainError.at(source, "spot", f"spot price {spot!r} is not a positive number")
    if snapshot_at > as_utc(now):
        raise ChainError.at(
            source,
            "snapshot_at",
            f"the file is dated {snapshot_at.isoformat()}, after now ({as_utc(now).isoformat()}); "
            "check the file's timestamp and the machine clock",
        )
    return float(spot), snapshot_at


def _symbol(hint: str | None, from_file: str | None) -> str | None:
    if hint:
        return normalize_symbol(hint)
    return from_file


def _from_chain(
    raw: RawChain,
    *,
    feed: FeedFile,
    job_id: uuid.UUID,
    settings: GexSettings,
    now: datetime,
    context: DomainContext,
    with_profile: bool,
    timings: dict[str, float],
) -> SnapshotResult:
    spot, snapshot_at = _spot_and_time(raw.source, raw.spot, raw.snapshot_at, feed, now)
    t = time.perf_counter()
    chain = validate_contracts(
        raw,
        spot=spot,
        snapshot_at=snapshot_at,
        underlying=_symbol(feed.symbol_hint, raw.underlying),
    )
    timings["validate_ms"] = _ms(t)
    t = time.perf_counter()
    gex = compute_gex(
        chain.contracts,
        spot=spot,
        snapshot_at=snapshot_at,
        settings=settings,
        source=raw.source,
        with_profile=with_profile,
    )
    timings["gex_ms"] = _ms(t)
    excluded = dict(chain.excluded)
    add_exclusions(excluded, {k: v for k, v in gex.excluded.items() if k != "expired"})
    # Validation already dropped settled contracts; the engine's own count is a re-check.
    if gex.excluded.get("expired"):
        add_exclusions(excluded, {"expired": gex.excluded["expired"]})
    t = time.perf_counter()
    result = _assemble(
        job_id=job_id,
        symbol=chain.underlying,
        spot=spot,
        snapshot_at=snapshot_at,
        now=now,
        context=context,
        strikes=gex.strikes,
        levels=gex.levels,
        quality=chain.quality.score,
        unit=gex.unit.value,
        sign_model=gex.sign_model.value,
        gamma_source=gex.gamma_source.value,
        expiry_filter=gex.expiry_filter.value,
        lake_source=gex,
        excluded=excluded,
        examples=tuple(chain.examples),
        rows_read=raw.rows_read,
        format_name=raw.format_name,
        source=raw.source,
        timings=timings,
    )
    timings["model_ms"] = _ms(t)
    return result


def _from_strikes(
    raw: RawStrikes,
    *,
    feed: FeedFile,
    job_id: uuid.UUID,
    settings: GexSettings,
    now: datetime,
    context: DomainContext,
    timings: dict[str, float],
) -> SnapshotResult:
    spot, snapshot_at = _spot_and_time(raw.source, raw.spot, raw.snapshot_at, feed, now)
    symbol = _symbol(feed.symbol_hint, raw.underlying)
    if symbol is None:
        raise ChainError.at(
            raw.source,
            "symbol",
            "a strike-level file does not say its underlying: add a symbol header/metadata "
            "field or pass --symbol",
        )
    t = time.perf_counter()
    checked = validate_strikes(
        raw.table,
        source=raw.source,
        locate=raw.locate,
        rows_read=raw.rows_read,
        excluded=raw.excluded,
        examples=raw.examples,
    )
    timings["validate_ms"] = _ms(t)
    t = time.perf_counter()
    cols = checked.columns
    n = len(cols["strike_price"])
    meta = raw.meta

    def col(name: str) -> np.ndarray:
        values = cols.get(name)
        return np.zeros(n) if values is None else np.asarray(np.nan_to_num(values, nan=0.0))

    def count(name: str) -> np.ndarray:
        return np.asarray(np.rint(col(name)), dtype=np.int64)

    has_split = "call_gex" in cols and "put_gex" in cols
    file_call, file_put = position_signs(meta.sign_model)
    want_call, want_put = position_signs(settings.sign_model)
    call_ratio, put_ratio = file_call * want_call, file_put * want_put
    # Net exposures (gamma, delta, theta, vega, net_gex) re-sign only when both sides flip
    # together; otherwise they need the per-side split, and the greeks have none.
    has_greeks = any(np.any(col(g) != 0) for g in ("delta", "theta", "vega"))
    if call_ratio != put_ratio and (has_greeks or not has_split):
        raise ChainError.at(
            raw.source,
            "sign_model",
            f"the file's exposures are signed as {meta.sign_model.value}, which cannot be "
            f"converted to {settings.sign_model.value} without a call/put split of every "
            f'exposure; set [gex] sign_model = "{meta.sign_model.value}" to ingest it',
        )
    net_ratio = call_ratio  # equal to put_ratio whenever the net columns are used below
    to_unit = float(unit_factor(settings.unit, spot)) / float(unit_factor(meta.unit, spot))
    call_gex = put_gex = None
    if has_split:
        call_gex = col("call_gex") * to_unit * call_ratio
        put_gex = col("put_gex") * to_unit * put_ratio
        net = call_gex + put_gex
    elif "net_gex" in cols:
        net = col("net_gex") * to_unit * net_ratio
    else:
        net = col("gamma") * float(unit_factor(settings.unit, spot)) * net_ratio
    gamma_shares = (
        net / float(unit_factor(settings.unit, spot))
        if has_split and call_ratio != put_ratio
        else col("gamma") * net_ratio
    )
    strikes = StrikeExposure(
        strike=cols["strike_price"],
        call_open_interest=count("call_open_interest"),
        put_open_interest=count("put_open_interest"),
        call_volume=count("call_volume"),
        put_volume=count("put_volume"),
        call_bid=col("call_bid"),
        call_ask=col("call_ask"),
        put_bid=col("put_bid"),
        put_ask=col("put_ask"),
        gamma=gamma_shares,
        delta=col("delta") * net_ratio,
        theta=col("theta") * net_ratio,
        vega=col("vega") * net_ratio,
        call_gex=call_gex,
        put_gex=put_gex,
        net_gex=net,
    )
    if not np.isfinite(net).all():
        raise ChainError.at(raw.source, "gamma", "exposure overflowed: the numbers are corrupt")
    levels = levels_from_strikes(strikes, spot=spot, crossings=[])
    timings["gex_ms"] = _ms(t)
    t = time.perf_counter()
    result = _assemble(
        job_id=job_id,
        symbol=symbol,
        spot=spot,
        snapshot_at=snapshot_at,
        now=now,
        context=context,
        strikes=strikes,
        levels=levels,
        quality=checked.quality.score,
        unit=settings.unit.value,
        sign_model=settings.sign_model.value,
        gamma_source=meta.gamma_source.value,
        expiry_filter=meta.expiry_filter.value,
        lake_source=None,
        excluded=checked.excluded,
        examples=tuple(checked.examples),
        rows_read=raw.rows_read,
        format_name=raw.format_name,
        source=raw.source,
        timings=timings,
    )
    timings["model_ms"] = _ms(t)
    return result


def _assemble(
    *,
    job_id: uuid.UUID,
    symbol: str,
    spot: float,
    snapshot_at: datetime,
    now: datetime,
    context: DomainContext,
    strikes: StrikeExposure,
    levels: Levels,
    quality: float,
    unit: str,
    sign_model: str,
    gamma_source: str,
    expiry_filter: str,
    lake_source: GexResult | None,
    excluded: dict[str, int],
    examples: tuple[Problem, ...],
    rows_read: int,
    format_name: str,
    source: str,
    timings: dict[str, float],
) -> SnapshotResult:
    snapshot_id = snapshot_id_for(job_id)
    day, clock = GEXSnapshot.market_local(snapshot_at)
    n = len(strikes)
    columns = _strike_columns(strikes)
    strike_rows = _rows({k: v.tolist() for k, v in columns.items() if v is not None}, n)
    snapshot = GEXSnapshot.parse(
        {
            "snapshot_id": snapshot_id,
            "job_id": job_id,
            "market_symbol": symbol,
            "snapshot_date": day,
            "snapshot_time": clock,
            "strikes": strike_rows,
            "total_open_interest": int(
                strikes.call_open_interest.sum() + strikes.put_open_interest.sum()
            ),
            "total_volume": int(strikes.call_volume.sum() + strikes.put_volume.sum()),
            "processed_at": as_utc(now),
            "data_quality_score": quality,
            "spot_price": spot,
            "gex_unit": unit,
            "sign_model": sign_model,
            "gamma_source": gamma_source,
            "expiry_filter": expiry_filter,
            "total_gex": levels.total_gex,
            "zero_gamma": levels.zero_gamma,
            "zero_gamma_crossings": levels.zero_gamma_crossings,
            "call_wall": levels.call_wall,
            "put_wall": levels.put_wall,
            "abs_gamma_strike": levels.abs_gamma_strike,
        },
        context=context,
        what=f"{source}: the snapshot",
    )
    row = {
        "snapshot_id": str(snapshot_id),
        "job_id": str(job_id),
        "market_symbol": snapshot.market_symbol,
        "snapshot_date": snapshot.snapshot_date,
        "snapshot_time": snapshot.snapshot_time,
        "total_open_interest": snapshot.total_open_interest,
        "total_volume": snapshot.total_volume,
        "processed_at": snapshot.processed_at,
        "data_quality_score": snapshot.data_quality_score,
        "snapshot_at": snapshot_at,
        "spot_price": spot,
        "gex_unit": unit,
        "sign_model": sign_model,
        "gamma_source": gamma_source,
        "expiry_filter": expiry_filter,
        "total_gex": snapshot.total_gex,
        "zero_gamma": snapshot.zero_gamma,
        "zero_gamma_crossings": list(snapshot.zero_gamma_crossings),
        "call_wall": snapshot.call_wall,
        "put_wall": snapshot.put_wall,
        "abs_gamma_strike": snapshot.abs_gamma_strike,
        "lake_path": None,
        "source_format": format_name,
        "rows_read": rows_read,
        "excluded_rows": msgspec.json.encode(dict(sorted(excluded.items()))).decode(),
    }
    strike_table = pa.table(
        {
            "snapshot_id": pa.array([str(snapshot_id)] * n, type=pa.string()),
            "snapshot_date": pa.array([day] * n, type=pa.date32()),
            **{name: _strike_array(name, columns[name], n) for name in STRIKE_COLUMNS},
        }
    )
    stamp = {
        "snapshot_id": str(snapshot_id),
        "spot_price": spot,
        "gex_unit": unit,
        "sign_model": sign_model,
        "gamma_source": gamma_source,
        "expiry_filter": expiry_filter,
    }
    if lake_source is not None and lake_source.contracts is not None:
        lake = lake_source.contracts.rename_columns(
            [
                {"strike": "strike_price", "gex": "net_gex", "spot": "spot_at_snapshot"}.get(c, c)
                for c in lake_source.contracts.column_names
            ]
        ).drop_columns(["spot_at_snapshot"])
        profile_spots, profile_gex = lake_source.profile_spots, lake_source.profile_gex
        origins = lake_source.gamma_origin_counts
    else:
        lake = strike_table.drop_columns(["snapshot_id", "snapshot_date"]).append_column(
            "snapshot_at", pa.array([snapshot_at] * n, type=TS)
        )
        profile_spots, profile_gex, origins = np.zeros(0), np.zeros(0), {}
    m = lake.num_rows
    for key, value in stamp.items():
        column = (
            pa.array(np.full(m, spot), type=pa.float64())
            if key == "spot_price"
            else pa.repeat(pa.scalar(value, type=pa.string()), m)
        )
        lake = lake.append_column(key, column)
    return SnapshotResult(
        snapshot=snapshot,
        snapshot_row=row,
        strikes=strike_table,
        lake=lake,
        excluded=dict(sorted(excluded.items())),
        examples=examples,
        rows_read=rows_read,
        format_name=format_name,
        source=source,
        timings_ms=timings,
        profile_spots=profile_spots,
        profile_gex=profile_gex,
        gamma_origin_counts=dict(origins),
    )


def _strike_columns(strikes: StrikeExposure) -> dict[str, np.ndarray | None]:
    """The strike rows column by column, as int64 or float64 arrays (None: column absent)."""
    out: dict[str, np.ndarray | None] = {}
    for name in STRIKE_COLUMNS:
        values = getattr(strikes, "strike" if name == "strike_price" else name)
        if values is None:
            out[name] = None
        elif name in _INT_STRIKE_COLUMNS:
            out[name] = np.asarray(values).astype(np.int64, copy=False)
        else:
            out[name] = np.asarray(values).astype(np.float64, copy=False)
    return out


def _strike_array(name: str, values: np.ndarray | None, n: int) -> pa.Array:
    typ = pa.int64() if name in _INT_STRIKE_COLUMNS else pa.float64()
    return pa.nulls(n, type=typ) if values is None else pa.array(values, type=typ)


def _rows(columns: Mapping[str, list[Any]], n: int) -> list[dict[str, Any]]:
    """Row dicts for the model; an absent column is left out (the model's default, None)."""
    names = list(columns)
    return (
        [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        if n
        else []
    )
