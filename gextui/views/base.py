"""What every view shares: what it is given at birth, and how the app asks it to draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gextui.actions import WRITING_ACTIONS
from gextui.columns import Column
from gextui.desk import DeskState
from gextui.link import DaemonCalls
from gextui.widgets.livetable import LiveTable


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


class TableView(DeskView):
    """A view that is a summary line, one live table and a pane under the table.

    The widgets are `<VIEW_ID>-summary`, `<VIEW_ID>-table` and `PANE_ID` (a detail
    panel or a line of help, by `PANE_CLASSES`); `_drawn` holds the revision the view
    drew last, so `show_desk` can skip a frame in which nothing it shows changed.
    """

    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    PANE_ID: ClassVar[str] = ""
    PANE_CLASSES: ClassVar[str] = "hint"

    def __init__(self, context: DeskContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self._drawn: object = None

    def compose(self) -> ComposeResult:
        yield Static(id=f"{self.VIEW_ID}-summary")
        yield LiveTable(self.COLUMNS, id=f"{self.VIEW_ID}-table")
        yield Static(id=self.PANE_ID or f"{self.VIEW_ID}-help", classes=self.PANE_CLASSES)

    def focus_main(self) -> None:
        self.query_one(LiveTable).focus()
