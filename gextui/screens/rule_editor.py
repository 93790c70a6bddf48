"""Add or edit a priority rule, with the evaluator's error under the spot it points at, and shadow-test it.

The condition is checked as it is typed by the same compiler the daemon uses
(`gexdaemon.core.rules.compile_condition`), so a mistake is shown before the
daemon is asked; the daemon's answer on save is shown the same way (its message
carries the column). The shadow test scores recent requests with the candidate
(merged into the rules in force; nothing is saved) and lists the level changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

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
from gextui import readout
from gextui.actions import BindingList
from gextui.desk import LEVELS

if TYPE_CHECKING:
    from gextui.app import GexTui

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
    out.append(reason + "\n", style="#ff5f5f")
    out.append("  " + lead + shown + ("…" if start + EXCERPT < len(text) else "") + "\n")
    out.append("  " + " " * (len(lead) + index - start) + "^", style="bold #ff5f5f")
    return out


def split_condition_problem(message: str) -> tuple[int, str] | None:
    """The column and the reason in a daemon message like "calls are not allowed (column 30): `foo(1)`"."""
    found = WHERE.search(message)
    if found is None:
        return None
    return int(found.group("column")), message[: found.start()].strip()


def shadow_report(report: Mapping[str, Any], limit: int = 12) -> Table:
    """Levels before and after, the level moves, and the first changes."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, justify="right")
    table.add_row(
        Text("LEVEL", style="bold dim"),
        Text("NOW", style="bold dim"),
        Text("WITH IT", style="bold dim"),
        "",
    )
    before = report.get("levels_before") or {}
    after = report.get("levels_after") or {}
    for level in LEVELS:
        delta = int(after.get(level, 0)) - int(before.get(level, 0))
        table.add_row(
            readout.level_text(level),
            str(before.get(level, 0)),
            str(after.get(level, 0)),
            Text(f"{delta:+d}" if delta else "", style="bold #ffaf00" if delta else ""),
        )
    lines = Table.grid(padding=(0, 1))
    lines.add_column()
    lines.add_row(
        Text.assemble(
            ("SHADOW TEST ", "bold"),
            f"{report.get('requests', 0)} recent requests re-scored: ",
            (
                f"{report.get('changed', 0)} change level",
                "bold #ffaf00" if report.get("changed") else "bold",
            ),
            f" ({report.get('promoted', 0)} up, {report.get('demoted', 0)} down), "
            f"{report.get('score_only_changes', 0)} change score only. Nothing was saved.",
        )
    )
    lines.add_row(table)
    for move in report.get("transitions") or ():
        lines.add_row(
            Text.assemble(
                "  ",
                readout.level_text(move.get("from")),
                " → ",
                readout.level_text(move.get("to")),
                f"  {move.get('requests')} request(s)",
            )
        )
    changes: Sequence[Mapping[str, Any]] = report.get("changes") or ()
    for change in changes[:limit]:
        before_side, after_side = change.get("before") or {}, change.get("after") or {}
        matched = (
            ", ".join(repr(m.get("name")) for m in after_side.get("matched") or ()) or "no rule"
        )
        lines.add_row(
            Text.assemble(
                f"  {change.get('market_symbol')} {str(change.get('data_type', '')).replace('_', '-')} "
                f"{readout.clock_time(change.get('requested_at'))}  ",
                readout.level_text(before_side.get("level")),
                f" {float(before_side.get('score') or 0):.3f} → ",
                readout.level_text(after_side.get("level")),
                f" {float(after_side.get('score') or 0):.3f}  ({matched})",
            )
        )
    if len(changes) > limit:
        lines.add_row(Text(f"  … and {len(changes) - limit} more", style="dim"))
    return lines


