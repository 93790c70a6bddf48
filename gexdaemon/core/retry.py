"""Which failures are retried, and how long a retry waits (full-jitter exponential backoff).

The fetcher and the ingest pipeline label every failure with a `FailureCode`;
`is_retryable` says whether trying again can help. A transient fault (timeout,
connection error, 429, 5xx, a body cut short) is retried; a fault that would
repeat identically (404, another 4xx, a file that cannot be parsed, a host not
on the allowlist, a body over the size limit) is not.

`backoff_delay` draws the wait before a retry: uniform in [0, min(max_s,
base_s * 2^(retry_number - 1))] (AWS's "full jitter", which spreads retries of
many jobs apart), never longer than the job's remaining slack, and None when
no retry can finish before the deadline. A retry keeps its original deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Protocol


class FailureCode(StrEnum):
    """Stable codes of job failures (the wire's `error.code` and ProcessingJob errors)."""

    # Transient: retried.
    TIMEOUT = "fetch_timeout"
    CONNECTION = "connection_failed"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TRUNCATED = "truncated_body"
    WORKER_LOST = "worker_lost"  # the lease expired under a running job (a crash)
    # Permanent: never retried.
    NOT_FOUND = "not_found"
    CLIENT_ERROR = "client_error"
    UNPARSEABLE = "unparseable_file"
    INVALID_FILE = "invalid_file"
    HOST_NOT_ALLOWED = "host_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    WRONG_CONTENT = "wrong_content"
    UNSUPPORTED = "unsupported"
    SOURCE_DOWN = "source_down"  # queued past its deadline while its source was down


RETRYABLE: frozenset[FailureCode] = frozenset(
    {
        FailureCode.TIMEOUT,
        FailureCode.CONNECTION,
        FailureCode.RATE_LIMITED,
        FailureCode.SERVER_ERROR,
        FailureCode.TRUNCATED,
        FailureCode.WORKER_LOST,
    }
)

SOURCE_FAULTS: frozenset[FailureCode] = frozenset(
    {
        FailureCode.TIMEOUT,
        FailureCode.CONNECTION,
        FailureCode.RATE_LIMITED,
        FailureCode.SERVER_ERROR,
        FailureCode.TRUNCATED,
    }
)
"""Failures that say the source itself is unwell: these count toward its circuit
breaker. A 404 or a bad file says nothing about the source's health."""


def is_retryable(code: FailureCode) -> bool:
    return code in RETRYABLE


def code_for_status(status: int) -> FailureCode | None:
    """The failure an HTTP status means; None for success and redirects."""
    if status < 400:
        return None
    if status in (HTTPStatus.NOT_FOUND, HTTPStatus.GONE):
        return FailureCode.NOT_FOUND
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return FailureCode.RATE_LIMITED
    if status == HTTPStatus.REQUEST_TIMEOUT:
        return FailureCode.TIMEOUT
    if status >= 500:
        return FailureCode.SERVER_ERROR
    return FailureCode.CLIENT_ERROR


class Uniform(Protocol):
    """What backoff needs from a random generator (random.Random and numpy's Generator fit)."""

    def random(self) -> float: ...


def backoff_delay(
    retry_number: int,
    base_s: float,
    max_s: float,
    remaining_slack_s: float | None,
    rng: Uniform,
) -> float | None:
    """Seconds to wait before retry number `retry_number` (1 for the first retry).

    `remaining_slack_s` is deadline - now - estimated duration: the most the job
    can still wait and finish in time (None for LOW, which has no deadline). The
    delay never exceeds it; None means no retry can finish before the deadline.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1 (got {retry_number})")
    if not (base_s > 0 and max_s >= base_s):
        raise ValueError(f"need 0 < base_s <= max_s (got base_s={base_s}, max_s={max_s})")
    # 2**n overflows a float past n ~ 1023; the cap is reached long before.
    ceiling = max_s if retry_number > 60 else min(max_s, base_s * 2.0 ** (retry_number - 1))
    if remaining_slack_s is not None:
        if not remaining_slack_s > 0 or math.isnan(remaining_slack_s):
            return None
        ceiling = min(ceiling, remaining_slack_s)
    return rng.random() * ceiling


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether a failed job goes back to the queue, when, and why in a trader's words."""

    retry: bool
    delay_s: float
    reason: str


def decide_retry(
    code: FailureCode,
    *,
    retries_done: int,
    max_retries: int,
    base_s: float,
    max_s: float,
    remaining_slack_s: float | None,
    rng: Uniform,
    retry_after_s: float | None = None,
) -> RetryDecision:
    """Apply the retry policy to one failure.

    `retry_after_s` is a server's Retry-After (429/503): the wait is at least
    that long, and no retry is planned if it would overrun the deadline.
    """
    if not is_retryable(code):
        return RetryDecision(
            False, 0.0, f"{code.value} is not retried: trying again would fail the same way"
        )
    if retries_done >= max_retries:
        return RetryDecision(
            False, 0.0, f"gave up after {retries_done} retries (the limit is {max_retries})"
        )
    delay = backoff_delay(retries_done + 1, base_s, max_s, remaining_slack_s, rng)
    if delay is None:
        return RetryDecision(False, 0.0, "not retried: no retry could finish before the deadline")
    if retry_after_s is not None and retry_after_s > delay:
        if remaining_slack_s is not None and retry_after_s > remaining_slack_s:
            return RetryDecision(
                False,
                0.0,
                f"not retried: the source asked to wait {retry_after_s:.0f} s, past the deadline",
            )
        delay = retry_after_s
    return RetryDecision(True, delay, f"retry {retries_done + 1} of {max_retries} in {delay:.1f} s")
