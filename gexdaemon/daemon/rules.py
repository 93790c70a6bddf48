"""The daemon's rules: the compiled rule set in use, edits through the store, shadow tests.

Edits go through `gexdaemon.storage.rules` (validated and versioned by the
pure `gexdaemon.core.rulebook`); after each one the rule set is recompiled and
swapped in, so the next request is scored with it and records its versions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from gexdaemon.core.errors import InvalidInput, NotFound, Problem
from gexdaemon.core.models import PriorityRule
from gexdaemon.core.rulebook import find_rule, name_key
from gexdaemon.core.rules import compile_condition
from gexdaemon.core.scoring import RuleSet
from gexdaemon.core.settings import PrioritySettings, RulesSettings
from gexdaemon.core.shadow import shadow_test
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon import present
from gexdaemon.daemon.events import EventBus
from gexdaemon.protocol.shapes import RuleVersionView, RuleView, SavedRule, ShadowReport
from gexdaemon.storage.jobs import MAX_RECENT_REQUESTS, recent_requests
from gexdaemon.storage.rules import (
    adopt_rules,
    create_rule,
    delete_rule,
    list_rules,
    rule_history,
    seed_rules_if_empty,
    update_rule,
)
from gexdaemon.storage.store import Store

RULE_FIELDS = {"name", "description", "condition", "priority_score", "is_active"}
DEFAULT_SHADOW_LIMIT = 500


def saved_rule(rule: PriorityRule) -> SavedRule:
    """A saved rule plus what the compiler noticed (names read from metadata, likely typos)."""
    compiled = compile_condition(rule.condition)
    return present.saved_rule(
        rule, metadata_names=sorted(compiled.metadata_names), notes=list(compiled.notes)
    )


def _fields(payload: Any, *, required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidInput.from_problems(what, [Problem("(root)", "must be a JSON object")])
    unknown = sorted(set(payload) - RULE_FIELDS)
    missing = sorted(required - set(payload))
    problems = [Problem(k, "unknown field") for k in unknown] + [
        Problem(k, "is required") for k in missing
    ]
    if problems:
        raise InvalidInput.from_problems(what, problems)
    return dict(payload)


@dataclass(kw_only=True, eq=False)
class RuleService:
    store: Store
    bus: EventBus
    now: Callable[[], datetime]
    settings: RulesSettings
    priority: PrioritySettings
    reliability: Callable[[], Mapping[str, float]]

    def __post_init__(self) -> None:
        self.rules: list[PriorityRule] = []
        self.current = RuleSet.from_rules([])
        self.on_change: Callable[[list[PriorityRule]], Awaitable[None]] | None = None
        """Called with the whole rule set after each edit here (cluster mode shares it)."""

    async def load(self) -> None:
        settings = self.settings
        await self.store.edit(seed_rules_if_empty, settings.seed, self.now(), settings=settings)
        await self._reload()

    async def _reload(self) -> None:
        self.rules = await self.store.read(list_rules)
        self.current = RuleSet.from_rules(self.rules)

    async def _edited(self) -> None:
        await self._reload()
        if self.on_change is not None:
            await self.on_change(list(self.rules))

    async def adopt(self, rules: list[PriorityRule]) -> int:
        """Take the cluster's rule set (changed on another node); returns how many changed."""
        changed = await self.store.edit(adopt_rules, rules, now=self.now())
        await self._reload()
        for rule in changed:
            self.bus.publish(EventType.RULE_UPDATED, present.rule_view(rule))
        return len(changed)

    def find(self, ref: str) -> PriorityRule:
        return find_rule(self.rules, ref)

    async def create(self, payload: Any) -> SavedRule:
        data = _fields(payload, required={"name", "condition", "priority_score"}, what="the rule")
        rule = await self.store.edit(create_rule, now=self.now(), settings=self.settings, **data)
        await self._edited()
        self.bus.publish(EventType.RULE_CREATED, present.rule_view(rule))
        return saved_rule(rule)

    async def update(self, ref: str, payload: Any) -> SavedRule:
        data = _fields(payload, required=set(), what="the rule change")
        rule = await self.store.edit(
            update_rule, ref, now=self.now(), settings=self.settings, **data
        )
        await self._edited()
        self.bus.publish(EventType.RULE_UPDATED, present.rule_view(rule))
        return saved_rule(rule)

    async def delete(self, ref: str) -> RuleView:
        rule = await self.store.edit(delete_rule, ref, now=self.now())
        await self._edited()
        view = present.rule_view(rule)
        self.bus.publish(EventType.RULE_DELETED, view)
        return view

    async def history(self, ref: str) -> list[RuleVersionView]:
        """Every version of a rule, found by id or name among live and deleted rules."""
        try:
            rule_id = self.find(ref).rule_id
            versions = await self.store.read(rule_history, rule_id)
        except NotFound:
            # A deleted rule lives on in its history: the newest rule of that name or id.
            every = await self.store.read(rule_history)
            key = ref.strip()
            matches = [
                v for v in every if str(v.rule_id) == key or name_key(v.name) == name_key(key)
            ]
            if not matches:
                raise
            rule_id = matches[-1].rule_id
            versions = [v for v in every if v.rule_id == rule_id]
        return [present.rule_version(v) for v in versions]

    async def test(self, payload: Any) -> ShadowReport:
        """Score recent requests with a candidate rule set; nothing is saved.

        Body: {"rules": [...], "mode": "merge" | "replace", "limit": N}. "merge" (the
        default) starts from the current rules and replaces the ones with the same
        name, adds the new ones, and honours "is_active": false; "replace" tests
        exactly the rules given.
        """
        if not isinstance(payload, Mapping):
            raise InvalidInput('send {"rules": [...], "mode": "merge"|"replace", "limit": N}')
        unknown = sorted(set(payload) - {"rules", "mode", "limit"})
        if unknown:
            raise InvalidInput.from_problems(
                "the shadow test", [Problem(k, "unknown field") for k in unknown]
            )
        mode = payload.get("mode", "merge")
        if mode not in ("merge", "replace"):
            raise InvalidInput.from_problems(
                "the shadow test", [Problem("mode", "must be merge or replace")]
            )
        limit = payload.get("limit", DEFAULT_SHADOW_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT_REQUESTS:
            raise InvalidInput.from_problems(
                "the shadow test",
                [Problem("limit", f"must be an integer from 1 to {MAX_RECENT_REQUESTS}")],
            )
        raw = payload.get("rules", [])
        if not isinstance(raw, list):
            raise InvalidInput.from_problems(
                "the shadow test", [Problem("rules", "must be a list of rules")]
            )
        now = self.now()
        drafts: list[PriorityRule] = []
        problems: list[Problem] = []
        for i, item in enumerate(raw):
            try:
                data = _fields(
                    item, required={"name", "condition", "priority_score"}, what=f"rules[{i}]"
                )
                compile_condition(str(data["condition"]))
                drafts.append(
                    PriorityRule.parse(
                        {**data, "created_at": now, "updated_at": now}, what=f"rules[{i}]"
                    )
                )
            except InvalidInput as exc:
                problems += [
                    Problem(f"rules.{i}.{p.path}", p.message, p.rule) for p in exc.details
                ] or [Problem(f"rules.{i}", exc.message)]
        if problems:
            raise InvalidInput.from_problems("the candidate rules", problems)
        if mode == "replace":
            candidate_rules = drafts
        else:
            by_name = {name_key(r.name): r for r in self.rules}
            for draft in drafts:
                by_name[name_key(draft.name)] = draft
            candidate_rules = list(by_name.values())
        requests = await self.store.read(recent_requests, limit)
        report = shadow_test(
            requests,
            self.current,
            RuleSet.from_rules(candidate_rules),
            settings=self.priority,
            reliability=self.reliability(),
            now=now,
        )
        return msgspec.convert(report.as_dict() | {"mode": mode}, ShadowReport)
