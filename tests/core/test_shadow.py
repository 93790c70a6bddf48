"""Shadow testing: a candidate rule set scored against stored requests before it goes live."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from gexdaemon.core.models import DomainContext, PriorityLevel, PriorityRequest, PriorityRule
from gexdaemon.core.scoring import RuleSet, score_request
from gexdaemon.core.settings import PrioritySettings, Settings
from gexdaemon.core.shadow import ShadowReport, shadow_test
from tests.conftest import FIXED_NOW

SETTINGS = PrioritySettings()
CTX = DomainContext(now=FIXED_NOW)


def rule(name: str, condition: str, score: float) -> PriorityRule:
    return PriorityRule(
        name=name,
        condition=condition,
        priority_score=score,
        created_at=FIXED_NOW,
        updated_at=FIXED_NOW,
    )


SEEDS = [rule(s.name, s.condition, s.priority_score) for s in Settings().rules.seed]
CURRENT = RuleSet.from_rules(SEEDS)


def stored(minutes_ago: float, current: RuleSet = CURRENT, **fields: Any) -> PriorityRequest:
    """A request as the daemon would have stored it: scored when it arrived."""
    data: dict[str, Any] = {
        "source_url": "https://cdn.cboe.com/api/x.json",
        "data_type": "real_time",
        "market_symbol": "SPX",
        "requested_at": FIXED_NOW - timedelta(minutes=minutes_ago),
        "metadata": {},
        "origin": "api",
    }
    data.update(fields)
    result = score_request(
        current,
        data_type=data["data_type"],
        market_symbol=data["market_symbol"],
        source_url=data["source_url"],
        requested_at=data["requested_at"],
        metadata=data["metadata"],
        origin=data["origin"],
        reliability_score=1.0,
        now=data["requested_at"],
        settings=SETTINGS,
    )
    return PriorityRequest.parse(
        {
            **data,
            "priority_score": result.score,
            "priority_level": result.level,
            "explanation": result.explanation,
        },
        context=CTX,
    )


def requests() -> list[PriorityRequest]:
    return [
        stored(1, market_symbol="SPX"),  # CRITICAL by the index rule
        stored(2, market_symbol="NDX"),  # CRITICAL
        stored(3, market_symbol="RUT"),  # default real_time 0.6: MEDIUM
        stored(4, market_symbol="AAPL", data_type="historical"),  # LOW
        stored(
            5,
            market_symbol="QQQ",
            data_type="snapshot",
            metadata={"open_interest": 20_000, "volume": 9_000},
        ),
    ]


def shadow_of_the_desk(
    candidate: RuleSet,
    *,
    reliability: dict[str, float] | None = None,
    now: datetime = FIXED_NOW,
) -> ShadowReport:
    """The desk's five requests scored by CURRENT and by `candidate`."""
    return shadow_test(
        requests(),
        CURRENT,
        candidate,
        settings=SETTINGS,
        reliability=reliability or {},
        now=now,
    )


def test_an_identical_candidate_changes_nothing() -> None:
    report = shadow_of_the_desk(RuleSet.from_rules(SEEDS))
    assert report.requests == 5
    assert report.changes == ()
    assert report.score_only_changes == 0
    assert report.before == report.after
    assert report.before == {
        PriorityLevel.CRITICAL: 2,
        PriorityLevel.MEDIUM: 1,
        PriorityLevel.LOW: 1,
        PriorityLevel.HIGH: 1,
    }


def test_a_candidate_that_adds_rut_moves_exactly_that_request() -> None:
    candidate = RuleSet.from_rules(
        [*SEEDS, rule("RUT real time", "data_type == 'real_time' and market_symbol == 'RUT'", 0.88)]
    )
    report = shadow_of_the_desk(candidate)
    (change,) = report.changes
    assert change.market_symbol == "RUT"
    assert (change.before.level, change.after.level) == (
        PriorityLevel.MEDIUM,
        PriorityLevel.CRITICAL,
    )
    assert (change.before.score, change.after.score) == (0.6, 0.88)
    assert [r.name for r in change.after.matched] == ["RUT real time"]
    assert change.before.matched == ()
    assert change.steps == 2
    assert report.promoted == 1 and report.demoted == 0
    assert (
        report.before[PriorityLevel.MEDIUM] == 1 and report.after.get(PriorityLevel.MEDIUM, 0) == 0
    )
    assert report.after[PriorityLevel.CRITICAL] == 3
    assert report.transitions == {(PriorityLevel.MEDIUM, PriorityLevel.CRITICAL): 1}


