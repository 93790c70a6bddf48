"""Fixtures for the dashboard's tests: apps on a recorded desk, waiting on conditions, screen text."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from gextui.app import GexTui
from tests.tui.recording import DESK_NOW, replay_daemon

# For the subprocesses (tmux); apps built here also get animation_level = "none".
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

SIZE = (150, 45)


def still(app: GexTui) -> GexTui:
    """No animations: a screenshot must not depend on when it was taken."""
    app.animation_level = "none"
    return app


def recorded_app(*, read_only: bool = False, **snapshot_options: Any) -> GexTui:
    """The app on the recorded desk, clock pinned, one queue poll (so the sparklines are stable)."""
    return still(
        GexTui(
            replay_daemon(**snapshot_options),
            read_only=read_only,
            clock=lambda: DESK_NOW,
            poll_s=3600.0,
        )
    )


def stop_blinking(app: GexTui) -> None:
    for widget in app.screen.query(Input):
        widget.cursor_blink = False
    for area in app.screen.query(TextArea):
        area.cursor_blink = False


async def until(
    pilot: Pilot[Any],
    condition: Callable[[], Any],
    *,
    within_s: float = 20.0,
    what: str = "condition",
) -> Any:
    """Let the app run until `condition()` is truthy; fail naming `what` after `timeout`."""
    give_up = time.monotonic() + within_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def screen_text(app: GexTui) -> str:
    """What the terminal shows, as plain text (the compositor's current lines)."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


async def settled(pilot: Pilot[Any]) -> None:
    """Attached, flushed and idle: the state a screenshot should show."""
    app = pilot.app
    assert isinstance(app, GexTui)
    await until(
        pilot, lambda: app.desk.link.connects and app.desk.events_seen >= 4, what="the replay"
    )
    await until(pilot, lambda: app.desk.polls >= 1, what="the queue poll")
    await pilot.pause()
    app.flush()
    await pilot.pause()
    stop_blinking(app)
