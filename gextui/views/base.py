"""What every view shares: what it is given at birth, and how the app asks it to draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from textual.containers import Vertical

from gextui.actions import WRITING_ACTIONS
from gextui.desk import DeskState
from gextui.link import DaemonCalls


@dataclass(frozen=True)
class DeskContext:
    """The desk a view draws, the daemon it asks, the clock it reads, and whether it may write.

    Given to each view by the App when it builds them, so no view needs (or
    imports) the App: what it wants done it posts as a `gextui.messages` message.
    """

    desk: DeskState
    calls: DaemonCalls
    clock: Callable[[], datetime]
    read_only: bool = False


class DeskView(Vertical):
    """A top-level view. The app calls `show_desk` only while the view is visible."""

    VIEW_ID: ClassVar[str] = ""

    def __init__(self, context: DeskContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    @property
    def desk(self) -> DeskState:
        return self.context.desk

    def now(self) -> datetime:
        return self.context.clock()

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        """Copy what changed in `desk` to the widgets (inside the app's batch update)."""
        raise NotImplementedError(f"{type(self).__name__} must draw itself")

    def focus_main(self) -> None:
        """Give the keyboard to the view's main widget so its keys work."""
        self.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.context.read_only and (self.VIEW_ID, action) in WRITING_ACTIONS)
