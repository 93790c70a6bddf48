"""How figures read on the desk's screen: levels and statuses in colour, ages, countdowns, sparks.

Every cell the views draw is a `rich.text.Text` built here (a plain string in a
DataTable cell would be parsed as markup, and a `[` in a URL would break it).
Money and price levels use the CLI's wording (`gexdaemon.cli.render`) so the
dashboard and `gexdaemon gex` say the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from rich.text import Text

from gexdaemon.cli.render import UNIT_TEXT, level, money
from gexdaemon.core.timeutil import NEW_YORK

LEVEL_STYLE = {
    "critical": "bold #ff5f5f",
    "high": "bold #ffaf00",
    "medium": "#d7d75f",
    "low": "#87afd7",
}
STATUS_STYLE = {
    "queued": "#5fd7ff",
    "processing": "bold #5fff87",
    "completed": "#5f875f",
    "failed": "bold #ff5f5f",
    "cancelled": "#808080",
}
CIRCUIT_STYLE = {"closed": "#5fff87", "half_open": "bold #ffaf00", "open": "bold #ff5f5f"}
SEVERITY_STYLE = {"info": "#87afd7", "warning": "#ffaf00", "error": "bold #ff5f5f"}
SPARKS = "▁▂▃▄▅▆▇█"


def parse_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def span(seconds: float | None) -> str:
    """A duration as a trader reads it: 0.4s, 45s, 12m03s, 3h12m, 2d03h."""
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


def seconds_between(later: datetime, earlier: Any) -> float | None:
    instant = parse_instant(earlier)
    return None if instant is None else (later - instant).total_seconds()


def age(now: datetime, since: Any) -> str:
    return span(seconds_between(now, since))


def ago(now: datetime, since: Any) -> str:
    seconds = seconds_between(now, since)
    return "never" if seconds is None else f"{span(max(0.0, seconds))} ago"


def countdown(now: datetime, deadline: Any) -> Text:
    """Time left to a deadline: "in 4m12s", red "LATE 1m20s" once it passed, "-" for none."""
    instant = parse_instant(deadline)
    if instant is None:
        return Text("-", style="dim")
    left = (instant - now).total_seconds()
    if left < 0:
        return Text(f"LATE {span(-left)}", style="bold #ff5f5f")
    style = "bold #ffaf00" if left < 30 else ""
    return Text(f"in {span(left)}", style=style)


def level_text(value: Any) -> Text:
    name = str(value or "?")
    return Text(name.upper(), style=LEVEL_STYLE.get(name, ""))


def status_text(job: dict[str, Any]) -> Text:
    status = str(job.get("status") or "?")
    text = Text(status.upper(), style=STATUS_STYLE.get(status, ""))
    if job.get("sla_status") == "breached":
        text.append(" ✗", style="bold #ff5f5f")
    elif job.get("at_risk"):
        text.append(" ⚠", style="bold #ffaf00")
    return text


def circuit_text(state: Any) -> Text:
    name = str(state or "?")
    return Text(name.replace("_", "-").upper(), style=CIRCUIT_STYLE.get(name, ""))


def source_host(url: Any) -> str:
    text = str(url or "")
    if text.startswith("file://"):
        return "local files"
    parts = urlsplit(text)
    return parts.netloc or text


def percent(ratio: Any) -> str:
    return "-" if ratio is None else f"{float(ratio) * 100:.1f}%"


def count(value: Any) -> str:
    return f"{int(value or 0):,}"


def spark(values: Sequence[float], width: int) -> str:
    """A one-line sparkline of the last `width` values (flat when they are all equal)."""
    shown = list(values)[-width:]
    if not shown:
        return " " * width
    low, high = min(shown), max(shown)
    scale = (high - low) or 1.0
    marks = "".join(SPARKS[int((v - low) / scale * (len(SPARKS) - 1))] for v in shown)
    return marks.rjust(width)


def market_time(value: Any) -> str:
    """A snapshot instant in New York time, as the desk quotes it."""
    instant = parse_instant(value)
    if instant is None:
        return "-"
    return instant.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET")


def gex_money(value: Any, unit: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return money(float(value), str(unit or "usd_per_1pct"))


def unit_words(unit: Any) -> str:
    name = str(unit or "usd_per_1pct")
    return UNIT_TEXT.get(name, name)


def price(value: Any) -> str:
    return level(float(value)) if isinstance(value, int | float) else "-"


def clock_time(value: Any, *, millis: bool = False) -> str:
    """An instant as New York wall-clock time (the desk's clock, whatever the terminal's zone)."""
    instant = parse_instant(value)
    if instant is None:
        return "-"
    local = instant.astimezone(NEW_YORK)
    return local.strftime("%H:%M:%S.%f")[:-3] if millis else local.strftime("%H:%M:%S")
