"""Several fault-injecting feed servers on 127.0.0.1, one port each, in a background thread.

The daemon keeps one data source (reliability figures, circuit breaker) per base URL,
so each fault gets a port of its own: one fault's breaker never pauses another's
jobs, and each server's `GET /_stats` is exactly what its source was served.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web

from gexdaemon.demo.feedserver import build_feed_app
from tests.daemon.harness import SAMPLE_FEEDS


class FeedFarm:
    def __init__(self, folder: Path = SAMPLE_FEEDS) -> None:
        self.folder = folder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="feed-farm", daemon=True
        )
        self._runners: list[web.AppRunner] = []
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=30)

    def add(self) -> str:
        """Start one more server; returns its base URL (`http://127.0.0.1:PORT/`)."""

        async def start() -> str:
            runner = web.AppRunner(build_feed_app(self.folder), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            return f"http://127.0.0.1:{port}/"

        return str(self._run(start()))

    @staticmethod
    def stats(base_url: str) -> dict[str, int]:
        """What a server answered: {"<path> <status>": count}."""
        with urllib.request.urlopen(base_url + "_stats", timeout=10) as response:
            return dict(json.loads(response.read()))

    @staticmethod
    def served(base_url: str) -> int:
        return sum(FeedFarm.stats(base_url).values())

    def close(self) -> None:
        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
