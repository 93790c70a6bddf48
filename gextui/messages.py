"""The messages the views and dialogs post to the App: the API between the dashboard's parts.

A view never imports or calls the App. It reads the desk it was given, asks the
daemon for what it shows through the calls it was given, and says what it
wants done by posting one of these; the App (`gextui.app`) owns the screens,
the confirmations and the flush loop, and handles them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from gexdaemon.protocol import shapes as s
from gextui.link import DaemonCalls


@dataclass(frozen=True)
class Confirmation:
    """The question a destructive change asks first (`y` does it, `n` or Escape does not)."""

    title: str
    body: str
    confirm: str = "Yes"


class Redraw(Message):
    """The view's own state changed (a sort, a filter, an answer arrived): draw it now."""


class OpenJob(Message):
    """Show this job in the Jobs view, its detail open (from the SLA view)."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id


class Change(Message):
    """Change something in the daemon: ask first if `confirm` is set, then say `done` or why not.

    `call` is given the daemon's calls by the App, so a view needs no handle on the
    App to make a change, and read-only mode is enforced where the calls are.
    """

    def __init__(
        self,
        what: str,
        call: Callable[[DaemonCalls], Awaitable[Any]],
        *,
        done: str,
        confirm: Confirmation | None = None,
    ) -> None:
        super().__init__()
        self.what = what
        self.call = call
        self.done = done
        self.confirm = confirm


class EditRule(Message):
    """Open the rule editor: `rule=None` adds one; `test_only` offers the shadow test alone."""

    def __init__(self, rule: s.RuleView | None, *, test_only: bool = False) -> None:
        super().__init__()
        self.rule = rule
        self.test_only = test_only
