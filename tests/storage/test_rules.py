"""Priority rules in a real DuckDB file: CRUD, history in the same commit, seeding."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from gexdaemon.core.errors import InvalidInput, NotFound
from gexdaemon.core.rulebook import DuplicateRuleName, RuleNotFound, TooManyActiveRules, find_rule
from gexdaemon.core.rules import RuleConditionError
from gexdaemon.core.scoring import RuleSet
from gexdaemon.core.settings import RulesSettings, SeedRule
from gexdaemon.storage.errors import StorageError
from gexdaemon.storage.rules import (
    AppendRuleVersion,
    create_rule,
    delete_rule,
    get_rule,
    list_rules,
    rule_history,
    seed_rules_if_empty,
    set_rule_active,
    update_rule,
)
from gexdaemon.storage.store import Store

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
SEEDS = RulesSettings().seed


def history_count(store: Store) -> int:
    return int(store.fetch_sync("SELECT count(*) AS n FROM priority_rule_versions")[0]["n"])


def create(
    store: Store,
    name: str = "spx close",
    condition: str = "market_symbol == 'SPX' and ny_hour >= 15.5",
    **kw: Any,
):  # type: ignore[no-untyped-def]
    return store.edit_sync(
        create_rule,
        name=name,
        condition=condition,
        priority_score=kw.pop("score", 0.8),
        now=kw.pop("now", T0),
        **kw,
    )


# --- seeding ---------------------------------------------------------------------------


def test_seeds_are_created_once_on_first_start(store: Store) -> None:
    created = store.edit_sync(seed_rules_if_empty, SEEDS, T0)
    assert [r.name for r in created] == [s.name for s in SEEDS]
    assert store.read_sync(list_rules) == created
    assert [h.change for h in store.read_sync(rule_history)] == ["create", "create"]
    assert store.edit_sync(seed_rules_if_empty, SEEDS, T0 + timedelta(days=1)) == []
    assert len(store.read_sync(list_rules)) == 2


def test_a_desk_that_deleted_every_rule_does_not_get_the_seeds_back(store: Store) -> None:
    for r in store.edit_sync(seed_rules_if_empty, SEEDS, T0):
        store.edit_sync(delete_rule, r.rule_id, now=T0 + timedelta(minutes=1))
    assert store.read_sync(list_rules) == []
    assert store.edit_sync(seed_rules_if_empty, SEEDS, T0 + timedelta(days=1)) == []


def test_seeds_that_break_a_rule_name_the_config_entry(store: Store) -> None:
    twins = [
        SEEDS[0],
        SeedRule(name=SEEDS[0].name.upper(), condition="volume > 1", priority_score=0.5),
    ]
    with pytest.raises(InvalidInput) as exc:
        store.edit_sync(seed_rules_if_empty, twins, T0)
    assert "[[rules.seed]] number 2" in exc.value.message
    assert exc.value.details[0].path == "rules.seed.1.name"
    assert store.read_sync(list_rules) == []  # all or nothing


# --- create ----------------------------------------------------------------------------


def test_create_writes_the_rule_and_its_first_version(store: Store) -> None:
    r = create(store, description="close auction")
    assert r.version == 1 and r.created_at == r.updated_at == T0
    assert store.read_sync(get_rule, r.rule_id) == r
    (h,) = store.read_sync(rule_history, r.rule_id)
    assert (h.rule_id, h.version, h.change, h.condition, h.priority_score, h.is_active) == (
        r.rule_id,
        1,
        "create",
        r.condition,
        0.8,
        True,
    )
    assert h.changed_at == T0


def test_create_refuses_bad_conditions_at_save_time_and_writes_nothing(store: Store) -> None:
    with pytest.raises(RuleConditionError) as exc:
        create(store, condition="market_symbol == 'SPX' and len(tags) > 2")
    assert (exc.value.line, exc.value.column) == (1, 28)
    assert store.read_sync(list_rules) == [] and history_count(store) == 0


def test_duplicate_names_are_refused_ignoring_case_and_spaces(store: Store) -> None:
    create(store, name="SPX close")
    with pytest.raises(DuplicateRuleName) as exc:
        create(store, name="  spx   CLOSE ")
    assert exc.value.code == "rule_name_taken"
    assert "already has this name" in exc.value.message
    assert len(store.read_sync(list_rules)) == 1 and history_count(store) == 1


def test_invalid_fields_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput) as exc:
        create(store, score=1.5)
    assert exc.value.details[0].path == "priority_score"
    with pytest.raises(InvalidInput):
        create(store, name="")


def test_concurrent_creates_with_one_name_leave_one_rule(store: Store) -> None:
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        try:
            create(store, name="race", condition=f"volume > {i}")
            outcomes.append("created")
        except DuplicateRuleName:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 5
    assert len(store.read_sync(list_rules)) == 1 and history_count(store) == 1


def test_the_active_rule_cap(store: Store) -> None:
    cap = RulesSettings(max_active=2)
    create(store, name="a", condition="volume > 1", settings=cap)
    create(store, name="b", condition="volume > 2", settings=cap)
    with pytest.raises(TooManyActiveRules) as exc:
        create(store, name="c", condition="volume > 3", settings=cap)
    assert "max_active allows 2" in exc.value.message
    c = create(store, name="c", condition="volume > 3", settings=cap, is_active=False)
    with pytest.raises(TooManyActiveRules):
        store.edit_sync(set_rule_active, c.rule_id, True, now=T0, settings=cap)
    store.edit_sync(set_rule_active, "a", False, now=T0)
    assert store.edit_sync(set_rule_active, c.rule_id, True, now=T0, settings=cap).is_active


# --- update, enable, disable, delete ---------------------------------------------------


def test_update_bumps_the_version_and_records_the_new_text(store: Store) -> None:
    r = create(store)
    later = T0 + timedelta(minutes=5)
    u = store.edit_sync(
        update_rule,
        "SPX CLOSE",
        now=later,
        condition="market_symbol == 'SPX' and ny_hour >= 15.75",
        priority_score=0.9,
    )
    assert (u.version, u.updated_at, u.created_at) == (2, later, T0)
    assert u.condition.endswith("15.75") and u.priority_score == 0.9
    assert store.read_sync(get_rule, r.rule_id) == u
    history = store.read_sync(rule_history, r.rule_id)
    assert [(h.version, h.change) for h in history] == [(1, "create"), (2, "update")]
    assert history[0].condition == r.condition and history[1].condition == u.condition


def test_an_update_that_changes_nothing_makes_no_version(store: Store) -> None:
    r = create(store)
    same = store.edit_sync(
        update_rule, r.rule_id, now=T0 + timedelta(hours=1), priority_score=0.8, name=" spx close "
    )
    assert same == r
    assert history_count(store) == 1


def test_update_refuses_bad_conditions_and_taken_names(store: Store) -> None:
    r = create(store)
    create(store, name="other", condition="volume > 1")
    with pytest.raises(RuleConditionError):
        store.edit_sync(update_rule, r.rule_id, now=T0, condition="volume ** 2 > 1")
    with pytest.raises(DuplicateRuleName):
        store.edit_sync(update_rule, r.rule_id, now=T0, name="OTHER")
    assert store.read_sync(get_rule, r.rule_id) == r
    assert history_count(store) == 2


def test_enable_and_disable_are_versioned_and_idempotent(store: Store) -> None:
    r = create(store)
    off = store.edit_sync(set_rule_active, r.rule_id, False, now=T0 + timedelta(minutes=1))
    assert (off.is_active, off.version) == (False, 2)
    assert store.edit_sync(set_rule_active, r.rule_id, False, now=T0 + timedelta(minutes=2)) == off
    on = store.edit_sync(set_rule_active, r.rule_id, True, now=T0 + timedelta(minutes=3))
    assert (on.is_active, on.version) == (True, 3)
    changes = [h.change for h in store.read_sync(rule_history, r.rule_id)]
    assert changes == ["create", "disable", "enable"]
    assert len(RuleSet.from_rules(store.read_sync(list_rules))) == 1


def test_delete_removes_the_rule_and_keeps_its_history(store: Store) -> None:
    r = create(store)
    gone = store.edit_sync(delete_rule, r.rule_id, now=T0 + timedelta(minutes=1))
    assert gone.version == 2
    assert store.read_sync(list_rules) == []
    history = store.read_sync(rule_history, r.rule_id)
    assert [(h.version, h.change) for h in history] == [(1, "create"), (2, "delete")]
    assert history[-1].condition == r.condition
    with pytest.raises(RuleNotFound) as exc:
        store.read_sync(get_rule, r.rule_id)
    assert "gexdaemon rules list" in exc.value.message
    assert isinstance(exc.value, NotFound)  # 404 on the socket API
    wire = history[-1].as_dict()
    assert msgspec.json.decode(msgspec.json.encode(wire)) == wire
    assert wire["change"] == "delete" and wire["rule_id"] == str(r.rule_id)
    assert wire["changed_at"] == (T0 + timedelta(minutes=1)).isoformat()
    with pytest.raises(RuleNotFound):
        store.edit_sync(delete_rule, r.rule_id, now=T0)


def test_rules_are_found_by_id_name_or_id_prefix(store: Store) -> None:
    r = create(store)
    assert store.read_sync(get_rule, str(r.rule_id).upper()) == r
    assert store.read_sync(get_rule, "Spx Close") == r
    assert store.read_sync(get_rule, str(r.rule_id)[:8]) == r
    with pytest.raises(RuleNotFound):
        store.read_sync(get_rule, str(r.rule_id)[:4])  # too short to be a prefix
    a = create(
        store,
        name="a",
        condition="volume > 1",
        rule_id=uuid.UUID("abcdef00-0000-4000-8000-000000000001"),
    )
    b = create(
        store,
        name="b",
        condition="volume > 2",
        rule_id=uuid.UUID("abcdef00-0000-4000-8000-000000000002"),
    )
    with pytest.raises(InvalidInput, match="start of 2 rule ids"):
        find_rule([a, b], "abcdef00")


def test_the_rule_and_its_history_row_share_one_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = create(store)

    def broken(self: AppendRuleVersion, plan: Any) -> None:
        plan.statement("INSERT INTO priority_rule_versions (rule_id) VALUES (NULL)", ())

    monkeypatch.setattr(AppendRuleVersion, "add_to", broken)
    with pytest.raises(StorageError):
        store.edit_sync(update_rule, r.rule_id, now=T0 + timedelta(minutes=1), priority_score=0.5)
    with pytest.raises(StorageError):
        create(store, name="never", condition="volume > 1")
    assert store.read_sync(list_rules) == [r]  # neither the update nor the create landed
    assert history_count(store) == 1


async def test_edits_and_reads_from_the_event_loop(store: Store) -> None:
    r = await store.edit(
        create_rule, name="async", condition="volume > 1", priority_score=0.5, now=T0
    )
    assert await store.read(get_rule, "async") == r
    u = await store.edit(update_rule, r.rule_id, now=T0 + timedelta(seconds=1), description="why")
    assert u.description == "why" and u.version == 2
    assert (
        await store.edit(set_rule_active, r.rule_id, False, now=T0 + timedelta(seconds=2))
    ).is_active is False
    assert (
        await store.edit(set_rule_active, r.rule_id, True, now=T0 + timedelta(seconds=3))
    ).is_active is True
    assert await store.read(list_rules) == [await store.read(get_rule, r.rule_id)]
    await store.edit(delete_rule, r.rule_id, now=T0 + timedelta(seconds=4))
    assert [h.change for h in await store.read(rule_history, r.rule_id)] == [
        "create",
        "update",
        "disable",
        "enable",
        "delete",
    ]
    assert await store.edit(seed_rules_if_empty, SEEDS, T0) == []  # history exists
