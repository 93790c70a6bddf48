"""Every validation rule of the seed's data model, and the job state machine."""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.errors import IllegalTransition, InvalidInput, RetryLimitReached
from gexdaemon.core.models import (
    MAX_RETRIES,
    TRANSITIONS,
    CircuitState,
    DataSource,
    DomainContext,
    GEXDataType,
    GEXSnapshot,
    GEXStrike,
    JobStatus,
    PriorityLevel,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
    RequestSubmission,
    base_url_of,
)
from tests.conftest import FIXED_NOW

CTX = DomainContext(now=FIXED_NOW)


def request(**overrides: object) -> PriorityRequest:
    data: dict[str, object] = {
        "source_url": "https://cdn.cboe.com/api/global/delayed_quotes/options/_SPX.json",
        "data_type": "real_time",
        "market_symbol": "SPX",
        "requested_at": FIXED_NOW - timedelta(seconds=5),
        "priority_score": 0.9,
        "priority_level": "critical",
    }
    data.update(overrides)
    return PriorityRequest.parse(data, context=CTX)


def problems(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.details}


# --- PriorityRequest ----------------------------------------------------------------


def test_a_valid_request_normalises_symbol_and_time() -> None:
    r = request(market_symbol=" _spx ", requested_at="2026-11-26T09:59:00-05:00")
    assert r.market_symbol == "SPX"
    assert r.requested_at == datetime(2026, 11, 26, 14, 59, tzinfo=UTC)
    assert r.requested_at.tzinfo is UTC
    assert r.data_type is GEXDataType.REAL_TIME


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x.json", "http:// or https://"),
        ("https:///no-host", "must name a host"),
        ("not a url", "http:// or https://"),
        ("file:///tmp/x.json", "drop folder"),
        ("https://example.com:0/x", "port 0"),
        ("https://example.com:99999/x", "not a valid URL"),
        ("https://" + "a" * 3000 + ".com/", "longer than"),
    ],
)
def test_source_url_must_be_http_or_https(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        request(source_url=url)
    assert reason in problems(exc)["source_url"]


def test_file_urls_only_with_the_drop_folder_context() -> None:
    ctx = DomainContext(now=FIXED_NOW, allow_file_urls=True)
    data = request().model_dump() | {"source_url": "file:///data/drop/SPX_chain.csv"}
    assert PriorityRequest.parse(data, context=ctx).source_url.startswith("file://")
    with pytest.raises(InvalidInput):
        PriorityRequest.parse(data | {"source_url": "file://relative.csv"}, context=ctx)


@pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf, -math.inf])
def test_priority_score_must_be_in_unit_interval(score: float) -> None:
    with pytest.raises(InvalidInput) as exc:
        request(priority_score=score)
    assert "priority_score" in problems(exc)


@given(st.floats(allow_nan=True, allow_infinity=True))
@settings(max_examples=200, deadline=None)
def test_score_accepted_exactly_when_finite_and_in_range(score: float) -> None:
    ok = math.isfinite(score) and 0.0 <= score <= 1.0
    try:
        request(priority_score=score)
    except InvalidInput:
        assert not ok
    else:
        assert ok


def test_requested_at_cannot_be_in_the_future() -> None:
    with pytest.raises(InvalidInput) as exc:
        request(requested_at=FIXED_NOW + timedelta(seconds=1))
    assert "in the future" in problems(exc)["requested_at"]
    assert request(requested_at=FIXED_NOW).requested_at == FIXED_NOW


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        request(requested_at=datetime(2026, 11, 26, 9, 0))
    assert "timezone" in problems(exc)["requested_at"]


@given(
    st.datetimes(
        timezones=st.just(UTC), min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
    )
)
@settings(max_examples=150, deadline=None)
def test_requested_at_accepted_iff_not_after_now(at: datetime) -> None:
    try:
        request(requested_at=at)
    except InvalidInput:
        assert at > FIXED_NOW
    else:
        assert at <= FIXED_NOW


