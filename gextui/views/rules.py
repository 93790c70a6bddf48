"""The Rules view: the priority rules in force; add, edit, enable/disable, delete, shadow-test."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import on
from textual.widgets import DataTable, Static

from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.columns import Column
from gextui.desk import DeskState
from gextui.messages import Change, Confirmation, EditRule
from gextui.views.base import TableView
from gextui.widgets.livetable import LiveTable, Row

COLUMNS = (
    Column("name", "RULE", 24),
    Column("score", "SCORE", 5, right=True),
    Column("active", "STATE", 8),
    Column("version", "VER", 3, drop=2, right=True),
    Column("updated", "UPDATED", 12, drop=1),
    Column("condition", "CONDITION", 20, flex=True),
)


def rule_row(rule: s.RuleView, now: datetime) -> Row:
    active = rule.is_active
    return rule.rule_id, {
        "name": Text(rule.name, style="bold" if active else "dim strike"),
        "score": Text(f"{rule.priority_score:.2f}"),
        "active": Text("active", style=readout.GREEN)
        if active
        else Text("disabled", style=f"bold {readout.AMBER}"),
        "version": Text(str(rule.version)),
        "updated": Text(readout.ago(now, rule.updated_at), style="dim"),
        "condition": Text(rule.condition, style="" if active else "dim"),
    }


def rule_detail(rule: s.RuleView | None) -> Table | Text:
    if rule is None:
        return Text("No rule selected.", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("rule", Text(f"{rule.name}  (v{rule.version})", style="bold"))
    table.add_row("condition", Text(rule.condition))
    table.add_row("score", Text(f"{rule.priority_score:.2f} when the condition holds"))
    if rule.description:
        table.add_row("why", Text(rule.description))
    return table


class RulesView(TableView):
    VIEW_ID = "rules"
    BINDINGS = bindings_for("rules")
    COLUMNS = COLUMNS
    PANE_ID = "rule-detail"
    PANE_CLASSES = "panel"

    def _selected(self) -> s.RuleView | None:
        return self.desk.rules.get(self.query_one(LiveTable).key_at_cursor() or "")

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        table = self.query_one(LiveTable)
        revision = (desk.rev.rules, int(now.timestamp()) // 10, table.key_at_cursor())
        if revision == self._drawn:
            return
        rules = sorted(
            desk.rules.values(), key=lambda r: (not r.is_active, -r.priority_score, r.name)
        )
        table.sync([rule_row(r, now) for r in rules])
        self._drawn = (desk.rev.rules, int(now.timestamp()) // 10, table.key_at_cursor())
        active = sum(1 for r in rules if r.is_active)
        summary = Text(
            f"{len(rules)} rules, {active} active", style="bold", no_wrap=True, overflow="ellipsis"
        )
        summary.append(
            "  a request takes the score of the active rules it matches (else its data type's "
            "default), less a reliability adjustment; the score sets its level",
            style="dim",
        )
        self.query_one("#rules-summary", Static).update(summary)
        self._highlighted()

    @on(DataTable.RowHighlighted, "#rules-table")
    def _highlighted(self) -> None:
        self.query_one("#rule-detail", Static).update(rule_detail(self._selected()))

    def _rule_or_say(self) -> s.RuleView | None:
        rule = self._selected()
        if rule is None:
            self.notify("Select a rule first.", severity="warning")
        return rule

    def action_add_rule(self) -> None:
        self.post_message(EditRule(None))

    def action_edit_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is not None:
            self.post_message(EditRule(rule))

    def action_shadow_test(self) -> None:
        self.post_message(EditRule(self._selected(), test_only=True))

    def action_toggle_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is None:
            return
        rule_id, name = rule.rule_id, rule.name
        if not rule.is_active:
            self.post_message(
                Change(
                    "enable rule",
                    lambda calls: calls.update_rule(rule_id, {"is_active": True}),
                    done=f"Rule {name!r} is active: new requests are scored with it.",
                )
            )
            return
        self.post_message(
            Change(
                "disable rule",
                lambda calls: calls.update_rule(rule_id, {"is_active": False}),
                done=f"Rule {name!r} is disabled.",
                confirm=Confirmation(
                    f"Disable rule {name!r}?",
                    f"New requests stop scoring {rule.priority_score:.2f} when\n"
                    f"  {rule.condition}\nholds; queued jobs keep their level. "
                    "Shadow-test first (T) to see which requests would move.",
                    confirm="Disable",
                ),
            )
        )

    def action_delete_rule(self) -> None:
        rule = self._rule_or_say()
        if rule is None:
            return
        rule_id, name = rule.rule_id, rule.name
        self.post_message(
            Change(
                "delete rule",
                lambda calls: calls.delete_rule(rule_id),
                done=f"Rule {name!r} deleted.",
                confirm=Confirmation(
                    f"Delete rule {name!r}?",
                    f"The rule ({rule.condition} → {rule.priority_score:.2f}) is removed; its "
                    "versions stay in the rule history. Disabling (d) keeps it for later.",
                    confirm="Delete",
                ),
            )
        )
