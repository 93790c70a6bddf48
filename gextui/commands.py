"""The command palette (ctrl+p): every action that applies here, by name, from the action registry."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from gextui.actions import ACTIONS, DeskAction


class ActionHost(Protocol):
    """What the palette needs of the app it serves (the App has these; nothing imports it)."""

    def action_available(self, action: DeskAction) -> bool: ...
    async def run_desk_action(self, action: DeskAction) -> None: ...


class DeskCommands(Provider):
    """App-wide actions, plus those of the view on screen; hidden ones (read-only) are left out."""

    def _commands(self) -> list[tuple[DeskAction, Callable[[], object]]]:
        app = cast("ActionHost", self.app)
        found: list[tuple[DeskAction, Callable[[], object]]] = []
        for action in ACTIONS:
            if app.action_available(action):
                found.append((action, partial(app.run_desk_action, action)))
        return found

    async def discover(self) -> Hits:
        for action, run in self._commands():
            yield DiscoveryHit(action.title, run, help=_keys(action))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, run in self._commands():
            score = matcher.match(action.title)
            if score > 0:
                yield Hit(score, matcher.highlight(action.title), run, help=_keys(action))


def _keys(action: DeskAction) -> str:
    return f"key: {action.key_display or action.keys.replace(',', ' / ')}"
