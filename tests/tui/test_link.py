"""The link: reconnects with capped jittered back-off, repairs gaps and resyncs, never raises."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gexdaemon.client import DaemonUnreachable
from gexdaemon.protocol import shapes as s
from gextui.desk import DeskState, LinkPhase
from gextui.link import Backoff, DaemonLink
from tests.tui import recording
from tests.tui.recording import DESK_NOW


class ScriptedDaemon:
    """One scripted event stream per connection; an exception in a script is raised at its turn."""

    socket_path = "scripted"

    def __init__(self, *connections: list[Any]) -> None:
        self.connections = list(connections)
        self.connects = 0

    async def events(self) -> AsyncIterator[s.StateMessage | s.EventMessage]:
        self.connects += 1
        if not self.connections:
            raise DaemonUnreachable("no daemon answers on scripted")
        for item in self.connections.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield recording.wire(item)

    async def queues(self) -> s.Queues:
        return recording.state().state.queues


class Stop(Exception):
    pass


def run_link(daemon: ScriptedDaemon, *, sleeps_allowed: int) -> tuple[DeskState, list[float]]:
    """Run the link until it has waited `sleeps_allowed` times (or ran out of script)."""
    desk = DeskState(lambda: DESK_NOW)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds == 3600.0:  # the queue poller's wait: park it
            await asyncio.Event().wait()
        delays.append(seconds)
        if len(delays) > sleeps_allowed:
            raise Stop
        await asyncio.sleep(0)

    link = DaemonLink(
        daemon, desk, backoff=Backoff(0.25, 5.0, random.Random(7)), poll_s=3600.0, sleep=sleep
    )  # type: ignore[arg-type]

    async def main() -> None:
        with pytest.raises(Stop):
            await asyncio.wait_for(link.run(), timeout=20)

    asyncio.run(main())
    return desk, delays


def event(seq: int, kind: str = "rule.updated") -> dict[str, Any]:
    return {"seq": seq, "type": kind, "at": DESK_NOW.isoformat(), "data": recording.rules()[0]}


def test_a_gap_reconnects_at_once_for_a_fresh_snapshot() -> None:
    first = [recording.state_snapshot(seq=10), event(11), event(13)]
    second = [recording.state_snapshot(seq=20), event(21)]
    daemon = ScriptedDaemon(first, second)
    desk, delays = run_link(daemon, sleeps_allowed=0)
    assert daemon.connects == 2  # the gap, then at once the fresh snapshot
    assert desk.link.gaps == 1
    assert desk.last_seq == 21
    assert len(delays) == 1  # no wait before the gap's reconnect; one after the stream ended
    assert any("missed events 12..12" in a.text for a in desk.activity)


def test_unreachable_daemon_backs_off_capped_then_attaches() -> None:
    daemon = ScriptedDaemon()
    desk, delays = run_link(daemon, sleeps_allowed=8)
    assert desk.link.phase is LinkPhase.RECONNECTING
    assert "no daemon answers" in desk.link.reason
    ceilings = [min(5.0, 0.25 * 2**n) for n in range(len(delays))]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 5.0 and delays[-1] >= 2.5  # reached the cap

    later = ScriptedDaemon([recording.state_snapshot(seq=5), event(6)])
    later.connections.insert(0, [DaemonUnreachable("no daemon answers on scripted")])
    desk, delays = run_link(later, sleeps_allowed=1)
    assert desk.link.connects == 1 and desk.last_seq == 6
    # After the successful attach the back-off started again from the first step.
    assert delays[-1] <= 0.25


def test_errors_mid_stream_and_resyncs_never_escape() -> None:
    broken = [recording.state_snapshot(seq=10), event(11), RuntimeError("frame garbled")]
    resync = [
        recording.state_snapshot(seq=30),
        {
            "type": "resync",
            "seq": 40,
            "at": DESK_NOW.isoformat(),
            "data": {"reason": "consumer fell behind"},
        },
        recording.state_snapshot(seq=45),
        event(46),
    ]
    daemon = ScriptedDaemon(broken, resync)
    desk, _ = run_link(daemon, sleeps_allowed=1)
    assert desk.link.resyncs == 1
    assert desk.last_seq == 46
    assert desk.link.connects == 3  # first attach, after the error, after the resync
    assert "RuntimeError: frame garbled" in "\n".join(a.text for a in desk.activity)


def test_a_stopping_daemon_shows_a_banner_and_the_reason() -> None:
    notice = {"instance": "desk-7:4242:6b1e0a", "version": "0.1.0"}
    stopping = [recording.state_snapshot(seq=10), event(11, "daemon.stopping") | {"data": notice}]
    daemon = ScriptedDaemon(stopping)
    desk, _ = run_link(daemon, sleeps_allowed=0)
    assert desk.link.phase is LinkPhase.RECONNECTING
    assert desk.banner is not None
    assert "Lost the daemon" in desk.banner.text
    assert any("daemon stopping" in a.text for a in desk.activity)
