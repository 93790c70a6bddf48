"""Editing the priority rules: create, patch, enable, disable, delete, as pure functions.

Each edit takes the current rules and returns the rule as it is after the edit
plus the history entry it leaves (`priority_rule_versions`): the storage
adapter writes both in one commit. The checks live here so they are the same
for the CLI, the socket API and the TUI:
- the condition is compiled at save time (a `RuleConditionError` names the
  line, column and reason);
- rule names are unique, ignoring case and repeated spaces;
- at most `[rules] max_active` rules are active at once;
- every change bumps `version`, so a scored request's rule versions point at
  exactly one text in the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import JsonValue

from gexdaemon.core.errors import Conflict, InvalidInput, NotFound, Problem
from gexdaemon.core.models import PriorityRule
from gexdaemon.core.rules import compile_condition
from gexdaemon.core.timeutil import as_utc

RuleChangeKind = Literal["create", "update", "enable", "disable", "delete"]
MIN_ID_PREFIX = 6


class RuleNotFound(NotFound):
    """No rule has the id or name given (404 on the socket API)."""

    code = "rule_not_found"


class DuplicateRuleName(Conflict, InvalidInput):
    """Another rule already has this name: the rule set's state refuses it (409), the body
    itself was well formed."""

    code = "rule_name_taken"


class TooManyActiveRules(Conflict, InvalidInput):
    """The edit would leave more active rules than `[rules] max_active` allows (409)."""

    code = "too_many_active_rules"


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One row of a rule's history: its full content right after a change."""

    rule_id: uuid.UUID
    version: int
    change: RuleChangeKind
    name: str
    description: str
    condition: str
    priority_score: float
    is_active: bool
    changed_at: datetime

    def as_dict(self) -> dict[str, JsonValue]:
        """The wire shape (`gexdaemon rules history`, the socket API)."""
        return {
            "rule_id": str(self.rule_id),
            "version": self.version,
            "change": self.change,
            "name": self.name,
            "description": self.description,
            "condition": self.condition,
            "priority_score": self.priority_score,
            "is_active": self.is_active,
            "changed_at": self.changed_at.isoformat(),
        }

    @classmethod
    def of(cls, rule: PriorityRule, change: RuleChangeKind, at: datetime) -> RuleVersion:
        return cls(
            rule_id=rule.rule_id,
            version=rule.version,
            change=change,
            name=rule.name,
            description=rule.description,
            condition=rule.condition,
            priority_score=rule.priority_score,
            is_active=rule.is_active,
            changed_at=as_utc(at),
        )


@dataclass(frozen=True, slots=True)
class RuleEdit:
    """The rule after an edit (for a delete: its last state) and the history entry."""

    rule: PriorityRule
    history: RuleVersion

    @property
    def change(self) -> RuleChangeKind:
        return self.history.change


def name_key(name: str) -> str:
    """Names compare ignoring case and repeated blanks ('High  Volume' == 'high volume')."""
    return " ".join(name.split()).casefold()


def find_rule(rules: Sequence[PriorityRule], ref: str | uuid.UUID) -> PriorityRule:
    """A rule by id, by name (any case) or by a unique id prefix of 6+ characters."""
    text = str(ref).strip()
    by_id = {str(r.rule_id): r for r in rules}
    if text.lower() in by_id:
        return by_id[text.lower()]
    wanted = name_key(text)
    for rule in rules:
        if name_key(rule.name) == wanted:
            return rule
    if len(text) >= MIN_ID_PREFIX:
        hits = [r for r in rules if str(r.rule_id).startswith(text.lower())]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidInput.from_problems(
                "rule reference",
                [
                    Problem(
                        path="rule",
                        message=(
                            f"{text!r} is the start of {len(hits)} rule ids; give more of the id"
                        ),
                    )
                ],
            )
    raise RuleNotFound(
        f"no rule has the id or name {text!r}; `gexdaemon rules list` shows the rules"
    )


