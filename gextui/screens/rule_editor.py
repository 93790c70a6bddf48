"""Add or edit a priority rule, with the evaluator's error under the spot it points at, and shadow-test it.

The condition is checked as it is typed by the same compiler the daemon uses
(`gexdaemon.core.rules.compile_condition`), so a mistake is shown (a caret under
its column) before the daemon is asked; the text cursor stays where the trader
is typing. On save, the error's column is where the cursor goes, for the daemon's
refusal and for a mistake found at that moment alike. The shadow test scores recent requests with the candidate
(merged into the rules in force; nothing is saved) and lists the level changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Input, Label, Static

from gexdaemon.core.errors import Problem
from gexdaemon.core.rules import RuleConditionError, compile_condition
from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import BindingList
from gextui.desk import LEVELS
from gextui.link import DaemonCalls, ask

RULE_INDEX = re.compile(r"^rules\.\d+\.")
WHERE = re.compile(r"\((?:line (?P<line>\d+), )?column (?P<column>\d+)\)")
EXCERPT = 70


def caret_excerpt(text: str, column: int, reason: str) -> Text:
    """The condition around `column` (1-based) with a caret under it and the reason after."""
    index = max(0, min(len(text), column - 1))
    start = max(0, index - EXCERPT // 2)
    shown = text[start : start + EXCERPT]
    lead = "…" if start > 0 else ""
    out = Text()
    out.append(f"column {column}: ", style="bold #ff5f5f")
    out.append(reason + "\n", style=readout.RED)
    out.append("  " + lead + shown + ("…" if start + EXCERPT < len(text) else "") + "\n")
    out.append("  " + " " * (len(lead) + index - start) + "^", style="bold #ff5f5f")
    return out


def split_condition_problem(message: str) -> tuple[int, str] | None:
    """The column and the reason in a daemon message like "calls are not allowed (column 30): `foo(1)`"."""
    found = WHERE.search(message)
    if found is None:
        return None
    return int(found.group("column")), message[: found.start()].strip()


def shadow_report(report: s.ShadowReport, limit: int = 12) -> Table:
    """Levels before and after, the level moves, and the first changes."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    for _ in range(3):
        table.add_column(no_wrap=True, justify="right")
    table.add_row(
        Text("LEVEL", style="bold dim"),
        Text("NOW", style="bold dim"),
        Text("WITH IT", style="bold dim"),
        "",
    )
    for level in LEVELS:
        before, after = report.levels_before.get(level, 0), report.levels_after.get(level, 0)
        delta = after - before
        table.add_row(
            readout.level_text(level),
            str(before),
            str(after),
            Text(f"{delta:+d}" if delta else "", style=f"bold {readout.AMBER}" if delta else ""),
        )
    lines = Table.grid(padding=(0, 1))
    lines.add_column()
    lines.add_row(
        Text.assemble(
            ("SHADOW TEST ", "bold"),
            f"{report.requests} recent requests re-scored: ",
            (
                f"{report.changed} change level",
                f"bold {readout.AMBER}" if report.changed else "bold",
            ),
            f" ({report.promoted} up, {report.demoted} down), "
            f"{report.score_only_changes} change score only. Nothing was saved.",
        )
    )
    lines.add_row(table)
    for move in report.transitions:
        lines.add_row(
            Text.assemble(
                "  ",
                readout.level_text(move.from_level),
                " → ",
                readout.level_text(move.to_level),
                f"  {move.requests} request(s)",
            )
        )
    for change in report.changes[:limit]:
        matched = ", ".join(repr(m.name) for m in change.after.matched) or "no rule"
        lines.add_row(
            Text.assemble(
                f"  {change.market_symbol} {change.data_type.value.replace('_', '-')} "
                f"{readout.clock_time(change.requested_at)}  ",
                readout.level_text(change.before.level),
                f" {change.before.score:.3f} → ",
                readout.level_text(change.after.level),
                f" {change.after.score:.3f}  ({matched})",
            )
        )
    if len(report.changes) > limit:
        lines.add_row(Text(f"  … and {len(report.changes) - limit} more", style="dim"))
    return lines


