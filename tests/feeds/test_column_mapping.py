"""Every feed parser puts every number in its own column: a parser that swaps bid and ask,
call and put, volume and open interest, or reads the wrong expiry or root fails here.

One chain where no two numbers are equal (two strikes, an AM monthly and a PM weekly,
calls and puts) is written in each format a desk drops, read back, and compared field
by field with the chain it was written from.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gexdaemon.core.chain import NUMBER_COLUMNS
from gexdaemon.feeds.base import FeedFile
from gexdaemon.feeds.naming import symbol_from_name, symbol_of
from tests.feeds.conftest import ingest_bytes

SNAP = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)  # 15:45 New York
SPOT = 6850.25
EXPIRIES = {"SPX": date(2026, 12, 18), "SPXW": date(2026, 12, 24)}  # AM monthly, PM weekly


def chain() -> list[dict[str, Any]]:
    rows = []
    i = 0
    for root, expiry in EXPIRIES.items():
        for strike in (6800.0, 6900.0):
            for right in ("C", "P"):
                sign = 1.0 if right == "C" else -1.0
                rows.append(
                    {
                        "occ_symbol": f"{root}{expiry:%y%m%d}{right}{round(strike * 1000):08d}",
                        "root": root,
                        "expiry": expiry,
                        "settlement": "AM" if root == "SPX" else "PM",
                        "right": right,
                        "strike_price": strike,
                        "bid": 10.0 + i,
                        "ask": 10.5 + i,
                        "last": 10.25 + i,
                        "volume": 100 + i,
                        "open_interest": 1000 + 10 * i,
                        "iv": round(0.10 + 0.01 * i, 4),
                        "delta": round(sign * (0.30 + 0.01 * i), 4),
                        "gamma": round(0.0001 * (i + 1), 6),
                        "theta": round(-(1.0 + 0.1 * i), 4),
                        "vega": round(2.0 + 0.1 * i, 4),
                    }
                )
                i += 1
    return rows


def read_back(result: Any, fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    lake = result.lake.to_pylist()
    return {row["occ_symbol"]: {f: row[f] for f in fields} for row in lake}


def expected(fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {row["occ_symbol"]: {f: row[f] for f in fields} for row in chain()}


IDENTITY = ("root", "expiry", "settlement", "right", "strike_price")
# The quote table carries every number column but theta and vega.
QUOTE_TABLE_FIELDS = (*IDENTITY, *(c for c in NUMBER_COLUMNS if c not in ("theta", "vega")))
ALL_FIELDS = (*QUOTE_TABLE_FIELDS, "theta", "vega")


def quote_table_csv() -> bytes:
    side = "Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest"
    lines = [
        "S&P 500 INDEX,Last: 6,850.25,Change: +41.20",
        '"Date: November 24, 2026 at 3:45 PM EST",Bid: 6849.8,Ask: 6850.6',
        f"Expiration Date,Calls,{side},Strike,Puts,{side}",
    ]
    rows = chain()
    for call, put in zip(rows[0::2], rows[1::2], strict=True):

        def cells(r: dict[str, Any]) -> str:
            return ",".join(
                str(r[k])
                for k in ("last", "bid", "ask", "volume", "iv", "delta", "gamma", "open_interest")
            ).replace(f"{r['last']},", f"{r['last']},0,", 1)

        expiry = call["expiry"]
        lines.append(
            f"{expiry:%a %b %d %Y},{call['occ_symbol']},{cells(call)},{call['strike_price']:.2f},"
            f"{put['occ_symbol']},{cells(put)}"
        )
    return ("\n".join(lines) + "\n").encode()


def cboe_json() -> bytes:
    options = [
        {
            "option": r["occ_symbol"],
            "bid": r["bid"],
            "ask": r["ask"],
            "last_trade_price": r["last"],
            "volume": float(r["volume"]),
            "open_interest": float(r["open_interest"]),
            "iv": r["iv"],
            "delta": r["delta"],
            "gamma": r["gamma"],
            "theta": r["theta"],
            "vega": r["vega"],
        }
        for r in reversed(chain())  # key order and row order do not matter
    ]
    doc = {
        "timestamp": "2026-11-24 20:45:00",
        "symbol": "_SPX",
        "data": {"current_price": SPOT, "options": options},
    }
    return json.dumps(doc).encode()


LONG_COLUMNS = {
    # the file's column name -> the chain's field
    "underlying_symbol": None,
    "root": "root",
    "expiration_date": "expiry",
    "strike": "strike_price",
    "put_call": "right",
    "bid_price": "bid",
    "ask_price": "ask",
    "last_price": "last",
    "vol": "volume",
    "oi": "open_interest",
    "implied_volatility": "iv",
    "delta": "delta",
    "gamma": "gamma",
    "theta": "theta",
    "vega": "vega",
}


def long_table() -> pa.Table:
    rows = chain()
    columns: dict[str, list[Any]] = {}
    for column, field in LONG_COLUMNS.items():
        columns[column] = ["SPX" if field is None else r[field] for r in rows]
    columns["underlying_price"] = [SPOT] * len(rows)
    columns["quote_time"] = [SNAP] * len(rows)
    return pa.table(columns)


def long_csv() -> bytes:
    table = long_table()
    lines = [",".join(table.column_names)]
    for row in table.to_pylist():
        lines.append(
            ",".join(
                v.isoformat() if isinstance(v, date | datetime) else str(v) for v in row.values()
            )
        )
    return ("\n".join(lines) + "\n").encode()


def long_parquet() -> bytes:
    table = long_table().set_column(
        long_table().column_names.index("quote_time"),
        "quote_time",
        pa.array([SNAP] * len(chain()), type=pa.timestamp("us", tz="UTC")),
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def occ_only_csv() -> bytes:
    lines = [
        "# symbol: SPX",
        f"# spot: {SPOT}",
        "# snapshot_at: 2026-11-24 15:45",
        "Option Symbol,Ask,Bid,Volume,Open Interest,Implied Volatility,Gamma,Delta,Theta,Vega,Last",
    ]
    for r in chain():
        lines.append(
            ",".join(
                str(r[k])
                for k in (
                    "occ_symbol",
                    "ask",
                    "bid",
                    "volume",
                    "open_interest",
                    "iv",
                    "gamma",
                    "delta",
                    "theta",
                    "vega",
                    "last",
                )
            )
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("name", "make", "fields", "format_name"),
    [
        ("quotedata.csv", quote_table_csv, QUOTE_TABLE_FIELDS, "cboe_csv"),
        ("_SPX.json", cboe_json, ALL_FIELDS, "cboe_json"),
        ("contracts.csv", long_csv, ALL_FIELDS, "long_csv"),
        ("contracts.parquet", long_parquet, ALL_FIELDS, "long_parquet"),
        ("by_symbol.csv", occ_only_csv, ALL_FIELDS, "long_csv"),
    ],
)
def test_every_number_lands_in_its_own_column(
    name: str, make: Any, fields: tuple[str, ...], format_name: str
) -> None:
    result = ingest_bytes(name, make())
    assert result.format_name == format_name
    assert read_back(result, fields) == expected(fields)
    snap = result.snapshot
    assert snap.market_symbol == "SPX"
    assert snap.spot_price == SPOT
    assert snap.snapshot_at == SNAP
    assert result.excluded == {}
    # Per strike: open interest and volume summed over both expiries, each side its own;
    # quotes from the nearest expiry (the SPX monthly, 18 December).
    rows = chain()
    for strike in snap.strikes:
        here = [r for r in rows if r["strike_price"] == strike.strike_price]
        calls = [r for r in here if r["right"] == "C"]
        puts = [r for r in here if r["right"] == "P"]
        assert strike.call_open_interest == sum(r["open_interest"] for r in calls)
        assert strike.put_open_interest == sum(r["open_interest"] for r in puts)
        assert strike.call_volume == sum(r["volume"] for r in calls)
        assert strike.put_volume == sum(r["volume"] for r in puts)
        nearest_call = min(calls, key=lambda r: r["expiry"])
        nearest_put = min(puts, key=lambda r: r["expiry"])
        assert (strike.call_bid, strike.call_ask) == (nearest_call["bid"], nearest_call["ask"])
        assert (strike.put_bid, strike.put_ask) == (nearest_put["bid"], nearest_put["ask"])


STRIKE_FIELDS = (
    "call_open_interest",
    "put_open_interest",
    "call_volume",
    "put_volume",
    "call_bid",
    "call_ask",
    "put_bid",
    "put_ask",
)


def strike_rows() -> list[dict[str, Any]]:
    return [
        {
            "strike_price": strike,
            "call_open_interest": 1000 + k,
            "put_open_interest": 2000 + k,
            "call_volume": 300 + k,
            "put_volume": 400 + k,
            "call_bid": 5.0 + k,
            "call_ask": 5.5 + k,
            "put_bid": 7.0 + k,
            "put_ask": 7.5 + k,
            "gamma": 100.0 + k,
        }
        for k, strike in enumerate((6800.0, 6850.0, 6900.0))
    ]


def test_strike_level_columns_land_in_their_own_fields() -> None:
    rows = strike_rows()
    header = list(rows[0])
    lines = [
        "# symbol: SPX",
        f"# spot_price: {SPOT}",
        "# snapshot_at: 2026-11-24T20:45:00Z",
        ",".join(reversed(header)),  # column order does not matter
    ]
    lines += [",".join(str(r[k]) for k in reversed(header)) for r in rows]
    snap = ingest_bytes("strikes.csv", ("\n".join(lines) + "\n").encode()).snapshot
    got = [{f: getattr(s, f) for f in ("strike_price", *STRIKE_FIELDS)} for s in snap.strikes]
    assert got == [{f: r[f] for f in ("strike_price", *STRIKE_FIELDS)} for r in rows]
    assert snap.market_symbol == "SPX"
    assert snap.snapshot_at == SNAP


def test_call_and_put_spelled_out_are_read_as_calls_and_puts() -> None:
    data = long_csv()
    text = data.decode()
    header, *lines = text.splitlines()
    at = header.split(",").index("put_call")
    words = {"C": "Call", "P": "put"}
    fixed = []
    for line in lines:
        cells = line.split(",")
        cells[at] = words[cells[at]]
        fixed.append(",".join(cells))
    result = ingest_bytes("contracts.csv", ("\n".join([header, *fixed]) + "\n").encode())
    assert read_back(result, ALL_FIELDS) == expected(ALL_FIELDS)


# --- which underlying a file is for -------------------------------------------------------

OPTIONABLE = frozenset({"SPX", "NDX", "SPY", "RUT"})


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("SPX_2026-11-26.csv", "SPX"),
        ("_SPX.json", "SPX"),
        ("spx_quotedata.csv", "SPX"),
        ("^NDX-chain.parquet", "NDX"),
        ("SPXW_weeklies.csv", "SPX"),  # a root files under its underlying
        ("NDXP.json", "NDX"),
        ("SPY", "SPY"),
        ("AAPL_chain.csv", None),  # not optionable here
        ("quotedata.csv", None),
        ("SPXTOOLONG_x.csv", None),
        ("2026_SPX.csv", None),
    ],
)
def test_the_symbol_in_a_file_name(name: str, symbol: str | None) -> None:
    assert symbol_from_name(name, OPTIONABLE) == symbol


@pytest.mark.parametrize(
    ("name", "make"),
    [("quotedata.csv", quote_table_csv), ("chain.json", cboe_json), ("c.csv", long_csv)],
)
def test_a_file_whose_name_says_nothing_is_filed_by_its_contents(name: str, make: Any) -> None:
    assert symbol_of(FeedFile(name=name, data=make()), OPTIONABLE) == "SPX"
    # The name wins when it names a symbol.
    assert symbol_of(FeedFile(name=f"NDX_{name}", data=make()), OPTIONABLE) == "NDX"
