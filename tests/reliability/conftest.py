"""Fixtures: one feed server on 127.0.0.1 for the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.harness import FeedServer, start_feed_server


@pytest.fixture(scope="session")
def feeds() -> Iterator[FeedServer]:
    server = start_feed_server()
    yield server
    server.stop()
