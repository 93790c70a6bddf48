"""Formats are chosen by content: every sample is recognised, whatever its file name."""

from __future__ import annotations

import pytest

from gexdaemon.feeds.base import FeedFile
from gexdaemon.feeds.registry import FORMATS, detect
from tests.feeds.conftest import SAMPLES

EXPECTED = {
    "_SPX.json": "cboe_json",
    "_NDX.json": "cboe_json",
    "SPY.json": "cboe_json",
    "SPX_quotedata.csv": "cboe_csv",
    "NDX_quotedata.csv": "cboe_csv",
    "SPY_quotedata.csv": "cboe_csv",
    "SPX_contracts.csv": "long_csv",
    "SPY_contracts.csv": "long_csv",
    "SPX_contracts.parquet": "long_parquet",
    "NDX_contracts.parquet": "long_parquet",
    "SPX_strikes.csv": "strike_csv",
    "SPX_strikes.json": "strike_json",
    "SPX_strikes.ndjson": "strike_ndjson",
    "SPX_strikes.parquet": "strike_parquet",
}


def test_every_committed_sample_is_listed_here() -> None:
    committed = {
        p.name for p in SAMPLES.iterdir() if p.is_file() and p.suffix not in (".py", ".md")
    }
    assert committed == set(EXPECTED)


@pytest.mark.parametrize(("name", "fmt"), sorted(EXPECTED.items()))
def test_sample_detected_by_content(name: str, fmt: str) -> None:
    data = (SAMPLES / name).read_bytes()
    for disguise in (name, "download.dat", "chain.csv", "chain.json"):
        found, _ = detect(FeedFile(disguise, data))
        assert found.name == fmt


def test_every_format_has_a_sample() -> None:
    assert {f.name for f in FORMATS} == set(EXPECTED.values())
