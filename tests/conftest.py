"""Shared fixtures: a pinned clock, the shared reference data, temporary data directories."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gexdaemon.core.models import DomainContext

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_SPX_CSV = SHARED / "data" / "cboe" / "spx_quotedata_20220205.csv"

FIXED_NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)

# `feeds` and `daemon`, for the suites that start a real daemon (daemon, desk, reliability, tui).
pytest_plugins = ("tests.daemon.fixtures",)


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def ctx() -> DomainContext:
    """Validation context with the clock pinned to FIXED_NOW."""
    return DomainContext(now=FIXED_NOW)


@pytest.fixture
def shared_spx_csv() -> Path:
    if not SHARED_SPX_CSV.exists():
        pytest.skip(f"shared reference data not present at {SHARED_SPX_CSV} (../shared is absent)")
    return SHARED_SPX_CSV
