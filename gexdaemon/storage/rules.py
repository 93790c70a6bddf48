"""Priority rules and their history (`priority_rule_versions`) in the store.

Every rule change writes the rule and its history row in one commit, so the
history can never miss a version that scored a request. The checks themselves
(condition compiled at save time, unique names, the active-rule cap, version
bumps) are the pure functions of `gexdaemon.core.rulebook`; this module loads,
calls them and returns the changes.

Reads take a cursor: run them with `Store.read` (or `read_sync`). Writes are
read-check-write sequences (the name check reads the table), so each returns an
`Edit` for `Store.edit` (or `edit_sync`), which runs the read, the check and the
write on the writer between group commits: two edits never interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.models import PriorityRule
from gexdaemon.core.rulebook import (
    RuleChangeKind,
    RuleEdit,
    RuleVersion,
    find_rule,
    new_rule,
    patch_rule,
    remove_rule,
    set_active,
)
from gexdaemon.core.settings import RulesSettings, SeedRule
from gexdaemon.core.timeutil import as_utc
from gexdaemon.storage import rows
from gexdaemon.storage.store import (
    Change,
    Connection,
    DeleteRule,
    Edit,
    PutRule,
    WritePlan,
    fetch_dicts,
)

_INSERT_VERSION_SQL = (
    "INSERT INTO priority_rule_versions (rule_id, version, change, name, description, "
    "condition, priority_score, is_active, changed_at) "
    "VALUES (CAST(? AS UUID), ?, ?, ?, ?, ?, ?, ?, ?)"
)
_VERSION_COLUMNS = (
    "rule_id, version, change, name, description, condition, priority_score, is_active, changed_at"
)


@dataclass(frozen=True, slots=True)
class AppendRuleVersion:
    """A store change: one history row of a rule."""

    entry: RuleVersion

    def add_to(self, plan: WritePlan) -> None:
        e = self.entry
        plan.statement(
            _INSERT_VERSION_SQL,
            (
                str(e.rule_id),
                e.version,
                e.change,
                e.name,
                e.description,
                e.condition,
                e.priority_score,
                e.is_active,
                e.changed_at,
            ),
        )


def _changes_for(edit: RuleEdit) -> list[Change]:
    first: Change = DeleteRule(edit.rule.rule_id) if edit.change == "delete" else PutRule(edit.rule)
    return [first, AppendRuleVersion(edit.history)]


def _saved(edit: RuleEdit) -> Edit[PriorityRule]:
    return Edit(edit.rule, _changes_for(edit))


def _max_active(settings: RulesSettings | None) -> int:
    return (settings or RulesSettings()).max_active


# ---------------------------------------------------------------------------
# Reading rules
# ---------------------------------------------------------------------------


def list_rules(cur: Connection) -> list[PriorityRule]:
    """Every rule, active or not, oldest first."""
    found = fetch_dicts(cur, rows.RULES.select_sql() + " ORDER BY created_at, name, rule_id")
    return [rows.rule_from_row(row) for row in found]


def get_rule(cur: Connection, ref: str | uuid.UUID) -> PriorityRule:
    """A rule by id, name or unique id prefix; raises `RuleNotFound`."""
    return find_rule(list_rules(cur), ref)


def rule_history(cur: Connection, rule_id: uuid.UUID | None = None) -> list[RuleVersion]:
    """The history of one rule (oldest first), or of every rule when `rule_id` is None."""
    sql = f"SELECT {_VERSION_COLUMNS} FROM priority_rule_versions"
    if rule_id is None:
        found = fetch_dicts(cur, sql + " ORDER BY changed_at, rule_id, version")
    else:
        found = fetch_dicts(
            cur, sql + " WHERE rule_id = CAST(? AS UUID) ORDER BY version", (str(rule_id),)
        )
    return [
        RuleVersion(
            rule_id=uuid.UUID(str(row["rule_id"])),
            version=int(row["version"]),
            change=row["change"],
            name=row["name"],
            description=row["description"],
            condition=row["condition"],
            priority_score=float(row["priority_score"]),
            is_active=bool(row["is_active"]),
            changed_at=as_utc(row["changed_at"]),
        )
        for row in found
    ]


# ---------------------------------------------------------------------------
# Writing rules (each returns an Edit: run it with Store.edit / edit_sync)
# ---------------------------------------------------------------------------


def create_rule(
    cur: Connection,
    *,
    name: str,
    condition: str,
    priority_score: float,
    now: datetime,
    description: str = "",
    is_active: bool = True,
    settings: RulesSettings | None = None,
    rule_id: uuid.UUID | None = None,
) -> Edit[PriorityRule]:
    """Create a rule (version 1). Raises `RuleConditionError`, `DuplicateRuleName`,
    `TooManyActiveRules` or `InvalidInput` before anything is written."""
    edit = new_rule(
        list_rules(cur),
        name=name,
        condition=condition,
        priority_score=priority_score,
        description=description,
        is_active=is_active,
        now=now,
        max_active=_max_active(settings),
        rule_id=rule_id,
    )
    return _saved(edit)


def update_rule(
    cur: Connection,
    ref: str | uuid.UUID,
    *,
    now: datetime,
    name: str | None = None,
    description: str | None = None,
    condition: str | None = None,
    priority_score: float | None = None,
    is_active: bool | None = None,
    settings: RulesSettings | None = None,
) -> Edit[PriorityRule]:
    """Patch the given fields; the version goes up by one unless nothing changed."""
    rules = list_rules(cur)
    edit = patch_rule(
        rules,
        ref,
        now=now,
        max_active=_max_active(settings),
        name=name,
        description=description,
        condition=condition,
        priority_score=priority_score,
        is_active=is_active,
    )
    return Edit(find_rule(rules, ref)) if edit is None else _saved(edit)


def set_rule_active(
    cur: Connection,
    ref: str | uuid.UUID,
    active: bool,
    *,
    now: datetime,
    settings: RulesSettings | None = None,
) -> Edit[PriorityRule]:
    """Enable or disable a rule; a no-op (no new version) when it already is."""
    rules = list_rules(cur)
    edit = set_active(rules, ref, active, now=now, max_active=_max_active(settings))
    return Edit(find_rule(rules, ref)) if edit is None else _saved(edit)


def delete_rule(cur: Connection, ref: str | uuid.UUID, *, now: datetime) -> Edit[PriorityRule]:
    """Delete a rule; its result is the rule's last state. The history keeps every version."""
    return _saved(remove_rule(list_rules(cur), ref, now=now))


