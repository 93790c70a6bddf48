"""Priority scoring: combine the matching rules, adjust for source reliability, explain it.

The score of a request, step by step (docs/rules.md says the same for users):
1. every active rule's condition is evaluated against the request's names;
2. base score: the matching rules' scores combined by `[priority] combine`
   (max by default); with no match, the default score of the request's data type;
3. reliability adjustment: `base - reliability_weight * (1 - reliability)`;
4. clamp to [0, 1], round to 9 decimals (so 0.95 - 0.1 is 0.85, not
   0.8499999999999999), and read the level from the thresholds.

Every result carries an explanation a trader can read (which rules matched,
the base and where it came from, the adjustment, the thresholds) and the
versions of the rules that matched, so the rule history can say exactly which
text scored a request.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import JsonValue

from gexdaemon.core.models import GEXDataType, PriorityLevel, PriorityRequest, PriorityRule
from gexdaemon.core.rules import CompiledCondition, Names, Test, compile_condition, request_names
from gexdaemon.core.settings import PrioritySettings
from gexdaemon.core.timeutil import as_utc

SCORE_DECIMALS = 9

# Enum `.value` goes through a descriptor; a dict lookup is several times cheaper per request.
_TEXT: dict[GEXDataType | PriorityLevel, str] = {
    **{t: t.value for t in GEXDataType},
    **{level: level.value for level in PriorityLevel},
}


@dataclass(frozen=True, slots=True)
class ScoringRule:
    """An active rule, compiled, as the scorer uses it."""

    rule_id: str
    name: str
    version: int
    priority_score: float
    condition: CompiledCondition
    # The rule as explanations list it, built once; as_dict() hands out copies.
    _explained: dict[str, JsonValue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        explained: dict[str, JsonValue] = {
            "rule_id": self.rule_id,
            "name": self.name,
            "version": self.version,
            "score": self.priority_score,
        }
        object.__setattr__(self, "_explained", explained)

    def as_dict(self) -> dict[str, JsonValue]:
        """The rule as an explanation lists it (id, name, version, score)."""
        return self._explained.copy()


_Entry = tuple[int, Test]  # (rank of the rule in RuleSet.rules, its compiled test)


class RuleSet:
    """The active rules, compiled once, ready to score requests.

    Rules are kept highest score first (then by name and id), which is also the
    order explanations list them in. A rule whose condition requires an equality
    (`market_symbol in ['SPX', 'NDX'] and ...`, see `CompiledCondition.guard`) is
    filed under that name and value, so a request only evaluates the rules that
    could match it: symbol-specific rules for other symbols cost nothing.
    """

    __slots__ = ("_always", "_index", "fingerprint", "inactive", "names", "rules")

    def __init__(self, rules: Sequence[ScoringRule] = (), *, inactive: int = 0) -> None:
        self.rules: tuple[ScoringRule, ...] = tuple(
            sorted(rules, key=lambda r: (-r.priority_score, r.name, r.rule_id))
        )
        self.inactive = inactive
        # Entries carry the rule's rank so matches from several index buckets can be put
        # back in order by sorting plain ints.
        always: list[_Entry] = []
        index: dict[str, dict[object, list[_Entry]]] = {}
        for rank, rule in enumerate(self.rules):
            entry = (rank, rule.condition.test)
            guard = rule.condition.guard
            if guard is None:
                always.append(entry)
                continue
            key, values = guard
            table = index.setdefault(key, {})
            for value in values:
                table.setdefault(value, []).append(entry)
        self._always = tuple(always)
        self._index = tuple(
            (key, {value: tuple(entries) for value, entries in table.items()})
            for key, table in index.items()
        )
        used: set[str] = set()
        for rule in self.rules:
            used |= rule.condition.names
        self.names: frozenset[str] = frozenset(used)
        digest = hashlib.sha256()
        for rule in sorted(self.rules, key=lambda r: r.rule_id):
            digest.update(f"{rule.rule_id}:{rule.version};".encode())
        self.fingerprint = digest.hexdigest()[:16]

    @classmethod
    def from_rules(cls, rules: Sequence[PriorityRule]) -> RuleSet:
        """Compile the active rules (inactive ones are counted, never evaluated)."""
        active = [r for r in rules if r.is_active]
        return cls(
            [
                ScoringRule(
                    rule_id=str(r.rule_id),
                    name=r.name,
                    version=r.version,
                    priority_score=r.priority_score,
                    condition=compile_condition(r.condition),
                )
                for r in active
            ],
            inactive=len(rules) - len(active),
        )

    def __len__(self) -> int:
        return len(self.rules)

    def matching(self, names: Names) -> list[ScoringRule]:
        """The rules whose condition holds, highest score first."""
        ranks: list[int] = []
        _collect(self._always, names, ranks)
        if self._index:
            for key, table in self._index:
                value = names.get(key)
                if value is None:
                    continue
                try:
                    group = table.get(value)
                except TypeError:  # an unhashable metadata value equals no literal
                    continue
                if group:
                    _collect(group, names, ranks)
            ranks.sort()
        rules = self.rules
        return [rules[rank] for rank in ranks]

    def matching_all(self, names: Names) -> list[ScoringRule]:
        """`matching` without the index: every rule evaluated (the reference for tests)."""
        ranks: list[int] = []
        _collect([(i, r.condition.test) for i, r in enumerate(self.rules)], names, ranks)
        return [self.rules[rank] for rank in ranks]


def _collect(entries: Sequence[_Entry], names: Names, ranks: list[int]) -> None:
    for rank, test in entries:
        try:
            hit = test(names)
        except Exception:
            # Same guarantee as CompiledCondition.evaluate, without its call overhead.
            hit = False
        if hit is True:
            ranks.append(rank)


class ScoreResult(NamedTuple):
    """A request's score and level, why, and the versions of the rules that matched.

    A NamedTuple rather than a frozen dataclass: it is built once per request and
    a frozen dataclass's __init__ costs several times more.
    """

    score: float
    level: PriorityLevel
    explanation: dict[str, JsonValue]
    rule_versions: dict[str, int]
    matched: tuple[ScoringRule, ...] = ()
    base_score: float = 0.0
    adjustment: float = 0.0


def combine_scores(scores: Sequence[float], how: str) -> float:
    """Combine the scores of the matching rules (at least one).

    max: the most urgent reason wins (the default; adding a weaker rule never
    lowers a score). mean: the plain average. weighted_max: the average weighted
    by each score itself (sum s^2 / sum s), between mean and max: a strong rule
    dominates weak ones without ignoring them.
    """
    if not scores:
        raise ValueError("combine_scores needs at least one score")
    if how == "max":
        return max(scores)
    if how == "mean":
        return math.fsum(scores) / len(scores)
    if how == "weighted_max":
        total = math.fsum(scores)
        return 0.0 if total == 0 else math.fsum(s * s for s in scores) / total
    raise ValueError(f"unknown combine mode {how!r}; use max, mean or weighted_max")


def score_request(
    rule_set: RuleSet,
    *,
    data_type: GEXDataType | str,
    market_symbol: str,
    source_url: str,
    requested_at: datetime,
    metadata: Mapping[str, object],
    origin: str,
    reliability_score: float,
    now: datetime,
    settings: PrioritySettings,
) -> ScoreResult:
    """Score one request with `rule_set`; deterministic for the same inputs and `now`."""
    kind = data_type if isinstance(data_type, GEXDataType) else GEXDataType(data_type)
    names = request_names(
        data_type=_TEXT[kind],
        market_symbol=market_symbol,
        source_url=source_url,
        requested_at=requested_at,
        metadata=metadata,
        origin=origin,
        reliability_score=reliability_score,
        now=now,
        wanted=rule_set.names,
    )
    matched = rule_set.matching(names)
    base_detail: dict[str, JsonValue]
    if matched:
        # `matching` returns the highest score first, so max needs no pass over the list.
        base = (
            matched[0].priority_score
            if settings.combine == "max"
            else combine_scores([r.priority_score for r in matched], settings.combine)
        )
        base_detail = {"score": _round(base), "from": "rules", "combine": settings.combine}
    else:
        base = getattr(settings.default_scores, _TEXT[kind])
        base_detail = {"score": base, "from": "default_score", "data_type": _TEXT[kind]}

    reliability = _unit(reliability_score)
    adjustment = -settings.reliability_weight * (1.0 - reliability)
    raw = _round(base + adjustment)
    score = 0.0 if raw < 0.0 else 1.0 if raw > 1.0 else raw
    level = settings.level_for(score)
    matched_dicts: list[JsonValue] = [r.as_dict() for r in matched]
    explanation: dict[str, JsonValue] = {
        "scored_at": (now if now.tzinfo is UTC else as_utc(now)).isoformat(),
        "matched": matched_dicts,
        "base": base_detail,
        "reliability": {
            "score": reliability,
            "weight": settings.reliability_weight,
            "adjustment": _round(adjustment),
        },
        "clamped": score != raw,
        "score": score,
        "level": _TEXT[level],
        "thresholds": {
            "critical": settings.critical_threshold,
            "high": settings.high_threshold,
            "medium": settings.medium_threshold,
        },
        "rules": {"active": len(rule_set), "fingerprint": rule_set.fingerprint},
    }
    return ScoreResult(
        score=score,
        level=level,
        explanation=explanation,
        rule_versions={r.rule_id: r.version for r in matched},
        matched=tuple(matched),
        base_score=base,
        adjustment=adjustment,
    )


def rescore_request(
    rule_set: RuleSet,
    request: PriorityRequest,
    *,
    reliability_score: float,
    settings: PrioritySettings,
    at: datetime | None = None,
) -> ScoreResult:
    """Score a stored request again, as of `at` (default: when it was first scored).

    Re-scoring at the original instant keeps `age_s` what it was, so a shadow
    test compares rule sets, not the passing of time.
    """
    when = at if at is not None else scored_at(request)
    return score_request(
        rule_set,
        data_type=request.data_type,
        market_symbol=request.market_symbol,
        source_url=request.source_url,
        requested_at=request.requested_at,
        metadata=request.metadata,
        origin=request.origin,
        reliability_score=reliability_score,
        now=when,
        settings=settings,
    )


def scored_at(request: PriorityRequest) -> datetime:
    """When a stored request was scored: its explanation says so; else its requested_at."""
    value = request.explanation.get("scored_at") if request.explanation else None
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    return request.requested_at


def _unit(value: float) -> float:
    """A reliability in [0, 1]; a missing or broken figure counts as fully reliable."""
    if type(value) is not float and (type(value) is not int):
        return 1.0
    if not math.isfinite(value):
        return 1.0
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value)


def _round(value: float) -> float:
    return round(value, SCORE_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
