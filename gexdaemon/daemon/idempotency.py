"""Idempotency keys: a client that retries a submission gets its first job back, not a second.

A key is held from the moment intake accepts its request (before the request is durable,
so a concurrent repeat finds it and waits for the first to settle) and for
`IDEMPOTENCY_WINDOW` after. Keys are journaled with the request they stand for, so a
crash cannot keep one without the other. The most recent keys are held in memory (all of
the last 24 hours, up to `max_held`); past that the store is asked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from gexdaemon.core.models import IDEMPOTENCY_WINDOW
from gexdaemon.daemon.clock import Clock
from gexdaemon.storage.idempotency import KeyUse, key_use, keys_since
from gexdaemon.storage.store import ForgetKeysBefore, Store


@dataclass
class Held:
    use: KeyUse
    # Pending while the first submission with this key is being made durable.
    durable: asyncio.Future[None] | None = field(default=None, repr=False)

    async def settled(self) -> bool:
        """Wait for the first submission; False if it failed (the key is free again)."""
        if self.durable is None:
            return True
        try:
            await asyncio.shield(self.durable)
        except Exception:
            return False
        return True


@dataclass(kw_only=True, eq=False)
class IdempotencyBook:
    store: Store
    clock: Clock
    max_held: int = 1_000_000

    def __post_init__(self) -> None:
        self._held: OrderedDict[str, Held] = OrderedDict()  # oldest first
        self._trimmed_at: datetime | None = None  # last time a live key left for room

    async def load(self) -> int:
        """Hold the keys of the last 24 hours; forget older rows. Returns how many are held."""
        now = self.clock.now()
        cutoff = now - IDEMPOTENCY_WINDOW
        await self.store.commit([ForgetKeysBefore(cutoff)])
        for use in await self.store.read(keys_since, cutoff):
            self._held[use.key] = Held(use)
        self._trim(now)
        return len(self._held)

    async def find(self, key: str) -> Held | None:
        """The key's first use within the window, if any (waits for nothing)."""
        now = self.clock.now()
        held = self._held.get(key)
        if held is not None:
            if held.use.created_at >= now - IDEMPOTENCY_WINDOW:
                return held
            del self._held[key]  # past its window: the key is free again
            return None
        if self._trimmed_at is not None and self._trimmed_at >= now - IDEMPOTENCY_WINDOW:
            use = await self.store.read(key_use, key)
            if use is not None and use.created_at >= now - IDEMPOTENCY_WINDOW:
                return Held(use)
        return None

    def hold(
        self,
        key: str,
        fingerprint: str,
        request_id: uuid.UUID,
        job_id: uuid.UUID,
        durable: asyncio.Future[None],
    ) -> KeyUse:
        use = KeyUse(key, fingerprint, request_id, job_id, self.clock.now())
        self._held[key] = Held(use, durable)
        self._held.move_to_end(key)
        self._trim(use.created_at)
        return use

    def release(self, key: str, job_id: uuid.UUID) -> None:
        """The submission that took `key` failed: the key is free again."""
        held = self._held.get(key)
        if held is not None and held.use.job_id == job_id:
            del self._held[key]

    def settled(self, key: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.durable = None

    def _trim(self, now: datetime) -> None:
        cutoff = now - IDEMPOTENCY_WINDOW
        while self._held:
            oldest_key, oldest = next(iter(self._held.items()))
            if oldest.use.created_at >= cutoff and len(self._held) <= self.max_held:
                break
            if oldest.use.created_at >= cutoff:
                self._trimmed_at = now  # a key still in its window left: ask the store
            del self._held[oldest_key]

    def __len__(self) -> int:
        return len(self._held)