def new_rule(
    rules: Sequence[PriorityRule],
    *,
    name: str,
    condition: str,
    priority_score: float,
    now: datetime,
    max_active: int,
    description: str = "",
    is_active: bool = True,
    rule_id: uuid.UUID | None = None,
) -> RuleEdit:
    """A new rule (version 1), checked against the existing `rules`."""
    compile_condition(condition)  # the typed error with line and column, before pydantic's
    at = as_utc(now)
    rule = PriorityRule.parse(
        {
            "rule_id": rule_id or uuid.uuid4(),
            "name": name,
            "description": description,
            "condition": condition,
            "priority_score": priority_score,
            "is_active": is_active,
            "created_at": at,
            "updated_at": at,
            "version": 1,
        },
        what="rule",
    )
    if any(r.rule_id == rule.rule_id for r in rules):
        raise InvalidInput.from_problems(
            "rule", [Problem(path="rule_id", message=f"{rule.rule_id} already exists")]
        )
    _check_name_free(rules, rule)
    _check_active_cap(rules, rule, max_active)
    return RuleEdit(rule, RuleVersion.of(rule, "create", at))


def patch_rule(
    rules: Sequence[PriorityRule],
    ref: str | uuid.UUID,
    *,
    now: datetime,
    max_active: int,
    name: str | None = None,
    description: str | None = None,
    condition: str | None = None,
    priority_score: float | None = None,
    is_active: bool | None = None,
) -> RuleEdit | None:
    """Apply the given fields to a rule; None when nothing would change (no new version)."""
    current = find_rule(rules, ref)
    if condition is not None:
        compile_condition(condition)
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "description": description,
            "condition": condition,
            "priority_score": priority_score,
            "is_active": is_active,
        }.items()
        if value is not None
    }
    at = as_utc(now)
    updated = PriorityRule.parse(
        {
            **current.model_dump(),
            **changes,
            "version": current.version + 1,
            "updated_at": max(at, current.updated_at),
        },
        what="rule",
    )
    content = ("name", "description", "condition", "priority_score", "is_active")
    differs = [f for f in content if getattr(updated, f) != getattr(current, f)]
    if not differs:
        return None
    if "name" in differs:
        _check_name_free(rules, updated)
    _check_active_cap(rules, updated, max_active)
    kind: RuleChangeKind = "update"
    if differs == ["is_active"]:
        kind = "enable" if updated.is_active else "disable"
    return RuleEdit(updated, RuleVersion.of(updated, kind, at))


def set_active(
    rules: Sequence[PriorityRule],
    ref: str | uuid.UUID,
    active: bool,
    *,
    now: datetime,
    max_active: int,
) -> RuleEdit | None:
    """Enable or disable a rule; None when it already is (no new version)."""
    return patch_rule(rules, ref, now=now, max_active=max_active, is_active=active)


def remove_rule(rules: Sequence[PriorityRule], ref: str | uuid.UUID, *, now: datetime) -> RuleEdit:
    """Delete a rule; its history keeps a last 'delete' row with its final content."""
    current = find_rule(rules, ref)
    at = as_utc(now)
    last = current.evolve(version=current.version + 1, updated_at=max(at, current.updated_at))
    return RuleEdit(last, RuleVersion.of(last, "delete", at))


def _check_name_free(rules: Sequence[PriorityRule], rule: PriorityRule) -> None:
    key = name_key(rule.name)
    for other in rules:
        if other.rule_id != rule.rule_id and name_key(other.name) == key:
            raise DuplicateRuleName.from_problems(
                "rule",
                [
                    Problem(
                        path="name",
                        message=(
                            f"rule {other.name!r} ({other.rule_id}) already has this name; "
                            "choose another name or update that rule"
                        ),
                        value=rule.name,
                    )
                ],
            )


def _check_active_cap(rules: Sequence[PriorityRule], rule: PriorityRule, max_active: int) -> None:
    if not rule.is_active:
        return
    active = sum(1 for r in rules if r.is_active and r.rule_id != rule.rule_id) + 1
    if active > max_active:
        raise TooManyActiveRules.from_problems(
            "rule",
            [
                Problem(
                    path="is_active",
                    message=(
                        f"{active} rules would be active; [rules] max_active allows "
                        f"{max_active}. Disable or delete a rule first, or raise max_active"
                    ),
                )
            ],
        )