class RuleEditor(ModalScreen[None]):
    """`rule=None` adds a rule; `test_only=True` (read-only mode, or `T`) offers the shadow test alone."""

    BINDINGS: ClassVar[BindingList] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "shadow_test", "Shadow test"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(
        self, rule: s.RuleView | None, calls: DaemonCalls, *, test_only: bool = False
    ) -> None:
        super().__init__(classes="desk-modal")
        self.rule = rule
        self.calls = calls
        self.test_only = test_only
        self._check_timer: Timer | None = None
        self.last_shadow: s.ShadowReport | None = None

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        rule = self.rule
        if self.test_only:
            title = f"Shadow-test rule {rule.name if rule else ''!r}: change it and press ctrl+t (nothing is saved)"
        else:
            title = f"Edit rule {rule.name!r} (v{rule.version})" if rule else "Add a priority rule"
        with Vertical(id="rule-box", classes="modal-box"):
            yield Static(title, classes="modal-title", markup=False)
            with VerticalScroll(id="rule-form"):
                yield Label("Name")
                yield Input(
                    rule.name if rule else "", id="rule-name", placeholder="e.g. expiry-day SPX"
                )
                yield Static(id="rule-name-error", classes="field-error")
                yield Label(
                    "Priority score (0 to 1; the levels start at CRITICAL 0.85, HIGH 0.65, MEDIUM 0.40 by default)"
                )
                yield Input(
                    f"{rule.priority_score:g}" if rule else "", id="rule-score", placeholder="0.9"
                )
                yield Static(id="rule-score-error", classes="field-error")
                yield Label("Condition (the rule language: docs/rules.md)")
                yield Input(
                    rule.condition if rule else "",
                    id="rule-condition",
                    placeholder="data_type == 'real_time' and market_symbol in ['SPX', 'NDX']",
                )
                yield Static(id="rule-condition-error", classes="field-error")
                yield Label("Description")
                yield Input(rule.description if rule else "", id="rule-description")
                yield Checkbox("Active", value=rule.is_active if rule else True, id="rule-active")
                yield Static(id="rule-error", classes="field-error")
                yield Static(id="rule-shadow")
            with Horizontal(classes="modal-buttons"):
                if not self.test_only:
                    yield Button("Save (ctrl+s)", id="rule-save", variant="primary")
                yield Button("Shadow test (ctrl+t)", id="rule-test")
                yield Button("Close (esc)", id="rule-close")

    def on_mount(self) -> None:
        self.query_one("#rule-name" if not self.rule else "#rule-condition", Input).focus()
        if self.rule:
            self._check_condition()

    # -- the condition, checked as it is typed ---------------------------------------------

    @on(Input.Changed, "#rule-condition")
    def _condition_changed(self) -> None:
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(0.25, self._check_condition)

    def _check_condition(self, *, move_cursor: bool = False) -> bool:
        """Show whether the evaluator accepts the condition; the caret marks an error's column.

        The text cursor goes to that column only when asked (on save): moved while
        the trader types, it would send the next keystroke somewhere else.
        """
        text = self.query_one("#rule-condition", Input).value
        error = self.query_one("#rule-condition-error", Static)
        if not text.strip():
            error.update(Text("a condition is required", style=readout.RED))
            return False
        try:
            compile_condition(text)
        except RuleConditionError as exc:
            self._show_condition_error(text, exc.column, exc.reason, move_cursor=move_cursor)
            return False
        error.update(Text("✓ the evaluator accepts it", style="#5fff87"))
        return True

    def _show_condition_error(
        self, text: str, column: int, reason: str, *, move_cursor: bool
    ) -> None:
        self.query_one("#rule-condition-error", Static).update(caret_excerpt(text, column, reason))
        if move_cursor:
            box = self.query_one("#rule-condition", Input)
            box.cursor_position = max(0, min(len(text), column - 1))

    # -- the candidate -----------------------------------------------------------------

    def _candidate(self, *, move_cursor: bool = True) -> dict[str, Any] | None:
        """The rule as typed, or None after showing what is wrong with it."""
        name = self.query_one("#rule-name", Input).value.strip()
        raw_score = self.query_one("#rule-score", Input).value.strip()
        ok = True
        name_error = self.query_one("#rule-name-error", Static)
        score_error = self.query_one("#rule-score-error", Static)
        name_error.update("")
        score_error.update("")
        self.query_one("#rule-error", Static).update("")
        if not name:
            name_error.update(Text("a name is required", style=readout.RED))
            ok = False
        try:
            score = float(raw_score)
            if not 0.0 <= score <= 1.0:
                raise ValueError
        except ValueError:
            score_error.update(
                Text(f"must be a number from 0 to 1 (got {raw_score!r})", style=readout.RED)
            )
            ok = False
            score = 0.0
        ok = self._check_condition(move_cursor=move_cursor) and ok
        if not ok:
            return None
        return {
            "name": name,
            "priority_score": score,
            "condition": self.query_one("#rule-condition", Input).value,
            "description": self.query_one("#rule-description", Input).value,
            "is_active": self.query_one("#rule-active", Checkbox).value,
        }

    def show_problems(self, message: str, problems: Sequence[Problem]) -> None:
        """The daemon's refusal: each problem under its field, the condition's at its column."""
        general: list[str] = []
        for problem in problems:
            field = problem.path.split(".")[0]
            if field == "condition":
                where = split_condition_problem(problem.message)
                if where is not None:
                    self._show_condition_error(
                        self.query_one("#rule-condition", Input).value, *where, move_cursor=True
                    )
                else:
                    self.query_one("#rule-condition-error", Static).update(
                        Text(problem.message, style=readout.RED)
                    )
            elif field == "name":
                self.query_one("#rule-name-error", Static).update(
                    Text(problem.message, style=readout.RED)
                )
            elif field == "priority_score":
                self.query_one("#rule-score-error", Static).update(
                    Text(problem.message, style=readout.RED)
                )
            else:
                general.append(str(problem))
        if general or not problems:
            self.query_one("#rule-error", Static).update(
                Text("; ".join(general) or message, style=readout.RED)
            )

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "save" and self.test_only)

    @on(Button.Pressed, "#rule-save")
    def action_save(self) -> None:
        candidate = self._candidate()
        if candidate is None or self.test_only:
            return
        self.run_worker(
            self._save(candidate), exclusive=True, group="rule-save", exit_on_error=False
        )

    async def _save(self, candidate: dict[str, Any]) -> None:
        if self.rule is None:
            answer = await ask(self.calls.create_rule(candidate))
        else:
            changes = {k: v for k, v in candidate.items() if getattr(self.rule, k) != v}
            if not changes:
                self.dismiss(None)
                return
            answer = await ask(self.calls.update_rule(self.rule.rule_id, changes))
        if answer.value is not None:
            self.notify(f"Rule {answer.value.name!r} saved (v{answer.value.version}).")
            self.dismiss(None)
        else:
            self.show_problems(answer.error or "the daemon refused the rule", answer.problems)

    @on(Button.Pressed, "#rule-test")
    def action_shadow_test(self) -> None:
        candidate = self._candidate()
        if candidate is None:
            return
        rules = [candidate]
        old = self.rule
        if old is not None and old.name != candidate["name"]:
            # Renamed: the old rule must leave the merged set, or both would count.
            rules.insert(
                0,
                {
                    "name": old.name,
                    "condition": old.condition,
                    "priority_score": old.priority_score,
                    "is_active": False,
                },
            )
        self.query_one("#rule-shadow", Static).update(
            Text("Scoring recent requests with the candidate…", style="dim")
        )
        self.run_worker(
            self._shadow(rules), exclusive=True, group="rule-shadow", exit_on_error=False
        )

    async def _shadow(self, rules: list[dict[str, Any]]) -> None:
        answer = await ask(self.calls.test_rules(rules, mode="merge", limit=500))
        if answer.value is not None:
            self.last_shadow = answer.value
            self.query_one("#rule-shadow", Static).update(shadow_report(answer.value))
        else:
            self.query_one("#rule-shadow", Static).update(
                Text(f"shadow test refused: {answer.error}", style=readout.RED)
            )
            candidate_problems = [
                Problem(RULE_INDEX.sub("", p.path), p.message, p.rule) for p in answer.problems
            ]
            self.show_problems(answer.error or "", candidate_problems)

    @on(Button.Pressed, "#rule-close")
    def action_close(self) -> None:
        self.dismiss(None)
