"""The dashboard's link to the daemon: the event stream, the queue poll, and reconnects.

`DaemonLink.run()` never returns until it is cancelled and never raises: every
way the socket can fail (no daemon, a restart, a dropped stream, a gap in the
sequence numbers) becomes a line in `DeskState.link` and a retry after a capped,
jittered back-off. On every (re)connect the daemon sends its whole state first,
so a gap is repaired by reconnecting, which yields a fresh snapshot. The queue
figures are polled once a second because the event stream does not carry them;
the poll doubles as the heartbeat behind "last update N s ago".

`DaemonCalls` is the part of `gexdaemon.client.AsyncClient` the dashboard uses;
`gextui.replay.ReplayDaemon` implements it from a recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

import aiohttp

from gexdaemon.client import ApiError, DaemonUnreachable
from gexdaemon.core.errors import Problem
from gexdaemon.core.vocab import EventType
from gexdaemon.protocol import shapes as s
from gextui.desk import DeskState

T = TypeVar("T")


class DaemonCalls(Protocol):
    """The socket API calls the dashboard makes (`AsyncClient` satisfies it), with their shapes."""

    socket_path: str

    def events(self) -> AsyncIterator[s.StateMessage | s.EventMessage]: ...
    async def close(self) -> None: ...
    async def queues(self) -> s.Queues: ...
    async def cluster(self) -> s.ClusterStatus: ...
    async def sla(self) -> s.SlaReport: ...
    async def job(self, job_id: str) -> s.JobDetail: ...
    async def jobs(
        self,
        *,
        status: str | None = None,
        level: str | None = None,
        symbol: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> s.JobPage: ...
    async def latest_snapshot(
        self, symbol: str, *, expiry_filter: str | None = None
    ) -> s.SnapshotView: ...
    async def snapshot(self, snapshot_id: str) -> s.SnapshotView: ...
    async def gex_history(self, symbol: str, *, limit: int = 200) -> s.GexHistory: ...
    async def submit(
        self, requests: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, origin: str = "api"
    ) -> s.Accepted: ...
    async def cancel(self, job_id: str) -> Any: ...
    async def retry(self, job_id: str) -> Any: ...
    async def set_level(self, job_id: str, level: str) -> Any: ...
    async def create_rule(self, rule: Mapping[str, Any]) -> s.SavedRule: ...
    async def update_rule(self, ref: str, changes: Mapping[str, Any]) -> s.SavedRule: ...
    async def delete_rule(self, ref: str) -> Any: ...
    async def test_rules(
        self, rules: Sequence[Mapping[str, Any]], *, mode: str = "merge", limit: int = 500
    ) -> s.ShadowReport: ...
    async def set_source_active(self, ref: str, active: bool) -> Any: ...


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What a call to the daemon gave: a value, or an error with its field problems."""

    value: T | None = None
    error: str | None = None
    problems: tuple[Problem, ...] = ()


async def ask(call: Awaitable[T]) -> Answer[T]:
    """Await one call to the daemon; whatever goes wrong becomes the answer's `error`.

    Nothing the daemon does (a refusal, a restart, silence) may close the dashboard,
    so every call from a view or a dialog goes through here.
    """
    try:
        return Answer(await call)
    except ApiError as exc:
        return Answer(error=exc.message, problems=tuple(exc.details))
    except DaemonUnreachable as exc:
        return Answer(error=exc.message)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return Answer(error=f"the daemon did not answer ({type(exc).__name__}: {exc})")


@dataclass
class Backoff:
    """Capped exponential back-off with jitter: the n-th wait is in [c/2, c], c = min(cap, first*2^n).

    Half the ceiling is kept so a flapping daemon is not hammered; the random half
    spreads the reconnects of every dashboard on the desk after a restart.
    """

    first_s: float = 0.25
    cap_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.first_s * (2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class StreamGap(Exception):
    """Sequence numbers jumped: events were lost between the daemon and us."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"expected event {expected}, got {got}")
        self.expected = expected
        self.got = got


Sleep = Callable[[float], Awaitable[None]]


class DaemonLink:
    """Keeps `desk` in step with the daemon behind `calls`, forever."""

    def __init__(
        self,
        calls: DaemonCalls,
        desk: DeskState,
        *,
        backoff: Backoff | None = None,
        poll_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
        on_attach: Callable[[], None] | None = None,
    ) -> None:
        self.calls = calls
        self.desk = desk
        self.on_attach = on_attach
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        self._sleep = sleep

    async def run(self) -> None:
        while True:
            self.desk.link_connecting(self.backoff.attempt)
            try:
                reason = await self._follow_stream()
            except StreamGap as gap:
                self.desk.note_gap(gap.expected, gap.got)
                continue  # at once: reconnecting is how a fresh snapshot is asked for
            except DaemonUnreachable as exc:
                reason = exc.message
            except ApiError as exc:
                reason = f"{exc.code}: {exc.message}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped socket mid-read, a garbled frame: retry
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            delay = self.backoff.next_delay()
            self.desk.link_lost(reason, self.desk.clock() + timedelta(seconds=delay))
            await self._sleep(delay)

    async def _follow_stream(self) -> str:
        """Apply one connection's messages; returns why the stream ended."""
        poller: asyncio.Task[None] | None = None
        stream = self.calls.events()
        try:
            async for message in stream:
                if isinstance(message, s.StateMessage):
                    self.desk.apply_snapshot(message)
                    # The state just applied lives as long as the link: thousands of rows
                    # the collector would otherwise walk in every full collection, a pause
                    # of 100 ms and more in the middle of a flush at 10,000 jobs.
                    gc.freeze()
                    self.backoff.reset()
                    if self.on_attach is not None:
                        self.on_attach()
                    if poller is None:
                        poller = asyncio.create_task(self._poll_queues(), name="gextui-queues")
                elif message.type is EventType.RESYNC:
                    self.desk.note_resync(str(message.data.get("reason", "")))
                else:
                    if not self.desk.expects(message.seq):
                        raise StreamGap((self.desk.last_seq or 0) + 1, message.seq)
                    self.desk.apply_event(message)
            return "the daemon closed the event stream"
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _poll_queues(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                # A failed or timed-out poll is not a lost link (the stream decides
                # that); the "last update" age grows and the bar turns stale instead.
                self.desk.apply_queues(await self.calls.queues())
            with contextlib.suppress(Exception):  # the Nodes view: who works, who leads
                self.desk.apply_cluster(await self.calls.cluster())
            await self._sleep(self.poll_s)
