"""Circuit breaker transitions on the real DataSource model."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.breaker import (
    BreakerChange,
    access,
    adopt,
    control_state,
    poll,
    probe_due_at,
    record_failure,
    record_success,
    set_disabled,
)
from gexdaemon.core.models import CircuitState, DataSource
from gexdaemon.core.scheduler import SourceAccess
from tests.conftest import FIXED_NOW

THRESHOLD = 3
COOLDOWN = 30.0


def source() -> DataSource:
    return DataSource(
        base_url="https://cdn.cboe.com",
        name="CBOE",
        created_at=FIXED_NOW,
        updated_at=FIXED_NOW,
    )


def fail(src: DataSource, at: datetime) -> tuple[DataSource, BreakerChange]:
    update = record_failure(src, at, failures_to_open=THRESHOLD, cooldown_s=COOLDOWN)
    return update.source, update.change


def test_opens_after_consecutive_failures_then_probes_then_closes() -> None:
    src, t = source(), FIXED_NOW
    for i in range(THRESHOLD - 1):
        src, change = fail(src, t + timedelta(seconds=i))
        assert change is BreakerChange.NONE and access(src) is SourceAccess.ALLOWED
    opened_at = t + timedelta(seconds=10)
    update = record_failure(src, opened_at, failures_to_open=THRESHOLD, cooldown_s=COOLDOWN)
    src = update.source
    assert update.change is BreakerChange.OPENED
    assert "failed 3 times in a row" in update.message and "30 s" in update.message
    assert src.circuit_state is CircuitState.OPEN and src.circuit_opened_at == opened_at
    assert access(src) is SourceAccess.BLOCKED and not src.is_active
    assert probe_due_at(src, COOLDOWN) == opened_at + timedelta(seconds=COOLDOWN)

    early = poll(src, opened_at + timedelta(seconds=COOLDOWN - 1), cooldown_s=COOLDOWN)
    assert not early.changed
    half = poll(src, opened_at + timedelta(seconds=COOLDOWN), cooldown_s=COOLDOWN)
    assert half.change is BreakerChange.HALF_OPENED
    src = half.source
    assert access(src) is SourceAccess.PROBE and src.is_active

    closed = record_success(src, opened_at + timedelta(seconds=COOLDOWN + 1))
    assert closed.change is BreakerChange.CLOSED
    src = closed.source
    assert src.circuit_state is CircuitState.CLOSED and src.consecutive_failures == 0
    assert src.circuit_opened_at is None and access(src) is SourceAccess.ALLOWED


def test_a_failed_probe_opens_the_breaker_for_another_cool_down() -> None:
    src, t = source(), FIXED_NOW
    for _ in range(THRESHOLD):
        src, _ = fail(src, t)
    src = poll(src, t + timedelta(seconds=COOLDOWN), cooldown_s=COOLDOWN).source
    again = t + timedelta(seconds=COOLDOWN + 2)
    src, change = fail(src, again)
    assert change is BreakerChange.REOPENED
    assert src.circuit_state is CircuitState.OPEN and src.circuit_opened_at == again
    assert probe_due_at(src, COOLDOWN) == again + timedelta(seconds=COOLDOWN)


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    src, t = source(), FIXED_NOW
    for _ in range(THRESHOLD - 1):
        src, _ = fail(src, t)
    update = record_success(src, t)
    assert update.change is BreakerChange.NONE and update.source.consecutive_failures == 0
    src = update.source
    for _ in range(THRESHOLD - 1):
        src, _ = fail(src, t)
    assert src.circuit_state is CircuitState.CLOSED


def test_a_late_failure_does_not_extend_the_cool_down() -> None:
    src, t = source(), FIXED_NOW
    for _ in range(THRESHOLD):
        src, _ = fail(src, t)
    src, change = fail(src, t + timedelta(seconds=5))
    assert change is BreakerChange.NONE and src.circuit_opened_at == t


def test_manual_disable_wins_over_the_breaker_and_enable_closes_it() -> None:
    src, t = source(), FIXED_NOW
    disabled = set_disabled(src, True, t)
    assert disabled.change is BreakerChange.DISABLED
    src = disabled.source
    assert access(src) is SourceAccess.BLOCKED and not src.is_active
    assert not set_disabled(src, True, t).changed
    src = record_success(src, t).source  # a success does not undo a trader's switch
    assert access(src) is SourceAccess.BLOCKED
    for _ in range(THRESHOLD):
        src, _ = fail(src, t)
    enabled = set_disabled(src, False, t + timedelta(seconds=1))
    assert enabled.change is BreakerChange.ENABLED
    src = enabled.source
    assert src.circuit_state is CircuitState.CLOSED and src.consecutive_failures == 0
    assert access(src) is SourceAccess.ALLOWED
    assert not set_disabled(src, False, t).changed


def test_updated_at_follows_the_event_time() -> None:
    src = source()
    later = FIXED_NOW + timedelta(minutes=3)
    assert fail(src, later)[0].updated_at == later


events = st.lists(
    st.tuples(
        st.sampled_from(["fail", "ok", "poll", "disable", "enable"]),
        st.integers(0, 120),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_any_sequence_keeps_the_source_valid_and_consistent(steps: list[tuple[str, int]]) -> None:
    src, t = source(), FIXED_NOW
    for kind, seconds in steps:
        t += timedelta(seconds=seconds)
        if kind == "fail":
            src, _ = fail(src, t)
        elif kind == "ok":
            src = record_success(src, t).source
        elif kind == "poll":
            src = poll(src, t, cooldown_s=COOLDOWN).source
        else:
            src = set_disabled(src, kind == "disable", t).source
        # The model's own validators ran on every copy; the breaker's rules on top:
        if src.circuit_state is CircuitState.CLOSED:
            assert src.circuit_opened_at is None
            assert src.consecutive_failures < THRESHOLD
        else:
            assert src.circuit_opened_at is not None
        assert (access(src) is SourceAccess.BLOCKED) == (not src.is_active)
        assert src.updated_at >= src.created_at


# -- the state shared between cluster nodes ---------------------------------------------


def test_another_nodes_open_breaker_is_adopted_with_its_opening_instant() -> None:
    there = source()
    for i in range(THRESHOLD):
        there, change = fail(there, FIXED_NOW + timedelta(seconds=i))
    assert change is BreakerChange.OPENED
    here = source()
    update = adopt(here, control_state(there), FIXED_NOW + timedelta(seconds=5), "b")
    assert update.change is BreakerChange.OPENED
    assert update.message.endswith("opened on node b")
    adopted = update.source
    assert adopted.circuit_state is CircuitState.OPEN
    assert adopted.circuit_opened_at == there.circuit_opened_at
    assert adopted.consecutive_failures == THRESHOLD
    assert access(adopted) is SourceAccess.BLOCKED
    # the probe is due when it is due on the node that opened it
    assert probe_due_at(adopted, COOLDOWN) == probe_due_at(there, COOLDOWN)
    # what this node counted itself is kept
    assert (adopted.total_requests, adopted.base_url) == (here.total_requests, here.base_url)


def test_a_switch_made_elsewhere_is_named_and_the_same_state_is_no_change() -> None:
    here = source()
    off = set_disabled(source(), True, FIXED_NOW).source
    update = adopt(here, control_state(off), FIXED_NOW, "a")
    assert update.change is BreakerChange.DISABLED and update.source.manually_disabled
    assert adopt(update.source, control_state(off), FIXED_NOW, "a").change is BreakerChange.NONE
    on = set_disabled(off, False, FIXED_NOW).source
    back = adopt(update.source, control_state(on), FIXED_NOW, "a")
    assert back.change is BreakerChange.ENABLED and not back.source.manually_disabled


def test_a_failed_probe_elsewhere_reopens_and_a_success_closes() -> None:
    there = source()
    for i in range(THRESHOLD):
        there, _ = fail(there, FIXED_NOW + timedelta(seconds=i))
    later = FIXED_NOW + timedelta(seconds=COOLDOWN + 10)
    half = poll(there, later, cooldown_s=COOLDOWN).source
    assert half.circuit_state is CircuitState.HALF_OPEN
    here = adopt(source(), control_state(half), later, "a").source
    assert here.circuit_state is CircuitState.HALF_OPEN
    reopened, change = fail(half, later)
    assert change is BreakerChange.REOPENED
    assert adopt(here, control_state(reopened), later, "a").change is BreakerChange.REOPENED
    closed = record_success(half, later).source
    assert adopt(here, control_state(closed), later, "a").change is BreakerChange.CLOSED