class RuleEditor(ModalScreen[None]):
    """`rule=None` adds a rule; `test_only=True` (read-only mode, or `T`) offers the shadow test alone."""

    BINDINGS: ClassVar[BindingList] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "shadow_test", "Shadow test"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, rule: Mapping[str, Any] | None, *, test_only: bool = False) -> None:
        super().__init__(classes="desk-modal")
        self.rule = dict(rule) if rule else None
        self.test_only = test_only
        self._check_timer: Timer | None = None
        self.last_shadow: dict[str, Any] | None = None

    @property
    def host(self) -> GexTui:
        return cast("GexTui", self.app)

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        rule = self.rule or {}
        if self.test_only:
            title = f"Shadow-test rule {rule.get('name', '')!r}: change it and press ctrl+t (nothing is saved)"
        else:
            title = (
                f"Edit rule {rule.get('name')!r} (v{rule.get('version')})"
                if self.rule
                else "Add a priority rule"
            )
        with Vertical(id="rule-box", classes="modal-box"):
            yield Static(title, classes="modal-title", markup=False)
            with VerticalScroll(id="rule-form"):
                yield Label("Name")
                yield Input(
                    str(rule.get("name", "")), id="rule-name", placeholder="e.g. expiry-day SPX"
                )
                yield Static(id="rule-name-error", classes="field-error")
                yield Label(
                    "Priority score (0 to 1; the levels start at CRITICAL 0.85, HIGH 0.65, MEDIUM 0.40 by default)"
                )
                score = rule.get("priority_score")
                yield Input(
                    "" if score is None else f"{float(score):g}", id="rule-score", placeholder="0.9"
                )
                yield Static(id="rule-score-error", classes="field-error")
                yield Label("Condition (the rule language: docs/rules.md)")
                yield Input(
                    str(rule.get("condition", "")),
                    id="rule-condition",
                    placeholder="data_type == 'real_time' and market_symbol in ['SPX', 'NDX']",
                )
                yield Static(id="rule-condition-error", classes="field-error")
                yield Label("Description")
                yield Input(str(rule.get("description", "")), id="rule-description")
                yield Checkbox("Active", value=bool(rule.get("is_active", True)), id="rule-active")
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

    def _check_condition(self) -> bool:
        text = self.query_one("#rule-condition", Input).value
        error = self.query_one("#rule-condition-error", Static)
        if not text.strip():
            error.update(Text("a condition is required", style="#ff5f5f"))
            return False
        try:
            compile_condition(text)
        except RuleConditionError as exc:
            self._show_condition_error(text, exc.column, exc.reason)
            return False
        error.update(Text("✓ the evaluator accepts it", style="#5fff87"))
        return True

    def _show_condition_error(self, text: str, column: int, reason: str) -> None:
        self.query_one("#rule-condition-error", Static).update(caret_excerpt(text, column, reason))
        box = self.query_one("#rule-condition", Input)
        box.cursor_position = max(0, min(len(text), column - 1))

    # -- the candidate -----------------------------------------------------------------

    def _candidate(self) -> dict[str, Any] | None:
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
            name_error.update(Text("a name is required", style="#ff5f5f"))
            ok = False
        try:
            score = float(raw_score)
            if not 0.0 <= score <= 1.0:
                raise ValueError
        except ValueError:
            score_error.update(
                Text(f"must be a number from 0 to 1 (got {raw_score!r})", style="#ff5f5f")
            )
            ok = False
            score = 0.0
        ok = self._check_condition() and ok
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
                        self.query_one("#rule-condition", Input).value, *where
                    )
                else:
                    self.query_one("#rule-condition-error", Static).update(
                        Text(problem.message, style="#ff5f5f")
                    )
            elif field == "name":
                self.query_one("#rule-name-error", Static).update(
                    Text(problem.message, style="#ff5f5f")
                )
            elif field == "priority_score":
                self.query_one("#rule-score-error", Static).update(
                    Text(problem.message, style="#ff5f5f")
                )
            else:
                general.append(str(problem))
        if general or not problems:
            self.query_one("#rule-error", Static).update(
                Text("; ".join(general) or message, style="#ff5f5f")
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
        host = self.host
        if self.rule is None:
            call = host.calls.create_rule(candidate)
        else:
            changes = {k: v for k, v in candidate.items() if self.rule.get(k) != v}
            if not changes:
                self.dismiss(None)
                return
            call = host.calls.update_rule(str(self.rule["rule_id"]), changes)
        answer = await host.ask_daemon("save rule", call, quiet=True)
        if answer.ok:
            saved = answer.value or {}
            host.notify(
                f"Rule {saved.get('name', candidate['name'])!r} saved (v{saved.get('version', '?')})."
            )
            self.dismiss(None)
        else:
            self.show_problems(answer.error or "the daemon refused the rule", answer.problems)

    @on(Button.Pressed, "#rule-test")
    def action_shadow_test(self) -> None:
        candidate = self._candidate()
        if candidate is None:
            return
        rules = [candidate]
        if self.rule and self.rule.get("name") != candidate["name"]:
            # Renamed: the old rule must leave the merged set, or both would count.
            rules.insert(
                0,
                {k: self.rule[k] for k in ("name", "condition", "priority_score")}
                | {"is_active": False},
            )
        self.query_one("#rule-shadow", Static).update(
            Text("Scoring recent requests with the candidate…", style="dim")
        )
        self.run_worker(
            self._shadow(rules), exclusive=True, group="rule-shadow", exit_on_error=False
        )

    async def _shadow(self, rules: list[dict[str, Any]]) -> None:
        host = self.host
        answer = await host.ask_daemon(
            "shadow test", host.calls.test_rules(rules, mode="merge", limit=500), quiet=True
        )
        if answer.ok and isinstance(answer.value, dict):
            self.last_shadow = answer.value
            self.query_one("#rule-shadow", Static).update(shadow_report(answer.value))
        else:
            self.query_one("#rule-shadow", Static).update(
                Text(f"shadow test refused: {answer.error}", style="#ff5f5f")
            )
            candidate_problems = [
                Problem(RULE_INDEX.sub("", p.path), p.message, p.rule) for p in answer.problems
            ]
            self.show_problems(answer.error or "", candidate_problems)

    @on(Button.Pressed, "#rule-close")
    def action_close(self) -> None:
        self.dismiss(None)
