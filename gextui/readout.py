"""How figures read on the desk's screen: levels and statuses in colour, ages, countdowns, sparks.

Every cell the views draw is a `rich.text.Text` built here (a plain string in a
DataTable cell would be parsed as markup, and a `[` in a URL would break it).
Every figure is worded by `gexdaemon.readout`, the words the CLI prints too, so
the dashboard and `gexdaemon gex` say the same thing; this module adds colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from gexdaemon.core.vocab import GexUnit
from gexdaemon.readout import (
    age,
    ago,
    clock_time,
    count,
    gex,
    market_time,
    parse_instant,
    percent,
    price,
    seconds_between,
    source_host,
    span,
    unit_words,
)

__all__ = [
    "age",
    "ago",
    "circuit_text",
    "clock_time",
    "count",
    "countdown",
    "gex_money",
    "level_text",
    "market_time",
    "parse_instant",
    "percent",
    "price",
    "seconds_between",
    "source_host",
    "span",
    "spark",
    "status_text",
    "unit_words",
]

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


def spark(values: Sequence[float], width: int) -> str:
    """A one-line sparkline of the last `width` values (flat when they are all equal)."""
    shown = list(values)[-width:]
    if not shown:
        return " " * width
    low, high = min(shown), max(shown)
    scale = (high - low) or 1.0
    marks = "".join(SPARKS[int((v - low) / scale * (len(SPARKS) - 1))] for v in shown)
    return marks.rjust(width)


def gex_money(value: Any, unit: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return gex(float(value), unit or GexUnit.USD_PER_1PCT)
