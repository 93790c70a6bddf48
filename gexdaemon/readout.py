"""How figures read on a desk, in words shared by the CLI and the dashboard.

GEX in dollars per 1% move with B/M/K suffixes, price levels to the cent with
thousands separators, durations as a trader says them, instants with their
zone (New York, the market's clock, marked "ET"), ids in their short form.
The CLI prints these strings; `gextui` adds colour on top. Neither writes its
own wording of a number, so `gexdaemon gex` and the GEX view never disagree.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gexdaemon.core.timeutil import NEW_YORK
from gexdaemon.core.vocab import GexUnit

SHORT_ID = 8
"""Characters of a job's short id (the random tail of its UUID; see `short_id`)."""


def short_id(value: object) -> str:
    """The short form of an id, as `jobs`, `submit` and the dashboard show it.

    Job ids are time-ordered (UUIDv7): their first characters are the creation
    time and repeat for every job made in the same minute, so the short form is
    the last eight hex digits, which are random. Any verb that takes an id takes
    this, or a unique start of it (see the API's id resolution).
    """
    text = str(value or "")
    hexes = text.replace("-", "")
    return hexes[-SHORT_ID:] if len(hexes) == 32 else text


def number(value: float | int | None, decimals: int = 2) -> str:
    """A plain number with separators: 6,966.42; 1,234,567; '-' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:,.{decimals}f}"


def price(value: float | None) -> str:
    """A price level to the cent: 4,586.88 (6966 stays 6,966.00, never 6966 or 7e+03)."""
    return number(value, 2)


def count(value: float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def scaled(value: float) -> str:
    """A large magnitude with a suffix and two decimals: 1.23B, -56.70M, 950."""
    sign = "-" if value < 0 else ""
    size = abs(value)
    for div, suffix in _SCALES:
        if size >= div:
            return f"{sign}{size / div:,.2f}{suffix}"
    return f"{sign}{size:,.0f}"


def gex(value: float | None, unit: GexUnit | str = GexUnit.USD_PER_1PCT) -> str:
    """A GEX figure in its unit: $1.23B, -$456.78M, 12.30M sh (the header names the unit)."""
    if value is None or not math.isfinite(value):
        return "-"
    if GexUnit(unit) is GexUnit.SHARES_PER_POINT:
        return f"{scaled(value)} sh"
    text = scaled(value)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def unit_words(unit: GexUnit | str | None) -> str:
    """What a GEX unit means, for a header: "$ per 1% move"."""
    return GexUnit(unit or GexUnit.USD_PER_1PCT).words


def percent(ratio: float | None, decimals: int = 1) -> str:
    return "-" if ratio is None else f"{ratio * 100:.{decimals}f}%"


def span(seconds: float | None) -> str:
    """A duration as a trader says it: 0.4s, 45s, 12m03s, 3h12m, 2d03h."""
    if seconds is None:
        return "-"
    s = abs(seconds)
    if s < 10:
        text = f"{s:.1f}s"
    elif s < 60:
        text = f"{s:.0f}s"
    elif s < 3600:
        text = f"{int(s // 60)}m{int(s % 60):02d}s"
    elif s < 86400:
        text = f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    else:
        text = f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"
    return f"-{text}" if seconds < 0 else text


def parse_instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def market_time(value: object, *, seconds: bool = True) -> str:
    """An instant on the market's clock with its zone: 2026-12-05 14:03:10 ET."""
    instant = parse_instant(value)
    if instant is None:
        return "-"
    fmt = "%Y-%m-%d %H:%M:%S ET" if seconds else "%Y-%m-%d %H:%M ET"
    return instant.astimezone(NEW_YORK).strftime(fmt)


def clock_time(value: object, *, millis: bool = False, zone: bool = True) -> str:
    """An instant as New York wall-clock time: 14:03:10 ET (14:03:10.123 ET with millis)."""
    instant = parse_instant(value)
    if instant is None:
        return "-"
    local = instant.astimezone(NEW_YORK)
    text = local.strftime("%H:%M:%S.%f")[:-3] if millis else local.strftime("%H:%M:%S")
    return f"{text} ET" if zone else text


def day_time(value: object, now: datetime | None = None) -> str:
    """An instant for a table cell: 14:03:10 ET today, 12-04 14:03 ET another day."""
    instant = parse_instant(value)
    if instant is None:
        return "-"
    local = instant.astimezone(NEW_YORK)
    today = (now or datetime.now(UTC)).astimezone(NEW_YORK).date()
    if local.date() == today:
        return local.strftime("%H:%M:%S ET")
    return local.strftime("%m-%d %H:%M ET")


def seconds_between(later: datetime, earlier: object) -> float | None:
    instant = parse_instant(earlier)
    return None if instant is None else (later - instant).total_seconds()


def age(now: datetime, since: object) -> str:
    return span(seconds_between(now, since))


def ago(now: datetime, since: object) -> str:
    seconds = seconds_between(now, since)
    return "never" if seconds is None else f"{span(max(0.0, seconds))} ago"


def countdown(now: datetime, deadline: object) -> str:
    """Time left to a deadline: "in 4m12s", "LATE 1m20s" once it passed, "-" for none."""
    instant = parse_instant(deadline)
    if instant is None:
        return "-"
    left = (instant - now).total_seconds()
    return f"LATE {span(-left)}" if left < 0 else f"in {span(left)}"


def source_host(url: object) -> str:
    text = str(url or "")
    if text.startswith("file://"):
        return "local files"
    return urlsplit(text).netloc or text


def words(value: object) -> str:
    """An enum value as a header word: half_open -> HALF-OPEN."""
    return str(getattr(value, "value", value) or "-").replace("_", "-").upper()
