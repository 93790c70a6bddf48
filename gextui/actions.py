"""Every action a trader can take, once: its keys, its words, where it applies, whether it writes.

The key bindings of the app and the views, the `?` help screen and the command
palette are all built from `ACTIONS`, so they cannot drift apart. An action that
changes the daemon (`writes=True`) is hidden everywhere in `--read-only` mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

VIEWS: tuple[tuple[str, str, str], ...] = (
    # (id, title, keys)
    ("overview", "Overview", "1,o"),
    ("jobs", "Jobs", "2,j"),
    ("sla", "SLA", "3,s"),
    ("gex", "GEX", "4,g"),
    ("sources", "Sources", "5,x"),
    ("rules", "Rules", "6,r"),
    ("nodes", "Nodes", "7"),
)
VIEW_TITLES = {view: title for view, title, _ in VIEWS}


@dataclass(frozen=True)
class DeskAction:
    action: str  # Textual action string, e.g. "cancel_job" or "view('jobs')"
    keys: str  # comma-separated keys
    label: str  # the footer's short word
    title: str  # the palette's and help screen's sentence
    scope: str  # "app" or the id of the view it belongs to
    writes: bool = False  # changes the daemon: hidden in --read-only
    footer: bool = True
    key_display: str | None = None

    @property
    def name(self) -> str:
        return self.action.split("(", 1)[0]

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.label,
            show=self.footer,
            key_display=self.key_display,
            id=f"{self.scope}.{self.name}" + (self.action[len(self.name) :] or ""),
        )


ACTIONS: tuple[DeskAction, ...] = (
    *(
        DeskAction(
            f"view('{view}')",
            keys,
            title,
            f"Show the {title} view",
            "app",
            footer=False,
            key_display=keys.replace(",", "/"),
        )
        for view, title, keys in VIEWS
    ),
    DeskAction("submit", "n", "New request", "Submit a new ingest request", "app", writes=True),
    DeskAction("freeze", "f", "Freeze", "Freeze or resume redraws (data keeps flowing)", "app"),
    DeskAction("help", "question_mark", "Help", "Show the keys", "app", key_display="?"),
    DeskAction("dismiss_banner", "escape", "Dismiss", "Dismiss the banner", "app", footer=False),
    DeskAction("quit", "q", "Quit", "Quit gextui", "app"),
    # Jobs
    DeskAction(
        "filter",
        "slash",
        "Filter",
        "Filter jobs (text, level:, status:, sym:)",
        "jobs",
        key_display="/",
    ),
    DeskAction(
        "toggle_detail",
        "d",
        "Detail",
        "Show or hide the job detail pane",
        "jobs",
        key_display="enter/d",
    ),
    DeskAction("cancel_job", "c", "Cancel", "Cancel the selected job", "jobs", writes=True),
    DeskAction("retry_job", "t", "Retry", "Retry the selected failed job", "jobs", writes=True),
    DeskAction(
        "bump_job(-1)",
        "plus",
        "Bump",
        "Raise the selected queued job one level",
        "jobs",
        writes=True,
        key_display="+",
    ),
    DeskAction(
        "bump_job(1)",
        "minus",
        "Lower",
        "Lower the selected queued job one level",
        "jobs",
        writes=True,
        key_display="-",
    ),
    DeskAction("sort_next", "S", "Sort", "Sort the jobs by the next column", "jobs"),
    DeskAction("sort_reverse", "I", "Invert", "Invert the sort order", "jobs"),
    DeskAction(
        "next_scope",
        "h",
        "Live/Recent/History",
        "Switch between live, recent and paged history",
        "jobs",
    ),
    DeskAction(
        "next_page",
        "right_square_bracket",
        "Next page",
        "History: the next page",
        "jobs",
        key_display="]",
    ),
    DeskAction(
        "first_page",
        "left_square_bracket",
        "First page",
        "History: back to the newest page",
        "jobs",
        key_display="[",
    ),
    # SLA
    DeskAction("open_job", "enter", "Open job", "Open the selected job in the Jobs view", "sla"),
    # GEX
    DeskAction(
        "next_symbol",
        "right,right_square_bracket",
        "Next symbol",
        "Show the next symbol",
        "gex",
        key_display="→",
    ),
    DeskAction(
        "previous_symbol",
        "left,left_square_bracket",
        "Prev symbol",
        "Show the previous symbol",
        "gex",
        key_display="←",
    ),
    DeskAction("next_expiry", "e", "Expiries", "Switch the expiry filter", "gex"),
    DeskAction(
        "scroll_ladder(1)",
        "up",
        "Up",
        "Ladder: one row up (higher strikes)",
        "gex",
        footer=False,
        key_display="↑",
    ),
    DeskAction(
        "scroll_ladder(-1)",
        "down",
        "Down",
        "Ladder: one row down",
        "gex",
        footer=False,
        key_display="↓",
    ),
    DeskAction(
        "page_ladder(1)",
        "pageup",
        "Page up",
        "Ladder: a page up",
        "gex",
        footer=False,
        key_display="pgup",
    ),
    DeskAction(
        "page_ladder(-1)",
        "pagedown",
        "Page down",
        "Ladder: a page down",
        "gex",
        footer=False,
        key_display="pgdn",
    ),
    DeskAction(
        "zoom(-1)",
        "plus,equals_sign",
        "Zoom in",
        "Ladder: zoom in (fewer strikes a row)",
        "gex",
        key_display="+",
    ),
    DeskAction(
        "zoom(1)",
        "minus",
        "Zoom out",
        "Ladder: zoom out (strikes summed in bands)",
        "gex",
        key_display="-",
    ),
    DeskAction(
        "jump('.')",
        "full_stop,home",
        "Spot",
        "Ladder: back to spot (and follow it)",
        "gex",
        key_display=".",
    ),
    DeskAction("jump('z')", "z", "Zero γ", "Ladder: jump to zero gamma", "gex"),
    DeskAction("jump('c')", "c", "Call wall", "Ladder: jump to the call wall", "gex"),
    DeskAction("jump('p')", "p", "Put wall", "Ladder: jump to the put wall", "gex"),
    # Sources
    DeskAction(
        "toggle_source",
        "d",
        "Enable/disable",
        "Enable or disable the selected source",
        "sources",
        writes=True,
    ),
    # Rules
    DeskAction("add_rule", "a", "Add", "Add a priority rule", "rules", writes=True),
    DeskAction("edit_rule", "e", "Edit", "Edit the selected rule", "rules", writes=True),
    DeskAction(
        "toggle_rule",
        "d",
        "Enable/disable",
        "Enable or disable the selected rule",
        "rules",
        writes=True,
    ),
    DeskAction(
        "delete_rule",
        "delete",
        "Delete",
        "Delete the selected rule",
        "rules",
        writes=True,
        key_display="del",
    ),
    DeskAction(
        "shadow_test",
        "T",
        "Shadow test",
        "Shadow-test the selected rule (nothing is saved)",
        "rules",
    ),
)


def actions_for(scope: str) -> tuple[DeskAction, ...]:
    return tuple(a for a in ACTIONS if a.scope == scope)


BindingList = list[Binding | tuple[str, str] | tuple[str, str, str]]


def bindings_for(scope: str) -> BindingList:
    """The key bindings of a scope ("app" or a view id)."""
    return [a.binding() for a in actions_for(scope)]


WRITING_ACTIONS: frozenset[tuple[str, str]] = frozenset(
    (a.scope, a.name) for a in ACTIONS if a.writes
)
