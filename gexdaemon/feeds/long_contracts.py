"""Long contract files (one row per contract), CSV or Parquet: what OPRA-derived vendors ship.

Columns are found by name (case, spaces and punctuation ignored), with the
aliases below. A contract is identified by an OCC symbol, or by root (or
underlying) + expiration + strike + right; when both are there the explicit
columns win. Spot and the snapshot instant come from a column (the first
non-null value), the file's metadata (`# spot: 6850.25` lines at the top of a
CSV, Parquet schema metadata or a `gexdaemon` JSON metadata entry), or the
request's hints, in that order. A naive timestamp is New York time (what US
vendors write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gexdaemon.core.chain import NUMBER_COLUMNS, ChainError, RawChain, add_exclusions
from gexdaemon.core.errors import Problem
from gexdaemon.feeds.base import (
    FeedFile,
    FeedFormat,
    Sniffed,
    parse_instant,
    parse_numbers,
    read_meta,
)
from gexdaemon.feeds.tabular import Sheet, find_column, first_value, read_csv, read_parquet

ALIASES: Mapping[str, Sequence[str]] = {
    "occ_symbol": (
        "occ_symbol",
        "option_symbol",
        "osi_symbol",
        "osi",
        "option",
        "contract_symbol",
        "contract",
        "option_ticker",
    ),
    "root": ("root", "option_root", "root_symbol"),
    "underlying": ("underlying", "underlying_symbol", "underlying_ticker", "symbol", "ticker"),
    "expiry": (
        "expiration",
        "expiry",
        "expiration_date",
        "expiry_date",
        "exp_date",
        "expiration_dt",
    ),
    "strike": ("strike", "strike_price"),
    "right": (
        "right",
        "option_type",
        "put_call",
        "call_put",
        "cp",
        "cp_flag",
        "contract_type",
        "type",
    ),
    "settlement": ("settlement", "settlement_style", "settle_style"),
    "bid": ("bid", "bid_price"),
    "ask": ("ask", "ask_price", "offer"),
    "last": ("last", "last_price", "last_trade_price", "last_sale"),
    "volume": ("volume", "vol", "trade_volume"),
    "open_interest": ("open_interest", "oi", "openinterest"),
    "iv": ("iv", "implied_volatility", "implied_vol", "mid_iv", "impl_vol"),
    "delta": ("delta",),
    "gamma": ("gamma",),
    "theta": ("theta",),
    "vega": ("vega",),
}
SPOT_COLUMNS = (
    "underlying_price",
    "spot",
    "spot_price",
    "underlying_last",
    "active_underlying_price",
)
TIME_COLUMNS = ("snapshot_at", "quote_time", "quote_datetime", "timestamp", "as_of")
NUMERIC = ("strike", *NUMBER_COLUMNS)


def has_contract_columns(columns: Sequence[str]) -> bool:
    if find_column(columns, ALIASES["occ_symbol"]):
        return True
    return all(
        find_column(columns, ALIASES[name]) for name in ("expiry", "strike", "right")
    ) and bool(find_column(columns, ALIASES["root"]) or find_column(columns, ALIASES["underlying"]))


def sniff_csv(seen: Sniffed) -> bool:
    return seen.kind == "text" and has_contract_columns(seen.columns)


def sniff_parquet(seen: Sniffed) -> bool:
    return seen.kind == "parquet" and has_contract_columns(seen.columns)


def _from_sheet(feed: FeedFile, sheet: Sheet, format_name: str) -> RawChain:
    table = sheet.table
    cols = table.column_names
    out: dict[str, pa.Array] = {}
    bad = None
    for name, aliases in ALIASES.items():
        found = find_column(cols, aliases)
        if found is None:
            continue
        col = table.column(found)
        if name in NUMERIC:
            values, unparseable = parse_numbers(col)
            bad = unparseable if bad is None else pc.or_(bad, unparseable)
            out[name] = values
        elif name == "expiry":
            out[name] = _dates(feed.name, col, sheet.locate)
        else:
            out[name] = pc.cast(col, pa.string())
    # A bare `symbol` column holding OCC symbols is the contract, not the underlying.
    if "occ_symbol" not in out and "underlying" in out:
        sample = out["underlying"].drop_null()
        if len(sample) and len(str(sample[0])) >= 16:
            out["occ_symbol"] = out.pop("underlying")
    out["source_row"] = table.column("source_row")
    raw = pa.table(out)
    excluded = dict(sheet.excluded)
    examples = list(sheet.examples)
    if bad is not None and pc.any(bad).as_py():
        mask = bad.to_numpy(zero_copy_only=False)
        src = raw.column("source_row").to_numpy()
        add_exclusions(excluded, {"unparseable_number": int(mask.sum())})
        for i in mask.nonzero()[0][:3].tolist():
            examples.append(
                Problem(
                    path=f"{feed.name}: {sheet.locate(int(src[i]))}",
                    message="a number does not parse",
                    rule="unparseable_number",
                )
            )
        raw = raw.filter(pc.invert(bad))
    meta = read_meta(feed.name, sheet.meta_where, sheet.meta)
    spot = meta.spot
    if spot is None:
        value = first_value(table, find_column(cols, SPOT_COLUMNS))
        spot = (
            float(value)
            if isinstance(value, int | float)
            else (float(str(value).replace(",", "")) if value is not None else None)
        )
    snapshot_at = meta.snapshot_at
    if snapshot_at is None:
        value = first_value(table, find_column(cols, TIME_COLUMNS))
        if value is not None:
            try:
                snapshot_at = (
                    parse_instant(value.isoformat())
                    if hasattr(value, "isoformat")
                    else parse_instant(str(value))
                )
            except ValueError:
                raise ChainError.at(
                    feed.name,
                    sheet.locate(0),
                    f"cannot read the timestamp {str(value)[:40]!r} (use ISO 8601, e.g. "
                    "2026-11-25T15:45:00-05:00)",
                ) from None
    return RawChain(
        table=raw,
        source=feed.name,
        format_name=format_name,
        rows_read=table.num_rows + excluded.get("malformed_row", 0),
        locate=sheet.locate,
        underlying=meta.symbol,
        spot=spot,
        snapshot_at=snapshot_at,
        excluded=excluded,
        examples=examples,
    )


def _dates(source: str, col: pa.ChunkedArray, locate: object) -> pa.Array:
    arr = col.combine_chunks()
    if pa.types.is_date(arr.type):
        return pc.cast(arr, pa.date32())
    if pa.types.is_timestamp(arr.type):
        return pc.cast(arr, pa.date32())
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    text = pc.utf8_slice_codeunits(text, 0, 10)
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y"):
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        if pc.all(pc.or_(pc.is_valid(parsed), pc.is_null(text))).as_py():
            return pc.cast(parsed, pa.date32())
    return pc.cast(pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True), pa.date32())


def parse_csv(feed: FeedFile, seen: Sniffed) -> RawChain:
    return _from_sheet(feed, read_csv(feed.name, feed.data), CSV_FORMAT.name)


def parse_parquet(feed: FeedFile, seen: Sniffed) -> RawChain:
    return _from_sheet(feed, read_parquet(feed.name, feed.data), PARQUET_FORMAT.name)


CSV_FORMAT = FeedFormat(
    name="long_csv",
    description="long contract CSV (one row per contract: OCC symbol or root/expiry/strike/right)",
    sniff=sniff_csv,
    parse=parse_csv,
)
PARQUET_FORMAT = FeedFormat(
    name="long_parquet",
    description="long contract Parquet (one row per contract)",
    sniff=sniff_parquet,
    parse=parse_parquet,
)
