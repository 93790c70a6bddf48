"""CBOE delayed-quotes JSON (`_SPX.json`, `SPY.json`): decoded with typed msgspec structs.

Layout: `{"timestamp": "2023-09-21 03:17:42" (UTC), "symbol": "_SPX", "data":
{"current_price": spot, "options": [{"option": OCC symbol, "bid", "ask", "iv",
"open_interest", "volume", "delta", "gamma", "theta", "vega",
"last_trade_price", ...}]}}`. Every number is a JSON float (open interest
included); unknown keys are skipped, so key order and new fields do not matter. A
value of the wrong type refuses the file with its field path
(`_SPX.json: data.options[1532].bid: ...`): such a file is not CBOE's.
"""

from __future__ import annotations

import operator
from datetime import UTC

import msgspec
import numpy as np
import pyarrow as pa

from gexdaemon.core.chain import ChainError, RawChain
from gexdaemon.core.jsontext import JsonTextError, decode_json
from gexdaemon.core.symbols import normalize_symbol
from gexdaemon.feeds.base import FeedFile, FeedFormat, Sniffed, parse_instant


class _Option(msgspec.Struct, gc=False):  # no GC tracking: 30k small objects per file
    option: str
    bid: float | None = None
    ask: float | None = None
    iv: float | None = None
    open_interest: float | None = None
    volume: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    last_trade_price: float | None = None


class _Data(msgspec.Struct, gc=False):
    options: list[_Option]
    current_price: float | None = None
    symbol: str | None = None


class _File(msgspec.Struct, gc=False):
    data: _Data
    timestamp: str | None = None
    symbol: str | None = None


_DECODER = msgspec.json.Decoder(_File)
_FIELDS = (
    "bid",
    "ask",
    "iv",
    "open_interest",
    "volume",
    "delta",
    "gamma",
    "theta",
    "vega",
    "last_trade_price",
)
_OPTION = operator.attrgetter("option")
_GETTERS = tuple(
    ("last" if name == "last_trade_price" else name, operator.attrgetter(name)) for name in _FIELDS
)


def sniff(seen: Sniffed) -> bool:
    return seen.kind == "json" and '"options"' in seen.head_text and '"data"' in seen.head_text


def parse(feed: FeedFile, seen: Sniffed) -> RawChain:
    try:
        doc = decode_json(feed.data, _DECODER)
    except JsonTextError as exc:
        found = exc.problem
        reason = {
            "type": f"{found.message} (this is not a CBOE delayed-quotes file, or it was edited)",
            "syntax": f"{found.message}; download the file again",
        }.get(found.rule, found.message)
        raise ChainError.at(feed.name, found.where, reason, rule=found.rule) from None
    options = doc.data.options
    n = len(options)
    columns: dict[str, pa.Array] = {
        "occ_symbol": pa.array(list(map(_OPTION, options)), type=pa.string())
    }
    # Field by field straight from the structs into Arrow (None is null): a third
    # faster than a row-tuple matrix through NumPy, and no NaN mask pass.
    for name, getter in _GETTERS:
        columns[name] = pa.array(list(map(getter, options)), type=pa.float64())
    columns["source_row"] = pa.array(np.arange(n, dtype=np.int64))
    symbol = doc.symbol or doc.data.symbol
    snapshot_at = None
    if doc.timestamp:
        try:
            snapshot_at = parse_instant(doc.timestamp, naive_zone=UTC)
        except ValueError:
            raise ChainError.at(
                feed.name,
                "timestamp",
                f"cannot read {doc.timestamp[:40]!r} as a date and time (CBOE writes "
                "'2023-09-21 03:17:42', UTC)",
            ) from None
    return RawChain(
        table=pa.table(columns),
        source=feed.name,
        format_name=FORMAT.name,
        rows_read=n,
        locate=lambda i: f"data.options[{i}]",
        underlying=normalize_symbol(symbol) if symbol else None,
        spot=doc.data.current_price,
        snapshot_at=snapshot_at,
    )


FORMAT = FeedFormat(
    name="cboe_json",
    description="CBOE delayed-quotes JSON (_SPX.json, SPY.json)",
    sniff=sniff,
    parse=parse,
)
