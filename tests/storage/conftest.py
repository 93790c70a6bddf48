"""A fresh store in a temporary data directory for each storage test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.storage.store import Store
from tests.storage.seeding import store_options


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(store_options(tmp_path))
    yield opened
    opened.close()
