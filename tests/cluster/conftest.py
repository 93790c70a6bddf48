"""Fixtures: a real redis-server per test (AOF, fsync on every write)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.redislab import RedisServer, redis_server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
