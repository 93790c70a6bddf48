"""CBOE delayed-quotes JSON: typed decode, key order, nulls, precise error paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from gexdaemon.core.chain import ChainError
from tests.feeds.conftest import ingest_bytes, ingest_sample


def doc(options: list[dict[str, Any]], **top: Any) -> bytes:
    body = {
        "timestamp": "2026-11-24 20:45:00",
        "data": {"options": options, "current_price": 6850.25, "symbol": "^SPX"},
        "symbol": "_SPX",
    }
    body.update(top)
    return msgspec.json.encode(body)


OPTION = {
    "option": "SPXW261218C06900000",
    "bid": 54.8,
    "bid_size": 10.0,
    "ask": 55.6,
    "iv": 0.1412,
    "open_interest": 1500.0,
    "volume": 120.0,
    "delta": 0.4521,
    "gamma": 0.0009,
    "theta": -2.1,
    "vega": 7.7,
    "last_trade_price": 55.1,
    "last_trade_time": None,
}


def test_timestamp_is_utc_and_symbol_and_spot_come_from_the_file() -> None:
    snap = ingest_bytes("_SPX.json", doc([OPTION])).snapshot
    assert snap.snapshot_at == datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert snap.market_symbol == "SPX"
    assert snap.spot_price == 6850.25


def test_key_order_and_unknown_keys_do_not_matter() -> None:
    reordered = {k: OPTION[k] for k in reversed(list(OPTION))} | {"rho": 1.2, "tick": "up"}
    a = ingest_bytes("a.json", doc([OPTION])).snapshot
    b = ingest_bytes("b.json", doc([reordered])).snapshot
    assert a.total_gex == b.total_gex


def test_integers_and_missing_fields_are_accepted() -> None:
    sparse = {"option": "SPXW261218P06800000", "open_interest": 300, "iv": 0.15}
    result = ingest_bytes("s.json", doc([OPTION, sparse]))
    strike = next(s for s in result.snapshot.strikes if s.strike_price == 6800.0)
    assert strike.put_open_interest == 300
    assert strike.put_bid == 0.0  # no quote: reported as 0, and completeness drops
    assert result.snapshot.data_quality_score < 1.0


def test_a_value_of_the_wrong_type_names_its_field_path() -> None:
    bad = [OPTION] * 5 + [{**OPTION, "bid": "n/a"}]
    with pytest.raises(ChainError) as info:
        ingest_bytes("_SPX.json", doc(bad))
    assert info.value.details[0].path == "_SPX.json: data.options[5].bid"
    assert "expected a number or null, got a string" in info.value.message


def test_truncated_json_says_where() -> None:
    data = doc([OPTION] * 50)
    with pytest.raises(ChainError, match="truncated"):
        ingest_bytes("_SPX.json", data[: len(data) // 2])


def test_committed_samples_cover_the_three_underlyings() -> None:
    for name, symbol in (("_SPX.json", "SPX"), ("_NDX.json", "NDX"), ("SPY.json", "SPY")):
        result = ingest_sample(name)
        assert result.snapshot.market_symbol == symbol
        roots = set(result.lake.column("root").to_pylist())
        assert roots == {"SPX": {"SPX", "SPXW"}, "NDX": {"NDX", "NDXP"}, "SPY": {"SPY"}}[symbol]