@pytest.mark.parametrize(
    ("symbol", "reason"),
    [
        ("", "1 to 10 characters"),
        ("ABCDEFGHIJK", "1 to 10 characters"),
        ("1SPX", "must be a ticker"),
        ("SP X", "must be a ticker"),
        ("ZZZZ", "not a known optionable symbol"),
    ],
)
def test_market_symbol_rules(symbol: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        request(market_symbol=symbol)
    assert reason in problems(exc)["market_symbol"]


def test_config_can_extend_or_open_the_symbol_list() -> None:
    data = request().model_dump() | {"market_symbol": "ZZZZ"}
    extended = DomainContext(now=FIXED_NOW, optionable=frozenset({"ZZZZ"}))
    assert PriorityRequest.parse(data, context=extended).market_symbol == "ZZZZ"
    anything = DomainContext(now=FIXED_NOW, allow_any_symbol=True)
    assert PriorityRequest.parse(data, context=anything).market_symbol == "ZZZZ"


def test_metadata_limits_and_unknown_fields() -> None:
    with pytest.raises(InvalidInput) as exc:
        request(metadata={f"k{i}": i for i in range(65)})
    assert "at most 64" in problems(exc)["metadata"]
    with pytest.raises(InvalidInput) as exc:
        request(metadata={"blob": "x" * 20_000})
    assert "bytes as JSON" in problems(exc)["metadata"]
    with pytest.raises(InvalidInput) as exc:
        request(colour="red")
    assert problems(exc)["colour"] == "unknown field"


def test_errors_list_every_bad_field_with_its_path() -> None:
    with pytest.raises(InvalidInput) as exc:
        RequestSubmission.parse(
            {
                "source_url": "gopher://x",
                "data_type": "weekly",
                "market_symbol": "ZZZZ",
                "metadata": [],
            },
            context=CTX,
            what="requests[3]",
        )
    found = problems(exc)
    assert set(found) == {"source_url", "data_type", "market_symbol", "metadata"}
    assert str(exc.value).startswith("requests[3] is invalid: ")


def test_negative_estimate_and_deadline_before_request_refused() -> None:
    with pytest.raises(InvalidInput):
        request(estimated_processing_time=timedelta(seconds=-1))
    with pytest.raises(InvalidInput):
        request(deadline=FIXED_NOW - timedelta(hours=1))


# --- ProcessingJob and the state machine --------------------------------------------


def queued_job(**overrides: object) -> ProcessingJob:
    job, event = ProcessingJob.for_request(request(), FIXED_NOW, context=CTX)
    assert event.to_status is JobStatus.QUEUED and event.from_status is None and event.seq == 1
    return job.evolve(context=CTX, **overrides) if overrides else job


@pytest.mark.parametrize("deadline", [None, FIXED_NOW + timedelta(seconds=30)])
@pytest.mark.parametrize("at", [FIXED_NOW, FIXED_NOW - timedelta(days=3)])
def test_intake_builds_the_same_job_as_the_validated_path(
    deadline: datetime | None, at: datetime
) -> None:
    """ProcessingJob.queued skips validation on the hot path; it must not skip a rule."""
    req = request(deadline=deadline)
    job_id = uuid.uuid4()
    built, built_event = ProcessingJob.queued(req, at, job_id=job_id)
    checked, checked_event = ProcessingJob.for_request(req, at, job_id=job_id, context=CTX)
    assert built.model_dump() == checked.model_dump()
    assert built_event.model_dump() == checked_event.model_dump()
    valid = ProcessingJob.parse(built.model_dump(exclude={"processing_duration"}), context=CTX)
    assert valid == built  # and it passes every check of the model


def test_assembled_models_are_what_pydantic_would_construct() -> None:
    """`assembled` stands in for model_construct on the hot path: same fields, same state."""
    from gexdaemon.core.models import RequestSubmission, assembled

    job, event = ProcessingJob.for_request(request(), FIXED_NOW, context=CTX)
    sub = RequestSubmission.parse(
        {"source_url": "http://a.example/x", "data_type": "snapshot", "market_symbol": "SPX"},
        context=CTX,
    )
    for model in (request(), job, event, sub):
        values = dict(model.__dict__)
        ours = assembled(type(model), dict(values))
        theirs = type(model).model_construct(**values)
        assert ours == theirs == model
        assert ours.model_fields_set == theirs.model_fields_set
        assert ours.model_dump() == theirs.model_dump()
        assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
        assert ours.__pydantic_private__ == theirs.__pydantic_private__


def reach(status: JobStatus) -> ProcessingJob:
    job = queued_job()
    t = FIXED_NOW
    path = {
        JobStatus.QUEUED: [],
        JobStatus.PROCESSING: [JobStatus.PROCESSING],
        JobStatus.COMPLETED: [JobStatus.PROCESSING, JobStatus.COMPLETED],
        JobStatus.FAILED: [JobStatus.PROCESSING, JobStatus.FAILED],
        JobStatus.CANCELLED: [JobStatus.CANCELLED],
    }[status]
    for step in path:
        t += timedelta(seconds=1)
        job, _ = job.transition(step, t, reason="boom" if step is JobStatus.FAILED else "")
    return job


SEED_TRANSITIONS = {
    (JobStatus.QUEUED, JobStatus.PROCESSING),
    (JobStatus.PROCESSING, JobStatus.COMPLETED),
    (JobStatus.PROCESSING, JobStatus.FAILED),
    (JobStatus.FAILED, JobStatus.QUEUED),
}
CANCELS = {(JobStatus.QUEUED, JobStatus.CANCELLED), (JobStatus.PROCESSING, JobStatus.CANCELLED)}
# A queued job whose source stays down past its deadline fails then, with the reason.
EXPIRED = {(JobStatus.QUEUED, JobStatus.FAILED)}


def test_the_state_machine_is_exactly_the_seed_plus_cancel_and_expiry() -> None:
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert allowed == SEED_TRANSITIONS | CANCELS | EXPIRED


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_every_transition_is_allowed_or_refused_naming_both_states(
    current: JobStatus, target: JobStatus
) -> None:
    job = reach(current)
    at = FIXED_NOW + timedelta(seconds=10)
    if (current, target) in SEED_TRANSITIONS | CANCELS | EXPIRED:
        moved, event = job.transition(target, at, reason="why")
        assert moved.status is target
        assert (event.from_status, event.to_status) == (current, target)
        assert event.seq == moved.version == job.version + 1
    else:
        with pytest.raises(IllegalTransition) as exc:
            job.transition(target, at)
        assert current.value.upper() in str(exc.value)
        assert target.value.upper() in str(exc.value)


def test_a_traders_retry_starts_a_new_cycle_of_retries() -> None:
    job = reach(JobStatus.FAILED)
    at = FIXED_NOW + timedelta(seconds=10)
    for _ in range(MAX_RETRIES):
        job, _ = job.transition(JobStatus.QUEUED, at)
        job, _ = job.transition(JobStatus.PROCESSING, at)
        job, _ = job.transition(JobStatus.FAILED, at, reason="boom")
    with pytest.raises(RetryLimitReached):
        job.transition(JobStatus.QUEUED, at)
    again, event = job.transition(JobStatus.QUEUED, at, new_cycle=True, reason="by a trader")
    assert again.retry_count == 0 and again.status is JobStatus.QUEUED
    assert event.reason == "by a trader"


def test_processing_duration_is_derived() -> None:
    job = reach(JobStatus.PROCESSING)
    assert job.processing_duration is None
    done, _ = job.transition(JobStatus.COMPLETED, job.started_at + timedelta(seconds=2.5))  # type: ignore[operator]
    assert done.processing_duration == timedelta(seconds=2.5)
    assert done.model_dump()["processing_duration"] == timedelta(seconds=2.5)
    with pytest.raises(InvalidInput):  # it cannot be set, so it cannot be stored inconsistent
        done.evolve(processing_duration=timedelta(hours=1))


def test_times_must_be_ordered() -> None:
    job = queued_job()
    with pytest.raises(InvalidInput) as exc:
        job.evolve(status=JobStatus.PROCESSING, started_at=job.requested_at - timedelta(seconds=1))
    assert "started_at must be at or after" in str(exc.value)
    running = reach(JobStatus.PROCESSING)
    with pytest.raises(InvalidInput) as exc:
        running.transition(JobStatus.COMPLETED, running.started_at - timedelta(seconds=1))  # type: ignore[operator]
    assert "completed_at must be at or after started_at" in str(exc.value)


def test_retries_count_up_to_three_then_stop() -> None:
    job = reach(JobStatus.FAILED)
    t = FIXED_NOW + timedelta(minutes=1)
    for expected in (1, 2, 3):
        job, _ = job.transition(JobStatus.QUEUED, t, reason="retry")
        assert job.retry_count == expected and job.started_at is None and job.completed_at is None
        assert job.error_message == "boom"  # the last failure stays visible while it waits
        t += timedelta(seconds=1)
        job, _ = job.transition(JobStatus.PROCESSING, t)
        t += timedelta(seconds=1)
        job, _ = job.transition(JobStatus.FAILED, t, reason="boom")
    with pytest.raises(RetryLimitReached) as exc:
        job.transition(JobStatus.QUEUED, t)
    assert "3 times" in str(exc.value)
    with pytest.raises(InvalidInput):
        job.evolve(retry_count=4)


def test_a_lower_configured_retry_limit_applies() -> None:
    strict = DomainContext(now=FIXED_NOW, max_retries=1)
    job = reach(JobStatus.FAILED)
    job, _ = job.transition(JobStatus.QUEUED, FIXED_NOW + timedelta(seconds=5), context=strict)
    job, _ = job.transition(JobStatus.PROCESSING, FIXED_NOW + timedelta(seconds=6), context=strict)
    job, _ = job.transition(
        JobStatus.FAILED, FIXED_NOW + timedelta(seconds=7), reason="x", context=strict
    )
    with pytest.raises(RetryLimitReached):
        job.transition(JobStatus.QUEUED, FIXED_NOW + timedelta(seconds=8), context=strict)


def test_failed_job_must_say_why() -> None:
    running = reach(JobStatus.PROCESSING)
    failed, _ = running.transition(JobStatus.FAILED, FIXED_NOW + timedelta(seconds=3))
    assert failed.error_message == "failed"
    with pytest.raises(InvalidInput):
        failed.evolve(error_message=None)


@given(st.lists(st.sampled_from(list(JobStatus)), max_size=25))
@settings(max_examples=200, deadline=None)
def test_random_walks_obey_the_machine_and_its_invariants(steps: list[JobStatus]) -> None:
    job = queued_job()
    t = FIXED_NOW
    for target in steps:
        t += timedelta(seconds=1)
        try:
            nxt, event = job.transition(target, t, reason="r")
        except RetryLimitReached:
            assert job.retry_count == 3 and target is JobStatus.QUEUED
            continue
        except IllegalTransition:
            assert target not in TRANSITIONS[job.status]
            continue
        assert target in TRANSITIONS[job.status]
        assert event.seq == nxt.version
        job = nxt
        assert 0 <= job.retry_count <= 3
        if job.started_at and job.completed_at:
            assert job.completed_at >= job.started_at >= job.requested_at


# --- DataSource ----------------------------------------------------------------------


def source(**overrides: object) -> DataSource:
    data: dict[str, object] = {
        "base_url": "https://CDN.cboe.com:443",
        "name": "CBOE delayed quotes",
        "created_at": FIXED_NOW,
        "updated_at": FIXED_NOW,
    }
    data.update(overrides)
    return DataSource.parse(data, context=CTX)


def test_base_url_is_normalised_and_must_be_a_base() -> None:
    assert source().base_url == "https://cdn.cboe.com"
    assert base_url_of("http://127.0.0.1:8123/feeds/_SPX.json?x=1") == "http://127.0.0.1:8123"
    for bad in ("https://cdn.cboe.com/api/x", "ftp://x", "https://x/?q=1", "file:///tmp"):
        with pytest.raises(InvalidInput):
            source(base_url=bad)


def test_reliability_is_successful_over_total_and_one_before_any_request() -> None:
    s = source()
    assert s.reliability_score == 1.0
    t = FIXED_NOW
    for ok in (True, False, True, True):
        t += timedelta(seconds=1)
        s = s.record_fetch(success=ok, response_time=timedelta(milliseconds=100), at=t)
    assert (s.total_requests, s.successful_requests) == (4, 3)
    assert s.reliability_score == pytest.approx(0.75)
    assert s.last_successful_fetch == t
    with pytest.raises(InvalidInput):
        source(total_requests=2, successful_requests=3)


def test_response_time_is_an_exponential_moving_average() -> None:
    s = source()
    s = s.record_fetch(success=True, response_time=timedelta(seconds=1), at=FIXED_NOW)
    assert s.average_response_time == timedelta(seconds=1)
    s = s.record_fetch(success=True, response_time=timedelta(seconds=2), at=FIXED_NOW, alpha=0.5)
    assert s.average_response_time == timedelta(seconds=1.5)
    s = s.record_fetch(success=False, response_time=timedelta(seconds=0), at=FIXED_NOW, alpha=0.2)
    assert s.average_response_time == timedelta(seconds=1.2)


def test_source_times_and_circuit_are_consistent() -> None:
    with pytest.raises(InvalidInput):
        source(updated_at=FIXED_NOW - timedelta(seconds=1))
    with pytest.raises(InvalidInput):
        source(circuit_state=CircuitState.OPEN)
    opened = source(circuit_state=CircuitState.OPEN, circuit_opened_at=FIXED_NOW)
    assert not opened.is_active
    assert not source(manually_disabled=True).is_active
    assert source().is_active


# --- PriorityRule --------------------------------------------------------------------


def rule(**overrides: object) -> PriorityRule:
    data: dict[str, object] = {
        "name": "index real-time",
        "condition": "data_type == 'real_time' and market_symbol in ['NDX', 'SPX']",
        "priority_score": 0.9,
        "created_at": FIXED_NOW,
        "updated_at": FIXED_NOW,
    }
    data.update(overrides)
    return PriorityRule.parse(data, context=CTX)


def test_rule_rules() -> None:
    assert rule().is_active and rule().version == 1
    with pytest.raises(InvalidInput) as exc:
        rule(condition="data_type == ")
    assert "condition" in problems(exc)
    with pytest.raises(InvalidInput):
        rule(priority_score=1.5)
    with pytest.raises(InvalidInput):
        rule(updated_at=FIXED_NOW - timedelta(days=1))
    with pytest.raises(InvalidInput):
        rule(name="")


# --- GEXStrike and GEXSnapshot -------------------------------------------------------


def strike(price: float, **overrides: object) -> GEXStrike:
    data: dict[str, object] = {
        "strike_price": price,
        "call_open_interest": 100,
        "put_open_interest": 50,
        "call_volume": 10,
        "put_volume": 5,
        "call_bid": 1.0,
        "call_ask": 1.2,
        "put_bid": 0.5,
        "put_ask": 0.6,
        "gamma": 0.002,
        "call_gex": 2.0e8,
        "put_gex": -1.0e8,
        "net_gex": 1.0e8,
    }
    data.update(overrides)
    return GEXStrike.parse(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strike_price", 0.0),
        ("strike_price", -5.0),
        ("call_open_interest", -1),
        ("put_volume", -1),
        ("call_bid", -0.01),
        ("put_ask", -0.01),
        ("gamma", math.nan),
        ("delta", math.inf),
        ("theta", -math.inf),
        ("vega", math.nan),
    ],
)
def test_strike_rules(field: str, value: float) -> None:
    with pytest.raises(InvalidInput) as exc:
        strike(4500.0, **{field: value})
    assert field in problems(exc)


