"""The event stream: numbered events fanned out to subscribers with bounded buffers.

Publishing never waits for a subscriber. Each subscriber has a buffer of
`[api] event_buffer` events; one that falls behind is cut back to a single
`resync` marker and must rebuild its state from a fresh snapshot (the WebSocket
handler sends one). Sequence numbers are gap-free per daemon run, so a client
that sees a gap knows it missed something.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gexdaemon.core.timeutil import utc_now
from gexdaemon.core.vocab import EventType
from gexdaemon.protocol.shapes import EventMessage, Shape

EventData = Shape | dict[str, Any]
"""An event's payload: the shape `EVENT_DATA` names for its type (the resync marker's is a dict)."""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: EventType
    at: datetime
    data: EventData

    def message(self) -> EventMessage:
        return EventMessage(seq=self.seq, type=self.type, at=self.at, data=self.data)  # type: ignore[arg-type]  # a Shape encodes as the object it describes


RESYNC = EventType.RESYNC


@dataclass(eq=False)
class Subscription:
    """One consumer's view of the stream: events in order, or a resync marker after a gap."""

    bus: EventBus
    limit: int
    _buffer: deque[Event] = field(default_factory=deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    closed: bool = False

    def _offer(self, event: Event) -> None:
        if len(self._buffer) >= self.limit:
            # Too slow: drop the backlog and leave one marker; the consumer re-reads the state.
            self.dropped += len(self._buffer)
            self._buffer.clear()
            self._buffer.append(
                Event(
                    event.seq,
                    RESYNC,
                    event.at,
                    {"reason": "consumer fell behind", "last_seq": event.seq},
                )
            )
        else:
            self._buffer.append(event)
        self._wakeup.set()

    async def next(self, wait_s: float | None = None) -> Event | None:
        """The next event, or None on timeout or when the subscription closed."""
        while not self._buffer:
            if self.closed:
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait_s)
            except TimeoutError:
                return None
        return self._buffer.popleft()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self.bus._subscribers.discard(self)

    def request_resync(self) -> None:
        """The client asked for a fresh snapshot: answer with a resync marker."""
        self._buffer.clear()
        self._buffer.append(Event(self.bus.last_seq, RESYNC, utc_now(), {"reason": "client asked"}))
        self._wakeup.set()


class EventBus:
    def __init__(self, buffer: int = 2000, clock: Callable[[], datetime] = utc_now) -> None:
        self.buffer = buffer
        self._clock = clock
        self._seq = itertools.count(1)
        self.last_seq = 0
        self._subscribers: set[Subscription] = set()
        self.published = 0

    def publish(self, type_: EventType, data: EventData | Callable[[], EventData]) -> Event | None:
        """Number and fan out an event. `data` may be a function: it is only called when
        someone listens, so a busy daemon with no dashboard attached pays nothing."""
        if not self._subscribers:
            return None
        event = Event(next(self._seq), type_, self._clock(), data() if callable(data) else data)
        self.last_seq = event.seq
        self.published += 1
        for sub in tuple(self._subscribers):
            sub._offer(event)
        return event

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self.buffer)
        self._subscribers.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close_all(self) -> None:
        for sub in tuple(self._subscribers):
            sub.close()
