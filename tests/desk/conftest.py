"""The desk's acceptance suite: the real daemon, the CLI's human output, the demo and the docs.

Each test stands for one item of the "desk truth" issue and fails on the build
before it; the TUI's items live with the dashboard's tests (tests/tui).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.harness import FeedServer, RunningDaemon, running_daemon, start_feed_server


@pytest.fixture(scope="session")
def feeds() -> Iterator[FeedServer]:
    server = start_feed_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def daemon() -> Iterator[RunningDaemon]:
    with running_daemon() as d:
        yield d