def seed_rules_if_empty(
    cur: Connection,
    seeds: Sequence[SeedRule],
    now: datetime,
    *,
    settings: RulesSettings | None = None,
) -> Edit[list[PriorityRule]]:
    """Create the configured seed rules on first start; the result is what was created.

    "First start" means no rule was ever created: the rule table and its history
    are both empty. A trader who deleted every rule does not get the seeds back.
    """
    counts = fetch_dicts(
        cur,
        "SELECT (SELECT count(*) FROM priority_rules) AS rules, "
        "(SELECT count(*) FROM priority_rule_versions) AS versions",
    )[0]
    if counts["rules"] or counts["versions"]:
        return Edit([])
    created: list[PriorityRule] = []
    changes: list[Change] = []
    for index, seed in enumerate(seeds):
        try:
            edit = new_rule(
                created,
                name=seed.name,
                condition=seed.condition,
                priority_score=seed.priority_score,
                description=seed.description,
                now=now,
                max_active=_max_active(settings),
            )
        except InvalidInput as exc:
            raise InvalidInput.from_problems(
                f"config [[rules.seed]] number {index + 1} ({seed.name!r})",
                [
                    Problem(path=f"rules.seed.{index}.{p.path}", message=p.message)
                    for p in exc.details
                ]
                or [Problem(path=f"rules.seed.{index}", message=exc.message)],
            ) from None
        created.append(edit.rule)
        changes.extend(_changes_for(edit))
    return Edit(created, changes)


def adopt_rules(
    cur: Connection, rules: Sequence[PriorityRule], *, now: datetime
) -> Edit[list[PriorityRule]]:
    """Make this store's rules exactly `rules` (cluster mode: the cluster's rule set, changed
    on another node); the result is the rules that changed here. Each rule version not yet
    in the history is recorded, so `rules history` reads the same on every node."""
    local = {rule.rule_id: rule for rule in list_rules(cur)}
    known = {
        (uuid.UUID(str(r["rule_id"])), int(r["version"]))
        for r in fetch_dicts(cur, "SELECT rule_id, version FROM priority_rule_versions")
    }
    changes: list[Change] = []
    changed: list[PriorityRule] = []
    wanted = {rule.rule_id for rule in rules}
    for rule in rules:
        mine = local.get(rule.rule_id)
        if mine is not None and mine.version == rule.version and mine == rule:
            continue
        changes.append(PutRule(rule))
        if (rule.rule_id, rule.version) not in known:
            kind: RuleChangeKind = "create" if rule.version == 1 else "update"
            changes.append(AppendRuleVersion(RuleVersion.of(rule, kind, rule.updated_at)))
        changed.append(rule)
    for rule_id, mine in local.items():
        if rule_id in wanted:
            continue
        changes.append(DeleteRule(rule_id))
        gone = mine.model_copy(update={"version": mine.version + 1})
        if (rule_id, gone.version) not in known:
            changes.append(AppendRuleVersion(RuleVersion.of(gone, "delete", as_utc(now))))
        changed.append(mine)
    return Edit(changed, changes)
