"""Listen to a daemon's event stream (`GET /v1/events`) from a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

from gexdaemon.client import AsyncClient, DaemonUnreachable


class EventTap:
    """Collects every event (not the state snapshots) until closed."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="event-tap", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise AssertionError("the event stream did not send its first snapshot")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._listen())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    async def _listen(self) -> None:
        async with AsyncClient(self.socket, timeout=3600) as client:
            with contextlib.suppress(DaemonUnreachable):
                async for message in client.events():
                    if message.get("type") == "snapshot":
                        self._ready.set()
                        continue
                    with self._lock:
                        self.events.append(message)

    def of_type(self, prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if str(e.get("type", "")).startswith(prefix)]

    def close(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)
