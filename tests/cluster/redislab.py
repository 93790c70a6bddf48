"""Real redis-server processes for cluster tests (gexdaemon.cluster.localredis): a temporary
folder, a free loopback port, AOF with fsync on every write unless a test asks otherwise.

In CI (`CI` set) a missing redis-server fails the tests; elsewhere they are skipped with
the reason (install the Debian package `redis-server`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.cluster.localredis import LocalRedis, free_port

RedisServer = LocalRedis
__all__ = ["RedisServer", "free_port", "redis_server", "redis_server_binary"]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed (Debian package: redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the cluster tests", pytrace=False)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def redis_server(**options: object) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    folder = Path(tempfile.mkdtemp(prefix="gxr-"))
    server = RedisServer(folder=folder, port=free_port(), **options)  # type: ignore[arg-type]
    try:
        yield server.start(binary)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
