"""The `?` screen: every key, per view, from the same registry as the bindings and the palette."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gextui.actions import ACTIONS, VIEW_TITLES, BindingList

SCOPE_TITLES = {"app": "Everywhere"} | {
    view: f"{title} view" for view, title in VIEW_TITLES.items()
}
EXTRA_KEYS = (
    ("app", "ctrl+p", "Command palette: every action by name"),
    ("jobs", "↑ ↓ pgup pgdn", "Move through the jobs (the detail pane follows)"),
    ("jobs", "click a header", "Sort by that column (again: invert)"),
    ("sla", "↑ ↓", "Move through the jobs; the WHY line under the tables follows"),
)
NOTES = (
    "Filter syntax (/ in Jobs): level:critical status:queued sym:SPX type:real_time source:cboe,"
    " or bare words (a level or status name, or text in the symbol, URL, origin, phase or id).",
    "Status marks: ⚠ at risk of missing the deadline, ✗ deadline breached.",
    "The bar at the top: CONNECTED / RECONNECTING / STALE and how long since the daemon last spoke.",
)


def keys_table(read_only: bool) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=False, expand=True)
    table.add_column(style="bold #5fd7ff", no_wrap=True, width=16)
    table.add_column()
    for scope, title in SCOPE_TITLES.items():
        rows = [
            (a.key_display or a.keys.replace(",", " / "), a.title)
            for a in ACTIONS
            if a.scope == scope and not (read_only and a.writes)
        ]
        rows += [(keys, words) for s, keys, words in EXTRA_KEYS if s == scope]
        if not rows:
            continue
        table.add_row(Text(title, style="bold underline"), "")
        for keys, words in rows:
            table.add_row(keys, words)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[BindingList] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, *, read_only: bool) -> None:
        super().__init__(classes="desk-modal")
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            title = "gextui keys" + (
                " (read-only: actions that change the daemon are hidden)" if self.read_only else ""
            )
            yield Static(title, classes="modal-title", markup=False)
            with VerticalScroll(id="help-keys"):
                yield Static(keys_table(self.read_only))
                yield Static(Text("\n".join(NOTES), style="dim"))
            yield Static(Text("↑ ↓ pgup pgdn scroll · esc, ? or q closes", style="dim"))

    def on_mount(self) -> None:
        # The list is longer than a small terminal: the keys must scroll it at once.
        self.query_one("#help-keys", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