def test_removing_a_rule_demotes_and_changes_are_ordered_by_size() -> None:
    candidate = RuleSet.from_rules([SEEDS[1], rule("NDX only", "market_symbol == 'NDX'", 0.7)])
    report = shadow_of_the_desk(candidate)
    moved = [(c.market_symbol, c.before.level, c.after.level) for c in report.changes]
    # SPX: CRITICAL -> MEDIUM (2 steps) comes before NDX: CRITICAL -> HIGH (1 step).
    assert moved == [
        ("SPX", PriorityLevel.CRITICAL, PriorityLevel.MEDIUM),
        ("NDX", PriorityLevel.CRITICAL, PriorityLevel.HIGH),
    ]
    assert report.demoted == 2
    assert all(c.steps < 0 for c in report.changes)


def test_a_score_change_inside_a_level_is_counted_not_listed() -> None:
    candidate = RuleSet.from_rules([rule(SEEDS[0].name, SEEDS[0].condition, 0.95), SEEDS[1]])
    report = shadow_of_the_desk(candidate)
    assert report.changes == ()
    assert report.score_only_changes == 2  # SPX and NDX: 0.9 -> 0.95, still CRITICAL


def test_requests_are_rescored_as_of_when_they_arrived() -> None:
    """An age rule must see the age a request had when it was scored, not hours later."""
    candidate = RuleSet.from_rules([*SEEDS, rule("stale", "age_s > 30", 0.99)])
    report = shadow_of_the_desk(candidate, now=FIXED_NOW + timedelta(hours=3))
    assert report.changes == ()


def test_reliability_applies_equally_to_both_sides() -> None:
    candidate = RuleSet.from_rules([*SEEDS, rule("RUT", "market_symbol == 'RUT'", 0.9)])
    report = shadow_of_the_desk(candidate, reliability={"https://cdn.cboe.com": 0.0})
    # Every request loses 0.1 on both sides: SPX and NDX fall to 0.8 (HIGH), QQQ to 0.6
    # (MEDIUM); only RUT changes, from 0.5 (MEDIUM) to 0.8 (HIGH).
    (change,) = report.changes
    assert (change.before.score, change.after.score) == (0.5, 0.8)
    assert report.before == {
        PriorityLevel.HIGH: 2,
        PriorityLevel.MEDIUM: 2,
        PriorityLevel.LOW: 1,
    }


def test_the_report_is_json_for_the_cli_and_the_socket() -> None:
    candidate = RuleSet.from_rules([*SEEDS, rule("RUT", "market_symbol == 'RUT'", 0.9)])
    report = shadow_of_the_desk(candidate)
    data = report.as_dict()
    assert msgspec.json.decode(msgspec.json.encode(data)) == data
    assert data["requests"] == 5 and data["changed"] == 1 and data["promoted"] == 1
    assert data["levels_before"] == {"critical": 2, "high": 1, "medium": 1, "low": 1}
    assert data["levels_after"] == {"critical": 3, "high": 1, "medium": 0, "low": 1}
    assert data["transitions"] == [{"from": "medium", "to": "critical", "requests": 1}]
    (change,) = data["changes"]  # type: ignore[misc]
    assert change["direction"] == "up"  # type: ignore[index]
    assert change["before"]["level"] == "medium"  # type: ignore[index]
    assert change["after"]["matched"][0]["name"] == "RUT"  # type: ignore[index]
    assert change["after"]["summary"].startswith("CRITICAL 0.900")  # type: ignore[index]
    assert data["rules"]["candidate"]["active"] == 3  # type: ignore[index]


def test_an_empty_history_gives_an_empty_report() -> None:
    report = shadow_test([], CURRENT, RuleSet(), settings=SETTINGS, reliability={}, now=FIXED_NOW)
    assert report.requests == 0 and report.changes == ()
    assert report.as_dict()["levels_before"] == {"critical": 0, "high": 0, "medium": 0, "low": 0}
