"""What every view shares: its place in the action registry and how the app asks it to draw."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Vertical

from gextui.actions import WRITING_ACTIONS
from gextui.desk import DeskState

if TYPE_CHECKING:
    from gextui.app import GexTui


class DeskView(Vertical):
    """A top-level view. The app calls `show_desk` only while the view is visible."""

    VIEW_ID: ClassVar[str] = ""

    @property
    def host(self) -> GexTui:
        return cast("GexTui", self.app)

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        """Copy what changed in `desk` to the widgets (inside the app's batch update)."""
        raise NotImplementedError(f"{type(self).__name__} must draw itself")

    def focus_main(self) -> None:
        """Give the keyboard to the view's main widget so its keys work."""
        self.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.host.read_only and (self.VIEW_ID, action) in WRITING_ACTIONS)
