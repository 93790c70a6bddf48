"""Circuit breaker per data source: pause a failing source, probe it after a cool-down.

States (stored on `DataSource`):
- CLOSED: fetching normally; `consecutive_failures` counts failures in a row.
- OPEN: after `failures_to_open` failures in a row; no fetches until
  `circuit_opened_at + cooldown_s`.
- HALF_OPEN: the cool-down is over; one probe fetch decides: success closes
  the circuit, failure opens it again for another cool-down.
A trader can disable a source by hand (it stays paused whatever the breaker
says) and enable it again (which also closes the breaker: "it is back, try it").

Pure functions: each takes a `DataSource` and returns a `BreakerUpdate` with the
updated copy, what changed, and a sentence for the event stream. Only failures
that say the source is unwell count (`gexdaemon.core.retry.SOURCE_FAULTS`); a
404 or a bad file does not. `access` tells the scheduler how it may use the
source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gexdaemon.core.models import CircuitState, DataSource
from gexdaemon.core.timeutil import as_utc
from gexdaemon.core.vocab import SourceAccess


class BreakerChange(StrEnum):
    NONE = "none"
    OPENED = "opened"  # too many failures in a row: paused
    HALF_OPENED = "half_opened"  # cool-down over: one probe may go
    CLOSED = "closed"  # a fetch succeeded: back to normal
    REOPENED = "reopened"  # the probe failed: paused for another cool-down
    DISABLED = "disabled"  # a trader switched it off
    ENABLED = "enabled"  # a trader switched it back on


@dataclass(frozen=True, slots=True)
class BreakerUpdate:
    source: DataSource
    change: BreakerChange
    message: str = ""

    @property
    def changed(self) -> bool:
        return self.change is not BreakerChange.NONE


def access(source: DataSource) -> SourceAccess:
    """How the scheduler may use the source right now."""
    if source.manually_disabled or source.circuit_state is CircuitState.OPEN:
        return SourceAccess.BLOCKED
    if source.circuit_state is CircuitState.HALF_OPEN:
        return SourceAccess.PROBE
    return SourceAccess.ALLOWED


def probe_due_at(source: DataSource, cooldown_s: float) -> datetime | None:
    """When an open breaker lets its probe through; None unless OPEN."""
    if source.circuit_state is not CircuitState.OPEN or source.circuit_opened_at is None:
        return None
    return source.circuit_opened_at + timedelta(seconds=cooldown_s)


def record_success(source: DataSource, at: datetime) -> BreakerUpdate:
    """A fetch from the source succeeded."""
    if source.circuit_state is CircuitState.CLOSED:
        if source.consecutive_failures == 0:
            return BreakerUpdate(source, BreakerChange.NONE)
        return BreakerUpdate(_evolve(source, at, consecutive_failures=0), BreakerChange.NONE)
    closed = _evolve(
        source,
        at,
        consecutive_failures=0,
        circuit_state=CircuitState.CLOSED,
        circuit_opened_at=None,
    )
    return BreakerUpdate(
        closed, BreakerChange.CLOSED, f"{_name(source)} answered again: fetching resumes"
    )


def record_failure(
    source: DataSource, at: datetime, *, failures_to_open: int, cooldown_s: float
) -> BreakerUpdate:
    """A fetch failed in a way that says the source is unwell (timeout, 5xx, ...)."""
    if failures_to_open < 1:
        raise ValueError(f"failures_to_open must be at least 1 (got {failures_to_open})")
    failures = source.consecutive_failures + 1
    state = source.circuit_state
    if state is CircuitState.HALF_OPEN:
        reopened = _opened(source, at, failures)
        return BreakerUpdate(
            reopened,
            BreakerChange.REOPENED,
            f"{_name(source)} failed its test fetch: paused again, next try in {cooldown_s:g} s",
        )
    if state is CircuitState.OPEN:
        # A fetch that started before the breaker opened: count it, but the
        # cool-down runs from when it opened.
        return BreakerUpdate(_evolve(source, at, consecutive_failures=failures), BreakerChange.NONE)
    if failures >= failures_to_open:
        opened = _opened(source, at, failures)
        return BreakerUpdate(
            opened,
            BreakerChange.OPENED,
            f"{_name(source)} failed {failures} times in a row: paused, its jobs wait; "
            f"one test fetch in {cooldown_s:g} s",
        )
    return BreakerUpdate(_evolve(source, at, consecutive_failures=failures), BreakerChange.NONE)


def poll(source: DataSource, at: datetime, *, cooldown_s: float) -> BreakerUpdate:
    """Move an open breaker whose cool-down is over to half-open (one probe may go)."""
    due = probe_due_at(source, cooldown_s)
    if due is None or as_utc(at) < due:
        return BreakerUpdate(source, BreakerChange.NONE)
    half = _evolve(source, at, circuit_state=CircuitState.HALF_OPEN)
    return BreakerUpdate(
        half, BreakerChange.HALF_OPENED, f"{_name(source)}: cool-down over, trying one fetch"
    )


def set_disabled(source: DataSource, disabled: bool, at: datetime) -> BreakerUpdate:
    """A trader's switch. Enabling also closes the breaker and forgets past failures."""
    if disabled:
        if source.manually_disabled:
            return BreakerUpdate(source, BreakerChange.NONE)
        return BreakerUpdate(
            _evolve(source, at, manually_disabled=True),
            BreakerChange.DISABLED,
            f"{_name(source)} disabled: its jobs wait until it is enabled",
        )
    if (
        not source.manually_disabled
        and source.circuit_state is CircuitState.CLOSED
        and source.consecutive_failures == 0
    ):
        return BreakerUpdate(source, BreakerChange.NONE)
    enabled = _evolve(
        source,
        at,
        manually_disabled=False,
        circuit_state=CircuitState.CLOSED,
        circuit_opened_at=None,
        consecutive_failures=0,
    )
    return BreakerUpdate(enabled, BreakerChange.ENABLED, f"{_name(source)} enabled")


