"""What every feed parser shares: the file handed in, what sniffing saw, and number/time parsing.

A parser is a `FeedFormat`: a name, a content test (`sniff`) and a `parse` that
turns the bytes into a `RawChain` (contract rows) or a `RawStrikes` (strike-level
rows). Parsers never validate rules (gexdaemon.core.chain does, column-wise); they
only decode, map columns by name and record what did not decode, with the line or
field path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gexdaemon.core.chain import ChainError, ParsedTable, RawChain
from gexdaemon.core.symbols import normalize_symbol
from gexdaemon.core.timeutil import NEW_YORK
from gexdaemon.core.vocab import ExpiryFilter, GammaSource, GexUnit, SignModel

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class FeedFile:
    """One local file's bytes and the request's hints (the file's own values win)."""

    name: str
    data: bytes
    symbol_hint: str | None = None
    spot_hint: float | None = None
    snapshot_at_hint: datetime | None = None


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes say: computed once, read by every format's `sniff`."""

    kind: str  # "parquet" | "json" | "ndjson" | "text" | "binary" | "empty"
    head_text: str  # decoded head (text kinds only)
    columns: tuple[str, ...] = ()  # lower-cased header / schema names (csv, parquet)


@dataclass
class StrikeMeta:
    """What a strike-level file says about its numbers (defaults: the project's defaults)."""

    unit: GexUnit = GexUnit.USD_PER_1PCT
    sign_model: SignModel = SignModel.DEALER_LONG_CALLS_SHORT_PUTS
    gamma_source: GammaSource = GammaSource.VENDOR
    expiry_filter: ExpiryFilter = ExpiryFilter.ALL


@dataclass
class RawStrikes(ParsedTable):
    """Strike-level rows in the seed's GEXStrike shape, numbers as float64."""

    meta: StrikeMeta = field(default_factory=StrikeMeta)


ParsedFeed = RawChain | RawStrikes


@dataclass(frozen=True)
class FeedFormat:
    """One supported file format: registered once in gexdaemon.feeds.registry."""

    name: str
    description: str
    sniff: Callable[[Sniffed], bool]
    parse: Callable[[FeedFile, Sniffed], ParsedFeed]


# ---------------------------------------------------------------------------
# Numbers and instants
# ---------------------------------------------------------------------------

NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
NON_FINITE_PATTERN = r"^[+-]?(nan|inf|infinity)$"


def parse_numbers(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Strings to float64, column-wise: (numbers, unparseable mask).

    Thousands separators and surrounding spaces are dropped; empty cells are null;
    NaN/inf spellings become NaN/inf (validation then excludes them as non_finite);
    anything else that is not a number is null and flagged.
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.float64()), pa.array(np.zeros(len(arr), dtype=bool))
    if pa.types.is_boolean(arr.type) or not (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        arr = pc.cast(arr, pa.string())
    try:  # the common case: every cell is a plain number or empty
        return pc.cast(arr, pa.float64()), pa.array(np.zeros(len(arr), dtype=bool))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(arr)
    text = pc.replace_substring(text, ",", "")
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    lowered = pc.utf8_lower(text)
    is_number = pc.match_substring_regex(text, NUMBER_PATTERN)
    is_special = pc.match_substring_regex(lowered, NON_FINITE_PATTERN)
    ok = pc.or_(is_number, is_special)
    cleaned = pc.if_else(ok, lowered, pa.scalar(None, pa.string()))
    cleaned = pc.replace_substring_regex(cleaned, r"infinity$", "inf")
    out = pc.cast(cleaned, pa.float64())
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(ok, False)))
    return out, pc.fill_null(bad, False)


def parse_instant(text: str, *, naive_zone: Any = NEW_YORK) -> datetime:
    """An ISO-8601 instant; a naive one is read in `naive_zone` (New York unless told)."""
    raw = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2})?", raw):
        raw = raw.replace(" ", "T", 1)
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=naive_zone)
    return value.astimezone(UTC)


def parse_spot(text: str) -> float:
    return float(text.strip().replace(",", ""))


META_ALIASES: Mapping[str, str] = {
    "symbol": "symbol",
    "market_symbol": "symbol",
    "underlying": "symbol",
    "underlying_symbol": "symbol",
    "spot": "spot",
    "spot_price": "spot",
    "underlying_price": "spot",
    "current_price": "spot",
    "snapshot_at": "snapshot_at",
    "timestamp": "snapshot_at",
    "as_of": "snapshot_at",
    "quote_time": "snapshot_at",
    "gex_unit": "gex_unit",
    "unit": "gex_unit",
    "sign_model": "sign_model",
    "gamma_source": "gamma_source",
    "expiry_filter": "expiry_filter",
}


@dataclass
class FileMeta:
    symbol: str | None = None
    spot: float | None = None
    snapshot_at: datetime | None = None
    strike_meta: StrikeMeta = field(default_factory=StrikeMeta)


def read_meta(source: str, where: str, items: Mapping[str, Any]) -> FileMeta:
    """Interpret header / metadata keys (aliases above); a bad value is a ChainError at `where`."""
    meta = FileMeta()
    sm = meta.strike_meta
    for key, value in items.items():
        name = META_ALIASES.get(str(key).strip().lower())
        if name is None or value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = str(value).strip()
        try:
            if name == "symbol":
                meta.symbol = normalize_symbol(text)
            elif name == "spot":
                meta.spot = parse_spot(text)
            elif name == "snapshot_at":
                meta.snapshot_at = (
                    value.astimezone(UTC)
                    if isinstance(value, datetime) and value.tzinfo
                    else parse_instant(text)
                )
            elif name == "gex_unit":
                sm.unit = GexUnit(text)
            elif name == "sign_model":
                sm.sign_model = SignModel(text)
            elif name == "gamma_source":
                sm.gamma_source = GammaSource(text)
            elif name == "expiry_filter":
                sm.expiry_filter = ExpiryFilter(text)
        except ValueError as exc:
            raise ChainError.at(
                source, f"{where}.{key}", f"cannot read {text[:60]!r}: {exc}"
            ) from None
    return meta


def parse_header_lines(lines: list[str]) -> dict[str, str]:
    """`# key: value` / `# key = value` comment lines at the top of a CSV."""
    out: dict[str, str] = {}
    for line in lines:
        body = line.lstrip("#").strip().rstrip(",").strip()
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.+)$", body)
        if match:
            out[match.group(1)] = match.group(2).strip().strip('"')
    return out


def decode_text(source: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ChainError.at(
            source,
            f"line {line}",
            "is not UTF-8 text; save the file as UTF-8 CSV/JSON",
            rule="encoding",
        ) from None
    return text
