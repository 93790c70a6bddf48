"""Retry policy: which failures are retried and how long a retry waits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.retry import (
    RETRYABLE,
    SOURCE_FAULTS,
    FailureCode,
    backoff_delay,
    code_for_status,
    decide_retry,
    is_retryable,
)


class Fixed:
    """A 'random' generator that always draws the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, None),
        (302, None),
        (400, FailureCode.CLIENT_ERROR),
        (401, FailureCode.CLIENT_ERROR),
        (403, FailureCode.CLIENT_ERROR),
        (404, FailureCode.NOT_FOUND),
        (408, FailureCode.TIMEOUT),
        (410, FailureCode.NOT_FOUND),
        (429, FailureCode.RATE_LIMITED),
        (500, FailureCode.SERVER_ERROR),
        (502, FailureCode.SERVER_ERROR),
        (503, FailureCode.SERVER_ERROR),
        (504, FailureCode.SERVER_ERROR),
    ],
)
def test_http_statuses_map_to_failure_codes(status: int, code: FailureCode | None) -> None:
    assert code_for_status(status) is code


def test_transient_faults_are_retried_and_permanent_ones_never() -> None:
    retried = {
        FailureCode.TIMEOUT,
        FailureCode.CONNECTION,
        FailureCode.RATE_LIMITED,
        FailureCode.SERVER_ERROR,
        FailureCode.TRUNCATED,
        FailureCode.WORKER_LOST,
    }
    assert retried == RETRYABLE
    for code in FailureCode:
        assert is_retryable(code) is (code in retried)
    for never in (
        FailureCode.NOT_FOUND,
        FailureCode.CLIENT_ERROR,
        FailureCode.UNPARSEABLE,
        FailureCode.INVALID_FILE,
        FailureCode.HOST_NOT_ALLOWED,
        FailureCode.BODY_TOO_LARGE,
    ):
        assert not is_retryable(never)


def test_only_source_health_faults_feed_the_breaker() -> None:
    assert SOURCE_FAULTS <= RETRYABLE
    assert FailureCode.NOT_FOUND not in SOURCE_FAULTS
    assert FailureCode.WORKER_LOST not in SOURCE_FAULTS  # our crash, not the source's
    assert FailureCode.SERVER_ERROR in SOURCE_FAULTS


def test_the_ceiling_doubles_per_retry_up_to_the_cap() -> None:
    top = Fixed(0.999999)
    ceilings = [backoff_delay(n, 1.0, 10.0, None, top) for n in range(1, 7)]
    assert ceilings == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0], rel=1e-5)
    assert backoff_delay(5000, 1.0, 10.0, None, top) == pytest.approx(10.0, rel=1e-5)


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    assert backoff_delay(3, 1.0, 60.0, None, Fixed(0.0)) == 0.0
    assert backoff_delay(3, 1.0, 60.0, None, Fixed(0.5)) == 2.0
    rng = random.Random(42)
    draws = [backoff_delay(4, 1.0, 60.0, None, rng) for _ in range(4000)]
    assert all(d is not None and 0.0 <= d <= 8.0 for d in draws)
    mean = sum(d for d in draws if d is not None) / len(draws)
    assert mean == pytest.approx(4.0, rel=0.05)  # uniform on [0, 8]


def test_the_remaining_slack_caps_the_wait_and_none_means_too_late() -> None:
    top = Fixed(0.999999)
    assert backoff_delay(4, 1.0, 60.0, 2.5, top) == pytest.approx(2.5, rel=1e-5)
    assert backoff_delay(1, 1.0, 60.0, 0.0, top) is None
    assert backoff_delay(1, 1.0, 60.0, -3.0, top) is None
    # LOW has no deadline: it is always retried.
    assert backoff_delay(1, 1.0, 60.0, None, top) is not None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_number"):
        backoff_delay(0, 1.0, 2.0, None, Fixed(0.5))
    with pytest.raises(ValueError, match="base_s"):
        backoff_delay(1, 5.0, 2.0, None, Fixed(0.5))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 200),
    st.floats(0.01, 100.0),
    st.floats(1.0, 1000.0),
    st.one_of(st.none(), st.floats(-100.0, 10_000.0)),
    st.floats(0.0, 0.999999),
)
def test_backoff_never_exceeds_any_of_its_bounds(
    retry_number: int, base: float, spread: float, slack: float | None, u: float
) -> None:
    cap = base * spread
    delay = backoff_delay(retry_number, base, cap, slack, Fixed(u))
    if slack is not None and slack <= 0:
        assert delay is None
        return
    assert delay is not None
    assert 0.0 <= delay <= cap
    assert delay <= base * 2.0 ** min(retry_number - 1, 60) + 1e-9
    if slack is not None:
        assert delay <= slack


def test_decide_retry_explains_every_outcome() -> None:
    common = {"max_retries": 3, "base_s": 1.0, "max_s": 60.0, "rng": Fixed(0.5)}
    never = decide_retry(FailureCode.NOT_FOUND, retries_done=0, remaining_slack_s=100.0, **common)  # type: ignore[arg-type]
    assert not never.retry and "not retried" in never.reason
    spent = decide_retry(FailureCode.TIMEOUT, retries_done=3, remaining_slack_s=100.0, **common)  # type: ignore[arg-type]
    assert not spent.retry and "after 3 retries" in spent.reason
    late = decide_retry(FailureCode.TIMEOUT, retries_done=0, remaining_slack_s=0.0, **common)  # type: ignore[arg-type]
    assert not late.retry and "deadline" in late.reason
    ok = decide_retry(FailureCode.SERVER_ERROR, retries_done=1, remaining_slack_s=100.0, **common)  # type: ignore[arg-type]
    assert ok.retry and ok.delay_s == 1.0 and ok.reason == "retry 2 of 3 in 1.0 s"


def test_a_servers_retry_after_is_honoured_within_the_deadline() -> None:
    common = {"max_retries": 3, "base_s": 1.0, "max_s": 60.0, "rng": Fixed(0.5)}
    waits = decide_retry(
        FailureCode.RATE_LIMITED,
        retries_done=0,
        remaining_slack_s=100.0,
        retry_after_s=20.0,
        **common,  # type: ignore[arg-type]
    )
    assert waits.retry and waits.delay_s == 20.0
    too_late = decide_retry(
        FailureCode.RATE_LIMITED,
        retries_done=0,
        remaining_slack_s=10.0,
        retry_after_s=20.0,
        **common,  # type: ignore[arg-type]
    )
    assert not too_late.retry and "asked to wait 20 s" in too_late.reason
    low = decide_retry(
        FailureCode.RATE_LIMITED,
        retries_done=0,
        remaining_slack_s=None,
        retry_after_s=300.0,
        **common,  # type: ignore[arg-type]
    )
    assert low.retry and low.delay_s == 300.0
