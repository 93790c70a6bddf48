"""A fresh store in a temporary data directory for each storage test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.storage.store import Store, StoreOptions


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(
        StoreOptions(
            path=tmp_path / "gex.duckdb",
            lake_dir=tmp_path / "gex",
            archive_dir=tmp_path / "archive",
        )
    )
    yield opened
    opened.close()
