"""Fixtures for every suite that talks to a real daemon: a feed server, a daemon per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.harness import FeedServer, RunningDaemon, running_daemon, start_feed_server


@pytest.fixture(scope="session")
def feeds() -> Iterator[FeedServer]:
    """One feed server on 127.0.0.1 for the session."""
    server = start_feed_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def daemon() -> Iterator[RunningDaemon]:
    """One daemon shared by a module's tests (each test uses its own requests)."""
    with running_daemon() as d:
        yield d
