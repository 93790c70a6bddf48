"""Shadow testing: what a candidate rule set would do to real requests before it goes live.

The seed asks to "validate priority assignment accuracy before full
deployment". `shadow_test` re-scores stored requests with the current rules
and with a candidate, and reports the level distribution under each and every
request whose level would change, with both scores and the rules that matched.

Both sides are scored under the same conditions, so only the rules differ:
- each request is scored as of the instant it was first scored (its
  explanation's `scored_at`, else its `requested_at`), so `age_s` is what it was
  then rather than hours later;
- both sides use the same source reliability, from the `reliability` mapping
  (keyed by the source's base URL; a source missing from it counts as 1.0).

Exposed as `gexdaemon rules test` and `POST /v1/rules/test`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from gexdaemon.core.explain import describe
from gexdaemon.core.models import PriorityLevel, PriorityRequest, base_url_of
from gexdaemon.core.scoring import RuleSet, ScoreResult, rescore_request, scored_at
from gexdaemon.core.settings import PrioritySettings
from gexdaemon.core.timeutil import as_utc


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One request that the candidate rules would put on a different level."""

    request_id: str
    market_symbol: str
    data_type: str
    source_url: str
    requested_at: datetime
    before: ScoreResult
    after: ScoreResult

    @property
    def steps(self) -> int:
        """Levels moved: positive when the candidate makes the request more urgent."""
        return self.before.level.rank - self.after.level.rank

    def as_dict(self) -> dict[str, JsonValue]:
        return {
            "request_id": self.request_id,
            "market_symbol": self.market_symbol,
            "data_type": self.data_type,
            "source_url": self.source_url,
            "requested_at": self.requested_at.isoformat(),
            "direction": "up" if self.steps > 0 else "down",
            "before": _side(self.before),
            "after": _side(self.after),
        }


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """Level distribution before and after, and every request that changes level."""

    generated_at: datetime
    requests: int
    before: Mapping[PriorityLevel, int]
    after: Mapping[PriorityLevel, int]
    transitions: Mapping[tuple[PriorityLevel, PriorityLevel], int]
    changes: tuple[LevelChange, ...]
    score_only_changes: int
    current_rules: int
    candidate_rules: int
    current_fingerprint: str
    candidate_fingerprint: str

    @property
    def promoted(self) -> int:
        return sum(1 for c in self.changes if c.steps > 0)

    @property
    def demoted(self) -> int:
        return sum(1 for c in self.changes if c.steps < 0)

    def as_dict(self) -> dict[str, JsonValue]:
        transitions: list[JsonValue] = [
            {"from": a.value, "to": b.value, "requests": n}
            for (a, b), n in sorted(
                self.transitions.items(), key=lambda t: (t[0][0].rank, t[0][1].rank)
            )
        ]
        changes: list[JsonValue] = [c.as_dict() for c in self.changes]
        return {
            "generated_at": self.generated_at.isoformat(),
            "requests": self.requests,
            "levels_before": {level.value: self.before.get(level, 0) for level in PriorityLevel},
            "levels_after": {level.value: self.after.get(level, 0) for level in PriorityLevel},
            "changed": len(self.changes),
            "promoted": self.promoted,
            "demoted": self.demoted,
            "score_only_changes": self.score_only_changes,
            "transitions": transitions,
            "rules": {
                "current": {"active": self.current_rules, "fingerprint": self.current_fingerprint},
                "candidate": {
                    "active": self.candidate_rules,
                    "fingerprint": self.candidate_fingerprint,
                },
            },
            "changes": changes,
        }


def shadow_test(
    requests: Sequence[PriorityRequest],
    current: RuleSet,
    candidate: RuleSet,
    *,
    settings: PrioritySettings,
    reliability: Mapping[str, float],
    now: datetime,
) -> ShadowReport:
    """Score `requests` with both rule sets and report the differences.

    Changes are listed largest move first (then newest request first).
    """
    before_levels: Counter[PriorityLevel] = Counter()
    after_levels: Counter[PriorityLevel] = Counter()
    transitions: Counter[tuple[PriorityLevel, PriorityLevel]] = Counter()
    changes: list[LevelChange] = []
    score_only = 0
    moment = as_utc(now)
    for request in requests:
        source_reliability = reliability.get(base_url_of(request.source_url), 1.0)
        at = min(scored_at(request), moment)
        before = rescore_request(
            current, request, reliability_score=source_reliability, settings=settings, at=at
        )
        after = rescore_request(
            candidate, request, reliability_score=source_reliability, settings=settings, at=at
        )
        before_levels[before.level] += 1
        after_levels[after.level] += 1
        if before.level is not after.level:
            transitions[(before.level, after.level)] += 1
            changes.append(
                LevelChange(
                    request_id=str(request.request_id),
                    market_symbol=request.market_symbol,
                    data_type=request.data_type.value,
                    source_url=request.source_url,
                    requested_at=request.requested_at,
                    before=before,
                    after=after,
                )
            )
        elif before.score != after.score:
            score_only += 1
    changes.sort(key=lambda c: (-abs(c.steps), -c.requested_at.timestamp(), c.request_id))
    return ShadowReport(
        generated_at=moment,
        requests=len(requests),
        before=dict(before_levels),
        after=dict(after_levels),
        transitions=dict(transitions),
        changes=tuple(changes),
        score_only_changes=score_only,
        current_rules=len(current),
        candidate_rules=len(candidate),
        current_fingerprint=current.fingerprint,
        candidate_fingerprint=candidate.fingerprint,
    )


def _side(result: ScoreResult) -> dict[str, JsonValue]:
    matched: list[JsonValue] = [rule.as_dict() for rule in result.matched]
    return {
        "score": result.score,
        "level": result.level.value,
        "matched": matched,
        "summary": describe(result.explanation),
    }
