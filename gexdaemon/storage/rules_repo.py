"""Priority rules, their history and the processing estimates in the DuckDB store.

Every rule change writes the rule and its history row (`priority_rule_versions`)
in one commit, so the history can never miss a version that scored a request.
The checks themselves (condition compiled at save time, unique names, the
active-rule cap, version bumps) are the pure functions of
`gexdaemon.core.rulebook`; this module loads, calls them and commits.

Rule writes are read-check-write sequences (the name check reads the table), so
they are serialised by one lock; the daemon is the only process writing the
file. Each write has a sync variant (`*_sync`, for the CLI and tests) and an
async one that runs it on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.estimates import EstimateState
from gexdaemon.core.models import PriorityRequest, PriorityRule
from gexdaemon.core.rulebook import (
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
from gexdaemon.storage.store import Change, DeleteRule, PutRule, Statement, Store, WritePlan

MAX_RECENT_REQUESTS = 100_000

_RULE_WRITES = threading.Lock()

_INSERT_VERSION_SQL = (
    "INSERT INTO priority_rule_versions (rule_id, version, change, name, description, "
    "condition, priority_score, is_active, changed_at) "
    "VALUES (CAST(? AS UUID), ?, ?, ?, ?, ?, ?, ?, ?)"
)
_VERSION_COLUMNS = (
    "rule_id, version, change, name, description, condition, priority_score, is_active, changed_at"
)
_UPSERT_ESTIMATE_SQL = (
    "INSERT INTO processing_estimates (source_key, data_type, ema_s, samples, updated_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_key, data_type) DO UPDATE SET "
    "ema_s = EXCLUDED.ema_s, samples = EXCLUDED.samples, updated_at = EXCLUDED.updated_at"
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


def _max_active(settings: RulesSettings | None) -> int:
    return (settings or RulesSettings()).max_active


# ---------------------------------------------------------------------------
# Reading rules
# ---------------------------------------------------------------------------


def _rules_from(found: Sequence[dict[str, Any]]) -> list[PriorityRule]:
    return [rows.rule_from_row(row) for row in found]


_LIST_RULES_SQL = rows.RULES.select_sql() + " ORDER BY created_at, name, rule_id"


def list_rules_sync(store: Store) -> list[PriorityRule]:
    """Every rule, active or not, oldest first."""
    return _rules_from(store.fetch_sync(_LIST_RULES_SQL))


async def list_rules(store: Store) -> list[PriorityRule]:
    return _rules_from(await store.fetch(_LIST_RULES_SQL))


def get_rule_sync(store: Store, ref: str | uuid.UUID) -> PriorityRule:
    """A rule by id, name or unique id prefix; raises `RuleNotFound`."""
    return find_rule(list_rules_sync(store), ref)


async def get_rule(store: Store, ref: str | uuid.UUID) -> PriorityRule:
    return find_rule(await list_rules(store), ref)


def _history_from(found: Sequence[dict[str, Any]]) -> list[RuleVersion]:
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


def _history_query(rule_id: uuid.UUID | None) -> tuple[str, tuple[Any, ...]]:
    sql = f"SELECT {_VERSION_COLUMNS} FROM priority_rule_versions"
    if rule_id is None:
        return sql + " ORDER BY changed_at, rule_id, version", ()
    return sql + " WHERE rule_id = CAST(? AS UUID) ORDER BY version", (str(rule_id),)


def rule_history_sync(store: Store, rule_id: uuid.UUID | None = None) -> list[RuleVersion]:
    """The history of one rule (oldest first), or of every rule when `rule_id` is None."""
    return _history_from(store.fetch_sync(*_history_query(rule_id)))


async def rule_history(store: Store, rule_id: uuid.UUID | None = None) -> list[RuleVersion]:
    return _history_from(await store.fetch(*_history_query(rule_id)))


# ---------------------------------------------------------------------------
# Writing rules
# ---------------------------------------------------------------------------


def create_rule_sync(
    store: Store,
    *,
    name: str,
    condition: str,
    priority_score: float,
    now: datetime,
    description: str = "",
    is_active: bool = True,
    settings: RulesSettings | None = None,
    rule_id: uuid.UUID | None = None,
) -> PriorityRule:
    """Create a rule (version 1). Raises `RuleConditionError`, `DuplicateRuleName`,
    `TooManyActiveRules` or `InvalidInput` before anything is written."""
    with _RULE_WRITES:
        edit = new_rule(
            list_rules_sync(store),
            name=name,
            condition=condition,
            priority_score=priority_score,
            description=description,
            is_active=is_active,
            now=now,
            max_active=_max_active(settings),
            rule_id=rule_id,
        )
        store.commit_sync(_changes_for(edit))
        return edit.rule


async def create_rule(
    store: Store,
    *,
    name: str,
    condition: str,
    priority_score: float,
    now: datetime,
    description: str = "",
    is_active: bool = True,
    settings: RulesSettings | None = None,
    rule_id: uuid.UUID | None = None,
) -> PriorityRule:
    return await asyncio.to_thread(
        create_rule_sync,
        store,
        name=name,
        condition=condition,
        priority_score=priority_score,
        now=now,
        description=description,
        is_active=is_active,
        settings=settings,
        rule_id=rule_id,
    )


def update_rule_sync(
    store: Store,
    ref: str | uuid.UUID,
    *,
    now: datetime,
    name: str | None = None,
    description: str | None = None,
    condition: str | None = None,
    priority_score: float | None = None,
    is_active: bool | None = None,
    settings: RulesSettings | None = None,
) -> PriorityRule:
    """Patch the given fields; the version goes up by one unless nothing changed."""
    with _RULE_WRITES:
        rules = list_rules_sync(store)
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
        if edit is None:
            return find_rule(rules, ref)
        store.commit_sync(_changes_for(edit))
        return edit.rule


async def update_rule(
    store: Store,
    ref: str | uuid.UUID,
    *,
    now: datetime,
    name: str | None = None,
    description: str | None = None,
    condition: str | None = None,
    priority_score: float | None = None,
    is_active: bool | None = None,
    settings: RulesSettings | None = None,
) -> PriorityRule:
    return await asyncio.to_thread(
        update_rule_sync,
        store,
        ref,
        now=now,
        name=name,
        description=description,
        condition=condition,
        priority_score=priority_score,
        is_active=is_active,
        settings=settings,
    )


def set_rule_active_sync(
    store: Store,
    ref: str | uuid.UUID,
    active: bool,
    *,
    now: datetime,
    settings: RulesSettings | None = None,
) -> PriorityRule:
    """Enable or disable a rule; a no-op (no new version) when it already is."""
    with _RULE_WRITES:
        rules = list_rules_sync(store)
        edit = set_active(rules, ref, active, now=now, max_active=_max_active(settings))
        if edit is None:
            return find_rule(rules, ref)
        store.commit_sync(_changes_for(edit))
        return edit.rule


def enable_rule_sync(
    store: Store, ref: str | uuid.UUID, *, now: datetime, settings: RulesSettings | None = None
) -> PriorityRule:
    return set_rule_active_sync(store, ref, True, now=now, settings=settings)


def disable_rule_sync(store: Store, ref: str | uuid.UUID, *, now: datetime) -> PriorityRule:
    return set_rule_active_sync(store, ref, False, now=now)


async def enable_rule(
    store: Store, ref: str | uuid.UUID, *, now: datetime, settings: RulesSettings | None = None
) -> PriorityRule:
    return await asyncio.to_thread(enable_rule_sync, store, ref, now=now, settings=settings)


async def disable_rule(store: Store, ref: str | uuid.UUID, *, now: datetime) -> PriorityRule:
    return await asyncio.to_thread(disable_rule_sync, store, ref, now=now)


def delete_rule_sync(store: Store, ref: str | uuid.UUID, *, now: datetime) -> PriorityRule:
    """Delete a rule; returns its last state. The history keeps every version."""
    with _RULE_WRITES:
        edit = remove_rule(list_rules_sync(store), ref, now=now)
        store.commit_sync(_changes_for(edit))
        return edit.rule


async def delete_rule(store: Store, ref: str | uuid.UUID, *, now: datetime) -> PriorityRule:
    return await asyncio.to_thread(delete_rule_sync, store, ref, now=now)


def seed_rules_if_empty_sync(
    store: Store,
    seeds: Sequence[SeedRule],
    now: datetime,
    *,
    settings: RulesSettings | None = None,
) -> list[PriorityRule]:
    """Create the configured seed rules on first start; returns what was created.

    "First start" means no rule was ever created: the rule table and its history
    are both empty. A trader who deleted every rule does not get the seeds back.
    """
    with _RULE_WRITES:
        counts = store.fetch_sync(
            "SELECT (SELECT count(*) FROM priority_rules) AS rules, "
            "(SELECT count(*) FROM priority_rule_versions) AS versions"
        )[0]
        if counts["rules"] or counts["versions"]:
            return []
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
        if changes:
            store.commit_sync(changes)
        return created


async def seed_rules_if_empty(
    store: Store,
    seeds: Sequence[SeedRule],
    now: datetime,
    *,
    settings: RulesSettings | None = None,
) -> list[PriorityRule]:
    return await asyncio.to_thread(seed_rules_if_empty_sync, store, seeds, now, settings=settings)


# ---------------------------------------------------------------------------
# Requests for shadow testing
# ---------------------------------------------------------------------------


def _recent_query(limit: int) -> tuple[str, tuple[Any, ...]]:
    if not 1 <= limit <= MAX_RECENT_REQUESTS:
        raise InvalidInput.from_problems(
            "shadow test",
            [
                Problem(
                    path="limit",
                    message=f"must be between 1 and {MAX_RECENT_REQUESTS} (got {limit})",
                )
            ],
        )
    sql = rows.REQUESTS.select_sql() + " ORDER BY requested_at DESC, request_id LIMIT ?"
    return sql, (limit,)


def recent_requests_sync(store: Store, limit: int) -> list[PriorityRequest]:
    """The `limit` most recently requested stored requests, newest first."""
    return [rows.request_from_row(r) for r in store.fetch_sync(*_recent_query(limit))]


async def recent_requests(store: Store, limit: int) -> list[PriorityRequest]:
    return [rows.request_from_row(r) for r in await store.fetch(*_recent_query(limit))]


# ---------------------------------------------------------------------------
# Processing estimates
# ---------------------------------------------------------------------------

_ESTIMATES_SQL = (
    "SELECT source_key, data_type, ema_s, samples, updated_at FROM processing_estimates "
    "ORDER BY source_key, data_type"
)


def _estimates_from(found: Sequence[dict[str, Any]]) -> list[EstimateState]:
    return [
        EstimateState(
            source_key=row["source_key"],
            data_type=row["data_type"],
            ema_s=float(row["ema_s"]),
            samples=int(row["samples"]),
            updated_at=as_utc(row["updated_at"]),
        )
        for row in found
    ]


def load_estimates_sync(store: Store) -> list[EstimateState]:
    return _estimates_from(store.fetch_sync(_ESTIMATES_SQL))


async def load_estimates(store: Store) -> list[EstimateState]:
    return _estimates_from(await store.fetch(_ESTIMATES_SQL))


def _estimate_changes(states: Iterable[EstimateState], now: datetime | None) -> list[Change]:
    stamp = now or datetime.now(UTC)
    return [
        Statement(
            _UPSERT_ESTIMATE_SQL,
            (s.source_key, s.data_type, s.ema_s, s.samples, s.updated_at or stamp),
        )
        for s in states
    ]


def save_estimates_sync(
    store: Store, states: Iterable[EstimateState], *, now: datetime | None = None
) -> None:
    """Insert or replace the given averages in one commit.

    A state without `updated_at` is stamped `now` (default: the current time).
    """
    changes = _estimate_changes(states, now)
    if changes:
        store.commit_sync(changes)


async def save_estimates(
    store: Store, states: Iterable[EstimateState], *, now: datetime | None = None
) -> None:
    changes = _estimate_changes(states, now)
    if changes:
        await store.commit(changes)
