"""Strike-level GEX files in the seed's GEXStrike shape: CSV, JSON, NDJSON or Parquet.

Columns: `strike_price`, `call_open_interest`, `put_open_interest`,
`call_volume`, `put_volume`, `call_bid`, `call_ask`, `put_bid`, `put_ask`,
`gamma`, `delta`, `theta`, `vega` (dealer exposures already summed per strike:
gamma in shares per point, as gexdaemon writes them) and optionally `call_gex`,
`put_gex`, `net_gex`.

Such a file has no contracts, so it needs from outside what a chain carries:
spot and the snapshot instant come from the file's metadata (`# spot_price:` /
`# snapshot_at:` lines at the top of a CSV; keys beside the `strikes` array in
JSON; a first NDJSON line without `strike_price`; Parquet schema metadata or a
`gexdaemon` JSON entry in it) and otherwise from the request's hints. The
metadata may also say `gex_unit`, `sign_model`, `gamma_source` and
`expiry_filter` of the numbers (defaults: usd_per_1pct,
dealer_long_calls_short_puts, vendor, all).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from gexdaemon.core.models import GEX_STRIKE_FIELDS
from gexdaemon.feeds.base import FeedFile, FeedFormat, RawStrikes, Sniffed, parse_numbers, read_meta
from gexdaemon.feeds.tabular import Sheet, read_csv, read_json_records, read_ndjson, read_parquet

FIELDS = GEX_STRIKE_FIELDS
_MARKERS = ("call_open_interest", "put_open_interest", "call_gex", "put_gex", "net_gex")


def has_strike_columns(columns: Sequence[str]) -> bool:
    return "strike_price" in columns and any(m in columns for m in _MARKERS)


def sniff_csv(seen: Sniffed) -> bool:
    return seen.kind == "text" and has_strike_columns(seen.columns)


def sniff_parquet(seen: Sniffed) -> bool:
    return seen.kind == "parquet" and has_strike_columns(seen.columns)


def sniff_json(seen: Sniffed) -> bool:
    return seen.kind == "json" and '"strike_price"' in seen.head_text


def sniff_ndjson(seen: Sniffed) -> bool:
    return seen.kind == "ndjson" and '"strike_price"' in seen.head_text


def _from_sheet(feed: FeedFile, sheet: Sheet, format_name: str) -> RawStrikes:
    table = sheet.table
    out: dict[str, pa.Array] = {}
    for name in FIELDS:
        if name in table.column_names:
            values, _ = parse_numbers(table.column(name))
            out[name] = values
    out["source_row"] = table.column("source_row")
    meta = read_meta(feed.name, sheet.meta_where, sheet.meta)
    return RawStrikes(
        table=pa.table(out),
        source=feed.name,
        format_name=format_name,
        rows_read=table.num_rows + sum(sheet.excluded.values()),
        locate=sheet.locate,
        underlying=meta.symbol,
        spot=meta.spot,
        snapshot_at=meta.snapshot_at,
        meta=meta.strike_meta,
        excluded=dict(sheet.excluded),
        examples=list(sheet.examples),
    )


def parse_csv(feed: FeedFile, seen: Sniffed) -> RawStrikes:
    return _from_sheet(feed, read_csv(feed.name, feed.data), CSV_FORMAT.name)


def parse_json(feed: FeedFile, seen: Sniffed) -> RawStrikes:
    sheet = read_json_records(feed.name, feed.data, ("strikes", "data", "rows"))
    return _from_sheet(feed, sheet, JSON_FORMAT.name)


def parse_ndjson(feed: FeedFile, seen: Sniffed) -> RawStrikes:
    return _from_sheet(feed, read_ndjson(feed.name, feed.data, "strike_price"), NDJSON_FORMAT.name)


def parse_parquet(feed: FeedFile, seen: Sniffed) -> RawStrikes:
    return _from_sheet(feed, read_parquet(feed.name, feed.data), PARQUET_FORMAT.name)


CSV_FORMAT = FeedFormat("strike_csv", "strike-level GEX CSV (GEXStrike rows)", sniff_csv, parse_csv)
JSON_FORMAT = FeedFormat(
    "strike_json", "strike-level GEX JSON (array or {strikes: [...]})", sniff_json, parse_json
)
NDJSON_FORMAT = FeedFormat(
    "strike_ndjson", "strike-level GEX NDJSON (one strike per line)", sniff_ndjson, parse_ndjson
)
PARQUET_FORMAT = FeedFormat(
    "strike_parquet", "strike-level GEX Parquet", sniff_parquet, parse_parquet
)
