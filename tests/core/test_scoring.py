"""Scoring: combination, defaults, the reliability adjustment, levels, explanations; and the
processing-time estimates."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.estimates import EstimateState, ProcessingEstimates
from gexdaemon.core.explain import describe
from gexdaemon.core.models import (
    DomainContext,
    GEXDataType,
    PriorityLevel,
    PriorityRequest,
    PriorityRule,
)
from gexdaemon.core.rules import request_names
from gexdaemon.core.scoring import (
    RuleSet,
    ScoreResult,
    combine_scores,
    rescore_request,
    score_request,
    scored_at,
)
from gexdaemon.core.settings import DefaultScores, PrioritySettings, Settings
from tests.conftest import FIXED_NOW

SETTINGS = PrioritySettings()


def rule(
    name: str, condition: str, score: float, *, active: bool = True, version: int = 1
) -> PriorityRule:
    return PriorityRule(
        name=name,
        condition=condition,
        priority_score=score,
        is_active=active,
        created_at=FIXED_NOW,
        updated_at=FIXED_NOW,
        version=version,
    )


def seed_rule_set() -> RuleSet:
    return RuleSet.from_rules(
        [rule(s.name, s.condition, s.priority_score) for s in Settings().rules.seed]
    )


def score(
    rule_set: RuleSet, settings: PrioritySettings = SETTINGS, **overrides: Any
) -> ScoreResult:
    data: dict[str, Any] = {
        "data_type": "real_time",
        "market_symbol": "SPX",
        "source_url": "https://cdn.cboe.com/api/global/delayed_quotes/options/_SPX.json",
        "requested_at": FIXED_NOW - timedelta(seconds=5),
        "metadata": {},
        "origin": "api",
        "reliability_score": 1.0,
        "now": FIXED_NOW,
    }
    data.update(overrides)
    return score_request(rule_set, settings=settings, **data)


# --- the seed's rules, end to end -------------------------------------------------------


def test_the_seed_index_rule_makes_real_time_spx_critical() -> None:
    result = score(seed_rule_set())
    assert result.score == 0.9
    assert result.level is PriorityLevel.CRITICAL
    (matched,) = result.explanation["matched"]  # type: ignore[misc]
    assert matched["name"] == "current-day index data"  # type: ignore[index]
    assert matched["version"] == 1  # type: ignore[index]
    assert result.rule_versions == {matched["rule_id"]: 1}  # type: ignore[index]


def test_the_seed_volume_rule_and_the_defaults() -> None:
    rs = seed_rule_set()
    busy = score(rs, data_type="snapshot", metadata={"open_interest": 20_000, "volume": 6_000})
    assert (busy.score, busy.level) == (0.7, PriorityLevel.HIGH)
    quiet = score(rs, data_type="snapshot", metadata={"open_interest": 20_000})
    assert (quiet.score, quiet.level) == (0.45, PriorityLevel.MEDIUM)
    assert quiet.explanation["base"] == {
        "score": 0.45,
        "from": "default_score",
        "data_type": "snapshot",
    }
    assert quiet.rule_versions == {}
    old = score(rs, data_type="historical", market_symbol="RUT")
    assert (old.score, old.level) == (0.2, PriorityLevel.LOW)


def test_the_highest_matching_score_wins_and_all_matches_are_listed() -> None:
    rs = RuleSet.from_rules(
        [
            rule("low", "volume > 1", 0.5),
            rule("high", "volume > 10", 0.8),
            rule("never", "volume > 1000", 0.99),
        ]
    )
    result = score(rs, metadata={"volume": 50})
    assert result.score == 0.8
    assert [m["name"] for m in result.explanation["matched"]] == ["high", "low"]  # type: ignore[index, union-attr]
    assert result.explanation["base"] == {"score": 0.8, "from": "rules", "combine": "max"}
    assert len(result.rule_versions) == 2


def test_inactive_rules_are_never_evaluated() -> None:
    rs = RuleSet.from_rules(
        [rule("off", "volume > 1", 0.99, active=False), rule("on", "volume > 1", 0.5)]
    )
    assert len(rs) == 1 and rs.inactive == 1
    assert score(rs, metadata={"volume": 5}).score == 0.5


@pytest.mark.parametrize(
    ("how", "expected"),
    [("max", 0.9), ("mean", 0.6), ("weighted_max", (0.81 + 0.09) / 1.2)],
)
def test_combine_modes(how: str, expected: float) -> None:
    rs = RuleSet.from_rules([rule("a", "volume > 1", 0.9), rule("b", "volume > 1", 0.3)])
    settings = PrioritySettings(combine=how, reliability_weight=0)  # type: ignore[arg-type]
    assert score(rs, settings, metadata={"volume": 2}).score == pytest.approx(expected)
    assert combine_scores([0.9, 0.3], how) == pytest.approx(expected)


def test_combine_scores_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine_scores([], "max")
    with pytest.raises(ValueError, match="unknown combine"):
        combine_scores([0.5], "median")
    assert combine_scores([0.0, 0.0], "weighted_max") == 0.0


# --- reliability, clamping, rounding, thresholds -------------------------------------


def test_an_unreliable_source_scores_lower_by_weight_times_unreliability() -> None:
    rs = seed_rule_set()
    reliable = score(rs, reliability_score=1.0)
    shaky = score(rs, reliability_score=0.4)
    assert shaky.score == pytest.approx(0.9 - 0.1 * 0.6)
    assert shaky.score < reliable.score
    assert shaky.level is PriorityLevel.HIGH  # pushed out of CRITICAL
    detail = shaky.explanation["reliability"]
    assert detail == {"score": 0.4, "weight": 0.1, "adjustment": -0.06}
    assert shaky.adjustment == pytest.approx(-0.06)
    no_weight = PrioritySettings(reliability_weight=0)
    assert score(rs, no_weight, reliability_score=0.0).score == 0.9


@settings(max_examples=200, deadline=None)
@given(r1=st.floats(0, 1), r2=st.floats(0, 1), weight=st.floats(0, 1))
def test_more_reliable_never_scores_lower(r1: float, r2: float, weight: float) -> None:
    rs = seed_rule_set()
    settings = PrioritySettings(reliability_weight=weight)
    low, high = sorted((r1, r2))
    assert (
        score(rs, settings, reliability_score=low).score
        <= score(rs, settings, reliability_score=high).score
    )


@pytest.mark.parametrize("broken", [math.nan, math.inf, -math.inf])
def test_a_broken_reliability_figure_counts_as_reliable(broken: float) -> None:
    assert score(seed_rule_set(), reliability_score=broken).score == 0.9


def test_scores_are_clamped_and_say_so() -> None:
    rs = RuleSet.from_rules([rule("tiny", "volume > 1", 0.05)])
    result = score(
        rs, PrioritySettings(reliability_weight=0.5), metadata={"volume": 2}, reliability_score=0.0
    )
    assert result.score == 0.0
    assert result.explanation["clamped"] is True
    assert score(seed_rule_set()).explanation["clamped"] is False
    assert score(seed_rule_set(), reliability_score=1.7).score == 0.9  # reliability clamped to 1


def test_a_score_on_a_threshold_lands_on_that_level() -> None:
    # 0.95 - 0.1 * (1 - 0.0) is 0.8499999999999999 in floating point; rounding makes it 0.85.
    rs = RuleSet.from_rules([rule("edge", "volume > 1", 0.95)])
    result = score(rs, metadata={"volume": 2}, reliability_score=0.0)
    assert result.score == 0.85
    assert result.level is PriorityLevel.CRITICAL


def test_levels_follow_the_configured_thresholds() -> None:
    settings = PrioritySettings(critical_threshold=0.95, high_threshold=0.9, medium_threshold=0.1)
    result = score(seed_rule_set(), settings)
    assert result.level is PriorityLevel.HIGH
    assert result.explanation["thresholds"] == {"critical": 0.95, "high": 0.9, "medium": 0.1}
    assert settings.thresholds() == result.explanation["thresholds"]
    defaults = PrioritySettings(default_scores=DefaultScores(historical=0.05))
    assert score(seed_rule_set(), defaults, data_type="historical").level is PriorityLevel.LOW


# --- explanations ------------------------------------------------------------------------


def test_the_explanation_carries_everything_a_trader_needs_and_is_json() -> None:
    rs = seed_rule_set()
    result = score(rs, reliability_score=0.8, metadata={"open_interest": 20_000, "volume": 6_000})
    e = result.explanation
    assert set(e) >= {
        "scored_at",
        "matched",
        "base",
        "reliability",
        "score",
        "level",
        "thresholds",
        "rules",
    }
    assert e["score"] == result.score == 0.88
    assert e["level"] == "critical"
    assert e["scored_at"] == FIXED_NOW.isoformat()
    assert e["rules"] == {"active": 2, "fingerprint": rs.fingerprint}
    assert [m["score"] for m in e["matched"]] == [0.9, 0.7]  # type: ignore[index, union-attr]
    assert msgspec.json.decode(msgspec.json.encode(e)) == e
    # The domain model stores it as is.
    request = PriorityRequest.parse(
        {
            "source_url": "https://cdn.cboe.com/x.json",
            "data_type": "real_time",
            "market_symbol": "SPX",
            "requested_at": FIXED_NOW,
            "priority_score": result.score,
            "priority_level": result.level,
            "explanation": e,
        },
        context=DomainContext(now=FIXED_NOW),
    )
    assert request.explanation == e
    text = describe(e)
    assert text.startswith("CRITICAL 0.880: 2 rules matched; the highest is 0.90")
    assert "'current-day index data' v1" in text
    assert "reliability 0.80 took off 0.020" in text


def test_describe_reads_every_case_and_tolerates_missing_keys() -> None:
    rs = seed_rule_set()
    assert "rule 'current-day index data' (v1) matched with 0.90" in describe(score(rs).explanation)
    assert "fully reliable" in describe(score(rs).explanation)
    default = describe(score(rs, data_type="historical").explanation)
    assert "no rule matched, so the historical default 0.20 applies" in default
    off = describe(
        score(rs, PrioritySettings(reliability_weight=0), reliability_score=0.2).explanation
    )
    assert "adjustment is off" in off
    assert describe({}).startswith("? 0.000")


def test_explanations_do_not_share_state_between_requests() -> None:
    rs = seed_rule_set()
    first = score(rs)
    first.explanation["matched"][0]["name"] = "tampered"  # type: ignore[index]
    assert score(rs).explanation["matched"][0]["name"] == "current-day index data"  # type: ignore[index]


def test_scoring_is_deterministic_and_uses_the_given_clock() -> None:
    rs = RuleSet.from_rules([rule("stale", "age_s > 60", 0.95)])
    fresh = score(rs, now=FIXED_NOW)
    late = score(rs, now=FIXED_NOW + timedelta(minutes=2))
    assert fresh.level is not late.level
    assert score(rs, now=FIXED_NOW) == fresh


def test_rule_set_fingerprint_follows_ids_and_versions() -> None:
    a = rule("a", "volume > 1", 0.5)
    b = a.evolve(version=2)
    assert RuleSet.from_rules([a]).fingerprint != RuleSet.from_rules([b]).fingerprint
    assert RuleSet.from_rules([a]).fingerprint == RuleSet.from_rules([a]).fingerprint


# --- the equality index gives the same answer as evaluating everything ---------------------

SYMBOLS = ["SPX", "NDX", "RUT", "AAPL"]
conditions = st.one_of(
    st.builds(lambda s: f"market_symbol == '{s}'", st.sampled_from(SYMBOLS)),
    st.builds(
        lambda ss, v: f"market_symbol in {ss!r} and volume > {v}",
        st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3),
        st.integers(0, 10),
    ),
    st.builds(lambda t: f"data_type == '{t}'", st.sampled_from([t.value for t in GEXDataType])),
    st.builds(lambda d: f"desk == '{d}' and volume > 2", st.sampled_from(["vol", "flow"])),
    st.builds(lambda v: f"volume > {v} or desk == 'vol'", st.integers(0, 10)),
    st.just("not (market_symbol == 'SPX')"),
    st.just("desk in ['vol', 1, True]"),
)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(conditions, min_size=1, max_size=12),
    symbol=st.sampled_from(SYMBOLS),
    data_type=st.sampled_from(list(GEXDataType)),
    desk=st.one_of(st.none(), st.sampled_from(["vol", "flow", 1, True, ["vol"]])),
    volume=st.one_of(st.none(), st.integers(0, 12)),
)
def test_the_index_never_changes_which_rules_match(
    texts: list[str], symbol: str, data_type: GEXDataType, desk: object, volume: int | None
) -> None:
    rs = RuleSet.from_rules(
        [rule(f"r{i}", t, round(0.1 + 0.07 * i, 2)) for i, t in enumerate(texts)]
    )
    metadata = {k: v for k, v in {"desk": desk, "volume": volume}.items() if v is not None}
    names = request_names(
        data_type=data_type.value,
        market_symbol=symbol,
        source_url="https://cdn.cboe.com/x",
        requested_at=FIXED_NOW,
        metadata=metadata,
        origin="api",
        reliability_score=1.0,
        now=FIXED_NOW,
    )
    assert rs.matching(names) == rs.matching_all(names)


# --- re-scoring stored requests ---------------------------------------------------------


def stored(explanation: dict[str, Any] | None = None, **overrides: Any) -> PriorityRequest:
    data: dict[str, Any] = {
        "source_url": "https://cdn.cboe.com/x.json",
        "data_type": "real_time",
        "market_symbol": "SPX",
        "requested_at": FIXED_NOW - timedelta(minutes=10),
        "priority_score": 0.5,
        "priority_level": "medium",
        "explanation": explanation or {},
    }
    data.update(overrides)
    return PriorityRequest.parse(data, context=DomainContext(now=FIXED_NOW))


def test_rescoring_happens_as_of_the_original_scoring_time() -> None:
    rs = RuleSet.from_rules([rule("stale", "age_s > 60", 0.95)])
    at_request = stored(explanation={"scored_at": (FIXED_NOW - timedelta(minutes=10)).isoformat()})
    assert scored_at(at_request) == FIXED_NOW - timedelta(minutes=10)
    assert rescore_request(rs, at_request, reliability_score=1.0, settings=SETTINGS).score == 0.6
    later = stored(explanation={"scored_at": (FIXED_NOW - timedelta(minutes=5)).isoformat()})
    assert rescore_request(rs, later, reliability_score=1.0, settings=SETTINGS).score == 0.95
    garbled = stored(explanation={"scored_at": "yesterday"})
    assert scored_at(garbled) == garbled.requested_at
    assert scored_at(stored()) == FIXED_NOW - timedelta(minutes=10)


# --- processing estimates ---------------------------------------------------------------

AT = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def test_estimates_start_from_the_default_then_follow_the_moving_average() -> None:
    book = ProcessingEstimates.from_settings(
        PrioritySettings(estimate_default_s=5.0, estimate_alpha=0.5)
    )
    key = "https://cdn.cboe.com"
    assert book.estimate(key, "real_time") == 5.0
    first = book.observe(key, GEXDataType.REAL_TIME, 2.0, AT)
    assert (first.ema_s, first.samples) == (2.0, 1)  # the first sample replaces the guess
    book.observe(key, "real_time", 4.0, AT)
    assert book.estimate(key, "real_time") == 3.0
    book.observe(key, "real_time", 1.0, AT)
    assert book.estimate(key, GEXDataType.REAL_TIME) == 2.0
    assert book.estimate(key, "historical") == 5.0  # other types keep their own average
    assert book.estimate("https://other.example", "real_time") == 5.0
    assert book.state(key, "real_time") == EstimateState(key, "real_time", 2.0, 3, AT)
    unstamped = book.observe(key, "snapshot", 1.0)
    assert unstamped.updated_at is None  # the storage adapter stamps it when saving


def test_estimates_export_import_and_changed_since_last_save() -> None:
    book = ProcessingEstimates(default_s=5.0, alpha=0.2)
    book.observe("a", "snapshot", 1.0, AT)
    book.observe("b", "historical", 9.0, AT)
    assert [s.source_key for s in book.take_changed()] == ["a", "b"]
    assert book.take_changed() == []
    book.observe("a", "snapshot", 2.0, AT)
    assert [s.source_key for s in book.take_changed()] == ["a"]
    saved = book.export_state()
    restored = ProcessingEstimates(default_s=5.0, alpha=0.2)
    restored.import_state(saved)
    assert restored.export_state() == saved
    assert restored.take_changed() == []  # what was loaded is already saved
    assert restored.estimate("a", "snapshot") == pytest.approx(0.2 * 2.0 + 0.8 * 1.0)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_estimates_refuse_impossible_durations(bad: float) -> None:
    book = ProcessingEstimates(default_s=5.0, alpha=0.2)
    with pytest.raises(InvalidInput, match="non-negative"):
        book.observe("a", "snapshot", bad, AT)
    with pytest.raises(InvalidInput, match="not a valid average"):
        book.import_state([EstimateState("a", "snapshot", bad, 1, AT)])
    with pytest.raises(ValueError, match="is not a valid GEXDataType"):
        book.estimate("a", "weekly")


def test_estimates_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ProcessingEstimates(default_s=5.0, alpha=0.0)
    with pytest.raises(ValueError, match="default_s"):
        ProcessingEstimates(default_s=0.0, alpha=0.5)


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(st.floats(0, 3600), min_size=1, max_size=30), alpha=st.floats(0.01, 1.0))
def test_the_average_stays_within_the_observed_range(samples: list[float], alpha: float) -> None:
    book = ProcessingEstimates(default_s=5.0, alpha=alpha)
    for s in samples:
        book.observe("a", "snapshot", s, AT)
    estimate = book.estimate("a", "snapshot")
    assert min(samples) - 1e-9 <= estimate <= max(samples) + 1e-9


def test_rule_ids_in_results_are_the_rules_ids() -> None:
    r = rule("one", "volume > 1", 0.5, version=3)
    result = score(RuleSet.from_rules([r]), metadata={"volume": 2})
    assert result.rule_versions == {str(r.rule_id): 3}
    assert uuid.UUID(result.explanation["matched"][0]["rule_id"]) == r.rule_id  # type: ignore[index, arg-type]


# --- what the mutation run found untested (docs/mutation.md) -----------------------------


@pytest.mark.parametrize("below", [-0.5, -1, -1e9])
def test_a_negative_reliability_clamps_to_zero_and_takes_the_full_weight(below: float) -> None:
    settings_ = PrioritySettings(reliability_weight=0.3)
    result = score(RuleSet(), settings_, reliability_score=below)
    assert result.explanation["reliability"]["score"] == 0.0
    assert result.adjustment == pytest.approx(-0.3)
    assert result.score == pytest.approx(0.3)  # real_time default 0.6 - 0.3


def test_an_integer_reliability_is_a_figure_not_a_broken_value() -> None:
    settings_ = PrioritySettings(reliability_weight=0.2)
    assert score(RuleSet(), settings_, reliability_score=0).score == pytest.approx(0.4)
    assert score(RuleSet(), settings_, reliability_score=1).score == pytest.approx(0.6)


@pytest.mark.parametrize("broken", [None, "0.2", [0.5]])
def test_a_reliability_that_is_not_a_number_counts_as_reliable(broken: object) -> None:
    result = score(RuleSet(), reliability_score=broken)
    assert result.explanation["reliability"]["score"] == 1.0
    assert result.adjustment == 0.0
    assert result.score == 0.6


def test_a_fully_reliable_source_shows_an_adjustment_of_plain_zero() -> None:
    # -weight * 0.0 is -0.0 in floats; a trader should read 0.0 in the explanation.
    result = score(RuleSet(), reliability_score=1.0)
    text = msgspec.json.encode(result.explanation["reliability"]).decode()
    assert '"adjustment":0.0' in text
    assert math.copysign(1.0, result.explanation["reliability"]["adjustment"]) == 1.0


def test_a_rule_whose_condition_fails_to_evaluate_does_not_match() -> None:
    # open_interest is text here: `open_interest > 10` raises inside the rule; no match.
    rs = RuleSet.from_rules([rule("oi", "open_interest > 10", 0.9)])
    result = score(rs, metadata={"open_interest": "lots"})
    assert result.matched == ()
    assert result.score == 0.6


def test_every_rules_names_are_computed_not_only_the_last_ones() -> None:
    rs = RuleSet.from_rules(
        [
            rule("stale", "age_s > 1", 0.9),
            rule("host", "source_host == 'cdn.cboe.com'", 0.7),
            rule("late", "ny_hour >= 0", 0.5),
        ]
    )
    result = score(rs)
    assert [r.name for r in result.matched] == ["stale", "host", "late"]
    assert result.base_score == 0.9


@pytest.mark.parametrize(
    ("condition", "overrides"),
    [
        ("'cboe' in source_url", {}),
        ("origin == 'drop'", {"origin": "drop"}),
        ("reliability_score < 0.5", {"reliability_score": 0.25}),
    ],
)
def test_rules_see_the_requests_url_origin_and_reliability(
    condition: str, overrides: dict[str, Any]
) -> None:
    rs = RuleSet.from_rules([rule("r", condition, 0.95)])
    assert [r.name for r in score(rs, **overrides).matched] == ["r"]


def test_rescoring_sees_the_stored_url_and_origin_and_honours_an_explicit_instant() -> None:
    rs = RuleSet.from_rules(
        [rule("cboe", "'cboe' in source_url", 0.8), rule("drop", "origin == 'drop'", 0.9)]
    )
    request = stored(origin="drop")
    again = rescore_request(rs, request, reliability_score=1.0, settings=SETTINGS)
    assert [r.name for r in again.matched] == ["drop", "cboe"]
    stale = RuleSet.from_rules([rule("stale", "age_s > 3600", 0.95)])
    later = FIXED_NOW + timedelta(hours=2)
    assert rescore_request(stale, request, reliability_score=1.0, settings=SETTINGS).score == 0.6
    assert (
        rescore_request(stale, request, reliability_score=1.0, settings=SETTINGS, at=later).score
        == 0.95
    )
    assert (
        rescore_request(
            stale, request, reliability_score=1.0, settings=SETTINGS, at=later
        ).explanation["scored_at"]
        == later.isoformat()
    )


def test_scored_at_is_written_in_utc_whatever_the_clocks_zone() -> None:
    from zoneinfo import ZoneInfo

    eastern = FIXED_NOW.astimezone(ZoneInfo("America/New_York"))
    result = score(RuleSet(), now=eastern)
    assert result.explanation["scored_at"] == FIXED_NOW.isoformat()
    assert result.explanation["scored_at"].endswith("+00:00")


def test_the_result_carries_the_base_before_the_adjustment() -> None:
    rs = RuleSet.from_rules([rule("r", "market_symbol == 'SPX'", 0.7)])
    result = score(rs, settings=PrioritySettings(reliability_weight=0.5), reliability_score=0.5)
    assert result.base_score == 0.7
    assert result.adjustment == pytest.approx(-0.25)
    assert result.score == pytest.approx(0.45)


def test_an_empty_rule_set_counts_no_inactive_rules_and_has_a_short_fingerprint() -> None:
    empty = RuleSet()
    assert len(empty) == 0
    assert empty.inactive == 0
    assert len(empty.fingerprint) == 16
    assert len(seed_rule_set().fingerprint) == 16


def test_combine_scores_with_nothing_to_combine_says_so() -> None:
    with pytest.raises(ValueError, match=r"^combine_scores needs at least one score$"):
        combine_scores([], "max")


def test_a_rule_that_blows_up_on_pathological_metadata_does_not_match() -> None:
    deep: list[object] = []
    other: list[object] = []
    for _ in range(100_000):
        deep = [deep]
        other = [other]
    rs = RuleSet.from_rules([rule("same", "a == b", 0.9)])
    result = score(rs, metadata={"a": deep, "b": other})  # comparing them overflows the stack
    assert result.matched == ()
    assert result.score == 0.6


@pytest.mark.parametrize("desk", [None, ["vol"]])
def test_a_request_missing_one_indexed_name_still_meets_rules_filed_under_others(
    desk: object,
) -> None:
    rs = RuleSet.from_rules(
        [rule("vol desk", "desk == 'vol'", 0.9), rule("spx", "market_symbol == 'SPX'", 0.5)]
    )
    metadata = {} if desk is None else {"desk": desk}
    assert [r.name for r in score(rs, metadata=metadata).matched] == ["spx"]
    assert [r.name for r in score(rs, metadata={"desk": "vol"}).matched] == ["vol desk", "spx"]


def test_an_unknown_data_type_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        score(RuleSet(), data_type="bogus")