# -- shared state (cluster mode) -------------------------------------------------------
# What a source may do is one state for the whole cluster: a trader's switch and the
# breaker. Reliability and response time stay each node's own (its own fetches).


def control_state(source: DataSource) -> dict[str, Any]:
    """What a source may do, as plain values to share with the other nodes."""
    opened = source.circuit_opened_at
    return {
        "base_url": source.base_url,
        "manually_disabled": source.manually_disabled,
        "circuit_state": source.circuit_state.value,
        "circuit_opened_at": None if opened is None else opened.isoformat(),
        "consecutive_failures": source.consecutive_failures,
    }


def adopt(source: DataSource, state: dict[str, Any], at: datetime, by: str) -> BreakerUpdate:
    """Another node's state of the source (from `control_state`) taken over by this one,
    named as the change it makes here ("disabled on node b", ...)."""
    opened = state.get("circuit_opened_at")
    after = _evolve(
        source,
        at,
        manually_disabled=bool(state["manually_disabled"]),
        circuit_state=CircuitState(state["circuit_state"]),
        circuit_opened_at=None if opened is None else as_utc(datetime.fromisoformat(opened)),
        consecutive_failures=int(state["consecutive_failures"]),
    )
    change = _change_between(source, after)
    if change is BreakerChange.NONE:
        return BreakerUpdate(source, change)
    return BreakerUpdate(after, change, f"{_name(source)} {change.value} on node {by}")


def _change_between(before: DataSource, after: DataSource) -> BreakerChange:
    if after.manually_disabled != before.manually_disabled:
        return BreakerChange.DISABLED if after.manually_disabled else BreakerChange.ENABLED
    if after.circuit_state is before.circuit_state:
        return BreakerChange.NONE
    if after.circuit_state is CircuitState.OPEN:
        if before.circuit_state is CircuitState.HALF_OPEN:
            return BreakerChange.REOPENED
        return BreakerChange.OPENED
    if after.circuit_state is CircuitState.HALF_OPEN:
        return BreakerChange.HALF_OPENED
    return BreakerChange.CLOSED


def _opened(source: DataSource, at: datetime, failures: int) -> DataSource:
    """The source with its breaker open from `at`, after `failures` in a row."""
    return _evolve(
        source,
        at,
        consecutive_failures=failures,
        circuit_state=CircuitState.OPEN,
        circuit_opened_at=at,
    )


def _evolve(source: DataSource, at: datetime, **changes: Any) -> DataSource:
    return source.evolve(updated_at=max(as_utc(at), source.created_at), **changes)


def _name(source: DataSource) -> str:
    return source.name if source.name == source.base_url else f"{source.name} ({source.base_url})"
