"""How figures read on the desk's screen: levels and statuses in colour, countdowns, sparklines.

Every cell the views draw is a `rich.text.Text` built here (a plain string in a
DataTable cell would be parsed as markup, and a `[` in a URL would break it).
Every figure is worded by `gexdaemon.readout`, the words the CLI prints too, so
the dashboard and `gexdaemon gex` say the same thing; this module adds colour.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from gexdaemon.core.vocab import CircuitState, GexUnit, JobStatus, PriorityLevel, SlaStatus
from gexdaemon.protocol import shapes as s
from gexdaemon.readout import (
    age,
    ago,
    clock_time,
    count,
    day_time,
    gex,
    market_time,
    percent,
    price,
    seconds_between,
    short_id,
    source_host,
    span,
    unit_words,
    words,
)
from gexdaemon.readout import countdown as countdown_words

__all__ = [
    "age",
    "ago",
    "circuit_text",
    "clock_time",
    "count",
    "countdown",
    "day_time",
    "gex",
    "level_text",
    "market_time",
    "percent",
    "price",
    "seconds_between",
    "short_id",
    "source_host",
    "span",
    "spark",
    "spark_rows",
    "status_text",
    "time_axis",
    "unit_words",
    "window_words",
    "words",
]

RED = "#ff5f5f"
AMBER = "#ffaf00"
GREEN = "#5fff87"
LEVEL_STYLE = {
    PriorityLevel.CRITICAL: f"bold {RED}",
    PriorityLevel.HIGH: f"bold {AMBER}",
    PriorityLevel.MEDIUM: "#d7d75f",
    PriorityLevel.LOW: "#87afd7",
}
STATUS_STYLE = {
    JobStatus.QUEUED: "#5fd7ff",
    JobStatus.PROCESSING: f"bold {GREEN}",
    JobStatus.COMPLETED: "#5f875f",
    JobStatus.FAILED: f"bold {RED}",
    JobStatus.CANCELLED: "#808080",
}
CIRCUIT_STYLE = {
    CircuitState.CLOSED: GREEN,
    CircuitState.HALF_OPEN: f"bold {AMBER}",
    CircuitState.OPEN: f"bold {RED}",
}
SEVERITY_STYLE = {"info": "#87afd7", "warning": AMBER, "error": f"bold {RED}"}
EIGHTHS = " ▁▂▃▄▅▆▇█"


def countdown(now: datetime, deadline: datetime | None) -> Text:
    """Time left to a deadline: "in 4m12s", red "LATE 1m20s" once it passed, "-" for none."""
    if deadline is None:
        return Text("-", style="dim")
    left = (deadline - now).total_seconds()
    style = f"bold {RED}" if left < 0 else f"bold {AMBER}" if left < 30 else ""
    return Text(countdown_words(now, deadline), style=style)


def level_text(level: PriorityLevel) -> Text:
    return Text(words(level), style=LEVEL_STYLE[level])


def status_text(job: s.JobRow) -> Text:
    """The status, marked ✗ when the deadline was missed, ⚠ when a live job is at risk."""
    text = Text(words(job.status), style=STATUS_STYLE[job.status])
    if job.sla_status is SlaStatus.BREACHED:
        text.append(" ✗", style=f"bold {RED}")
    elif job.at_risk and job.status.is_live:
        text.append(" ⚠", style=f"bold {AMBER}")
    return text


def circuit_text(state: CircuitState) -> Text:
    return Text(words(state), style=CIRCUIT_STYLE[state])


def job_id_text(job_id: str) -> Text:
    """A job id as every table shows it: the short form the CLI prints and accepts."""
    return Text(short_id(job_id), style="dim")


# -- sparklines --------------------------------------------------------------------------


def spark_heights(
    values: Sequence[float], width: int, *, ceiling: float | None = None
) -> list[float]:
    """Each cell's height from 0 to 1, scaled from zero to the largest magnitude (or `ceiling`).

    From zero, not from the smallest value: a flat line at 100 stands tall and
    1 next to 2 reads as half, as it is. More samples than cells are averaged
    in equal runs, so the cells always cover every sample given.
    """
    cells = _buckets([abs(v) for v in values], width)
    top = ceiling if ceiling is not None else max(cells, default=0.0)
    if top <= 0:
        return [0.0] * len(cells)
    return [min(1.0, v / top) for v in cells]


def _buckets(values: Sequence[float], width: int) -> list[float]:
    if width <= 0:
        return []
    if len(values) <= width:
        return list(values)
    edges = [round(i * len(values) / width) for i in range(width + 1)]
    return [sum(values[a:b]) / (b - a) for a, b in itertools.pairwise(edges) if b > a]


def spark(values: Sequence[float], width: int, *, ceiling: float | None = None) -> str:
    """One line of bars, right-aligned; a zero is a blank, anything above zero at least ▁."""
    marks = "".join(_mark(h, 8) for h in spark_heights(values, width, ceiling=ceiling))
    return marks.rjust(width)


def spark_rows(
    values: Sequence[float], width: int, height: int, *, ceiling: float | None = None
) -> list[str]:
    """`height` lines of bars (top line first), right-aligned, scaled from zero."""
    heights = spark_heights(values, width, ceiling=ceiling)
    eighths = [h * height * 8 for h in heights]
    rows = []
    for row in range(height - 1, -1, -1):
        line = "".join(_mark(max(0.0, min(8.0, e - row * 8)) / 8, 8) for e in eighths)
        rows.append(line.rjust(width))
    return rows


def _mark(height: float, steps: int) -> str:
    if height <= 0:
        return " "
    return EIGHTHS[max(1, round(height * steps))]


def time_axis(first: datetime | None, last: datetime | None) -> tuple[str, str]:
    """The words under a sparkline of samples taken from `first` to `last`: "-4m00s", "now"."""
    if first is None or last is None:
        return ("no samples yet", "")
    if first == last:
        return ("1 sample", "now")
    return (f"-{span((last - first).total_seconds())}", "now")


def window_words(first: datetime | None, last: datetime | None) -> str:
    """The real time samples cover, for a header: "LAST 4m00s"."""
    if first is None or last is None or first == last:
        return "NOW"
    return f"LAST {span((last - first).total_seconds())}"


UNIT_SHORT = {
    GexUnit.USD_PER_1PCT: "$/1%",
    GexUnit.USD_PER_POINT: "$/pt",
    GexUnit.SHARES_PER_POINT: "sh/pt",
}


def gex_unit_text(value: float | None, unit: GexUnit) -> Text:
    """A GEX figure with its unit, green when dealers are long gamma, red when short."""
    style = GREEN if value is not None and value >= 0 else RED
    return Text(f"{gex(value, unit)} {unit_words(unit)}", style=style)
