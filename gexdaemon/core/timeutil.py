"""Time helpers: every instant is timezone-aware UTC; market dates are New York dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

Clock = Callable[[], datetime]
"""A source of the current instant (timezone-aware UTC). Injected so tests control time."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC; refuse naive ones (their meaning is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must carry a timezone offset (for example 2026-11-26T14:30:00Z)")
    return value.astimezone(UTC)


def new_york_date(instant: datetime) -> date:
    return as_utc(instant).astimezone(NEW_YORK).date()


def new_york_instant(day: date, at: time) -> datetime:
    """The UTC instant of a New York wall-clock time on a date (DST handled by zoneinfo)."""
    return datetime.combine(day, at, tzinfo=NEW_YORK).astimezone(UTC)


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()
