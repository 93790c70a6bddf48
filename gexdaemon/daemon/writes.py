"""Writes nobody waits for (risk flags, lease renewals, source counts): committed, never lost track of.

A caller that must know its change is durable awaits `Store.commit` itself; the
rest hand their changes here, and shutdown waits for every one of them.
"""

from __future__ import annotations

import asyncio

import structlog

from gexdaemon.storage.store import Change, Store

log = structlog.get_logger("gexdaemon.writes")


class BackgroundWrites:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: set[asyncio.Future[None]] = set()

    def soon(self, *changes: Change) -> None:
        """Commit without waiting; a failure is logged (the next state change rewrites it)."""
        fut = asyncio.ensure_future(self._store.commit(list(changes)))
        self._pending.add(fut)
        fut.add_done_callback(self._done)

    def _done(self, fut: asyncio.Future[None]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("background write failed", error=str(fut.exception()))

    async def drain(self) -> None:
        """Wait until every write handed over so far has committed (or failed)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
