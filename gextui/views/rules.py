"""The Rules view: the priority rules in force; add, edit, enable/disable, delete, shadow-test."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from gextui import readout
from gextui.actions import bindings_for
from gextui.desk import DeskState
from gextui.screens.confirm import ConfirmScreen
from gextui.screens.rule_editor import RuleEditor
from gextui.views.base import DeskView
from gextui.views.table import LiveTable

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("name", "RULE", 28),
    ("score", "SCORE", 5),
    ("active", "STATE", 8),
    ("version", "VER", 3),
    ("updated", "UPDATED", 12),
    ("condition", "CONDITION", None),
)


def rule_row(rule: Mapping[str, Any], now: datetime) -> tuple[str, list[Text]]:
    active = bool(rule.get("is_active"))
    score = float(rule.get("priority_score") or 0.0)
    return str(rule.get("rule_id")), [
        Text(str(rule.get("name")), style="bold" if active else "dim strike"),
        Text(f"{score:.2f}"),
        Text("active", style="#5fff87") if active else Text("disabled", style="bold #ffaf00"),
        Text(str(rule.get("version") or 1)),
        Text(readout.ago(now, rule.get("updated_at")), style="dim"),
        Text(str(rule.get("condition") or ""), style="" if active else "dim"),
    ]


def rule_detail(rule: Mapping[str, Any] | None) -> Table | Text:
    if rule is None:
        return Text("No rule selected.", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row(
        "rule",
        Text(
            f"{rule.get('name')}  (v{rule.get('version')}, id {rule.get('rule_id')})", style="bold"
        ),
    )
    table.add_row("condition", Text(str(rule.get("condition") or "")))
    table.add_row(
        "score", Text(f"{float(rule.get('priority_score') or 0):.2f} when the condition holds")
    )
    if rule.get("description"):
        table.add_row("why", Text(str(rule.get("description"))))
    return table


class RulesView(DeskView):
    VIEW_ID = "rules"
    BINDINGS = bindings_for("rules")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple[int, int, str | None] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="rules-summary")
        yield LiveTable(COLUMNS, id="rules-table")
        yield Static(id="rule-detail", classes="panel")

    def focus_main(self) -> None:
        self.query_one(LiveTable).focus()

    def _selected(self) -> dict[str, Any] | None:
        key = self.query_one(LiveTable).key_at_cursor()
        return self.host.desk.rules.get(key or "")

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        table = self.query_one(LiveTable)
        revision = (desk.rev.rules, int(now.timestamp()) // 10, table.key_at_cursor())
        if revision == self._drawn:
            return
        rules = sorted(
            desk.rules.values(),
            key=lambda r: (
                not r.get("is_active"),
                -float(r.get("priority_score") or 0),
                str(r.get("name")),
            ),
        )
        table.sync([rule_row(r, now) for r in rules])
        self._drawn = (desk.rev.rules, int(now.timestamp()) // 10, table.key_at_cursor())
        active = sum(1 for r in rules if r.get("is_active"))
        summary = Text(f"{len(rules)} rules, {active} active", style="bold")
        summary.append(
            "   a request is scored by the active rules it matches (else its data type's "
            "default), less a reliability adjustment; the score sets its level",
            style="dim",
        )
        self.query_one("#rules-summary", Static).update(summary)
        self.query_one("#rule-detail", Static).update(rule_detail(self._selected()))

    @on(DataTable.RowHighlighted, "#rules-table")
    def _highlighted(self) -> None:
        self.query_one("#rule-detail", Static).update(rule_detail(self._selected()))

    def _rule_or_say(self) -> dict[str, Any] | None:
        rule = self._selected()
        if rule is None:
            self.host.notify("Select a rule first.", severity="warning")
        return rule

    def action_add_rule(self) -> None:
        self.host.push_screen(RuleEditor(None))

    def action_edit_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is not None:
            self.host.push_screen(RuleEditor(rule))

    def action_shadow_test(self) -> None:
        rule = self._selected()
        self.host.push_screen(RuleEditor(rule, test_only=True))

    def action_toggle_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is None:
            return
        rule_id, name = str(rule["rule_id"]), str(rule.get("name"))
        if not rule.get("is_active"):
            self.host.perform(
                "enable rule",
                self.host.calls.update_rule(rule_id, {"is_active": True}),
                done=f"Rule {name!r} is active: new requests are scored with it.",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.host.perform(
                    "disable rule",
                    self.host.calls.update_rule(rule_id, {"is_active": False}),
                    done=f"Rule {name!r} is disabled.",
                )

        self.host.push_screen(
            ConfirmScreen(
                f"Disable rule {name!r}?",
                f"New requests stop scoring {float(rule.get('priority_score') or 0):.2f} when\n"
                f"  {rule.get('condition')}\nholds; queued jobs keep their level. "
                "Shadow-test first (T) to see which requests would move.",
                confirm="Disable",
            ),
            answered,
        )

    def action_delete_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is None:
            return
        rule_id, name = str(rule["rule_id"]), str(rule.get("name"))

        def answered(yes: bool | None) -> None:
            if yes:
                self.host.perform(
                    "delete rule",
                    self.host.calls.delete_rule(rule_id),
                    done=f"Rule {name!r} deleted.",
                )

        self.host.push_screen(
            ConfirmScreen(
                f"Delete rule {name!r}?",
                f"The rule ({rule.get('condition')} → {float(rule.get('priority_score') or 0):.2f}) "
                "is removed; its versions stay in the rule history. Disabling (d) keeps it for later.",
                confirm="Delete",
            ),
            answered,
        )
