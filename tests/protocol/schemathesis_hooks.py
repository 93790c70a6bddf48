"""Schemathesis hooks: generators for values whose validity no JSON Schema can express.

Loaded by the `schemathesis run` in `test_schemathesis.py` (SCHEMATHESIS_HOOKS). The
OpenAPI document names these values by format (`rule-condition`, `sql-select`,
`market-symbol`, `source-url`) or media type (a chain file's bytes); positive generation draws
valid ones here, negative generation still breaks the schema around them. A request
time (`date-time`) is drawn from the past: the daemon refuses a future one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import schemathesis
from hypothesis import strategies as st

from tests.conftest import REPO

CONDITIONS = st.one_of(
    st.sampled_from(
        [
            "data_type == 'real_time' and market_symbol in ['NDX', 'SPX']",
            "data_type == 'snapshot'",
            "market_symbol == 'SPY'",
            "origin == 'api'",
            "ny_hour >= 9.5 and ny_hour < 16",
            "ny_weekday in ['sat', 'sun']",
            "reliability_score < 0.5",
            "source_host == 'cdn.cboe.com'",
        ]
    ),
    st.integers(min_value=0, max_value=10**6).map(lambda n: f"age_s > {n}"),
)
SELECTS = st.one_of(
    st.sampled_from(
        [
            "SELECT count(*) AS jobs FROM processing_jobs",
            "SELECT market_symbol, priority_level FROM priority_requests",
            "SELECT name, priority_score FROM priority_rules",
            "WITH s AS (SELECT * FROM gex_snapshots) SELECT count(*) AS n FROM s",
        ]
    ),
    st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: f"SELECT {n} AS n"),
)
TICKERS = st.sampled_from(["SPX", "spx", "_SPX", "^NDX", "$SPX", "SPY", "QQQ", "AAPL", "BRK.B"])
PAST = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2026, 1, 1),
    timezones=st.just(UTC),
).map(lambda at: at.isoformat())
FEEDS = os.environ.get("GEXD_FUZZ_FEEDS", "http://127.0.0.1:9/")  # the test's feed server
SOURCE_URLS = st.sampled_from(
    [f"{FEEDS}{name}" for name in ("SPX_strikes.csv", "SPX_strikes.json", "no_such_file.csv")]
)


def _head(name: str, lines: int) -> bytes:
    """The first lines of a sample chain: a small file that is still a valid chain."""
    text = (REPO / "sample_feeds" / name).read_bytes()
    return b"\n".join(text.splitlines()[:lines]) + b"\n"


CHAINS = st.sampled_from([_head("SPX_strikes.csv", 24), _head("SPX_strikes.ndjson", 16)])

schemathesis.openapi.format("rule-condition", CONDITIONS)
schemathesis.openapi.format("sql-select", SELECTS)
schemathesis.openapi.format("market-symbol", TICKERS)
schemathesis.openapi.format("source-url", SOURCE_URLS)
schemathesis.openapi.format("date-time", PAST)
schemathesis.openapi.media_type("application/octet-stream", CHAINS)