def test_net_gex_is_call_plus_put() -> None:
    with pytest.raises(InvalidInput):
        strike(4500.0, net_gex=5.0)


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(min_value=-10, max_value=10_000_000),
)
@settings(max_examples=150, deadline=None)
def test_strike_acceptance_matches_the_rules(price: float, oi: int) -> None:
    try:
        strike(price, call_open_interest=oi)
    except InvalidInput:
        assert price <= 0 or oi < 0
    else:
        assert price > 0 and oi >= 0


def snapshot(**overrides: object) -> GEXSnapshot:
    strikes = [strike(4500.0), strike(4550.0)]
    day, at = GEXSnapshot.market_local(FIXED_NOW - timedelta(minutes=5))
    data: dict[str, object] = {
        "job_id": uuid.uuid4(),
        "market_symbol": "SPX",
        "snapshot_date": day,
        "snapshot_time": at,
        "strikes": strikes,
        "total_open_interest": 300,
        "total_volume": 30,
        "processed_at": FIXED_NOW,
        "data_quality_score": 0.97,
        "spot_price": 4520.0,
        "total_gex": 2.0e8,
        "zero_gamma": 4400.0,
        "zero_gamma_crossings": [4400.0, 4700.0],
        "call_wall": 4500.0,
        "put_wall": 4500.0,
    }
    data.update(overrides)
    return GEXSnapshot.parse(data, context=CTX)


def test_snapshot_dates_are_new_york_market_local() -> None:
    s = snapshot()
    assert s.snapshot_date == date(2026, 11, 26)
    assert s.snapshot_time == time(9, 55)
    assert s.snapshot_at == FIXED_NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"strikes": []}, "cannot be empty"),
        ({"snapshot_date": date(2026, 11, 27)}, "in the future"),
        ({"snapshot_time": time(23, 0)}, "in the future"),
        ({"total_open_interest": 7}, "total_open_interest"),
        ({"total_volume": 7}, "total_volume"),
        ({"zero_gamma": 4300.0}, "zero_gamma_crossings"),
        ({"data_quality_score": 1.2}, "data_quality_score"),
        ({"spot_price": 0.0}, "spot_price"),
        (
            {"strikes": [strike(4500.0), strike(4500.0)], "total_open_interest": 300},
            "appears twice",
        ),
    ],
)
def test_snapshot_rules(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        snapshot(**overrides)
    assert needle in str(exc.value)


def test_level_order() -> None:
    assert [lvl.rank for lvl in PriorityLevel] == [0, 1, 2, 3]
    assert PriorityLevel.CRITICAL.rank < PriorityLevel.LOW.rank
