"""The top bar (connected / reconnecting / stale, and how long since the daemon last spoke) and the banner."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from gextui import readout
from gextui.desk import DeskState, LinkPhase

STALE_AFTER_S = 5.0  # the queue poll runs every second: five silent seconds mean trouble
BANNER_FOR_S = 120.0


def link_state(desk: DeskState) -> str:
    """connecting | connected | stale | reconnecting."""
    phase = desk.link.phase
    if phase is LinkPhase.CONNECTED:
        since = desk.seconds_since_update()
        return "stale" if since is not None and since > STALE_AFTER_S else "connected"
    return phase.value


def link_text(
    desk: DeskState,
    now: datetime,
    *,
    socket: str,
    frozen_events: int | None,
    read_only: bool,
) -> Text:
    """The bar's line, what a trader must not miss first: the state, the data's age, a freeze.

    The daemon's version, instance and socket come last: on a narrow terminal
    they are what the edge cuts.
    """
    state = link_state(desk)
    marks = {"connected": "●", "stale": "◐", "reconnecting": "○", "connecting": "○"}
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {marks[state]} {state.upper()} ", style="bold reverse")
    since = desk.seconds_since_update()
    text.append("  last update ")
    text.append(
        "never" if since is None else f"{since:.0f} s ago",
        style=f"bold {readout.RED}" if state == "stale" else "bold",
    )
    text.append(f" · {desk.events_seen:,} events")
    if frozen_events is not None:
        text.append("  ❄ FROZEN", style="bold #5fd7ff")
        text.append(f" ({frozen_events:,} events since, f resumes)", style="#5fd7ff")
    if read_only:
        text.append("  READ-ONLY", style=f"bold {readout.AMBER}")
    health = desk.health
    if state == "reconnecting":
        left = (
            max(0.0, (desk.link.retry_at - now).total_seconds())
            if desk.link.retry_at is not None
            else 0.0
        )
        text.append(f"  attempt {desk.link.attempt}, next in {left:.1f}s: ", style="bold")
        text.append(desk.link.reason)
    elif state == "connecting":
        text.append(f"  attaching to {socket}…")
    elif health is not None:
        text.append(f"  gexdaemon {health.version}", style="bold")
        text.append(f" · {health.instance}", style="dim")
        if desk.link.attached_at is not None:
            attached = readout.span((now - desk.link.attached_at).total_seconds())
            text.append(f" · attached {attached}", style="dim")
        text.append(f" · {socket}", style="dim")
    return text


class LinkBar(Static):
    """One line: the link's state (also as a CSS class: -connected, -stale, ...)."""

    STATES = ("connected", "stale", "reconnecting", "connecting")

    def show(
        self,
        desk: DeskState,
        now: datetime,
        *,
        socket: str,
        frozen_events: int | None,
        read_only: bool,
    ) -> str:
        state = link_state(desk)
        for name in self.STATES:
            self.set_class(name == state, f"-{name}")
        self.update(
            link_text(desk, now, socket=socket, frozen_events=frozen_events, read_only=read_only)
        )
        return state


class Banner(Static):
    """The daemon restarted, stopped or went away: said across the screen until it is old news."""

    def show(self, desk: DeskState, now: datetime) -> None:
        banner = desk.banner
        if banner is not None and (now - banner.at).total_seconds() > BANNER_FOR_S:
            banner = None
        self.display = banner is not None
        if banner is None:
            return
        for severity in ("info", "warning", "error"):
            self.set_class(severity == banner.severity, f"-{severity}")
        self.update(Text.assemble((f" {banner.text} ", "bold"), ("  (esc dismisses)", "dim")))
