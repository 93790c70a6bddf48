"""Which jobs the table shows and in what order: the `/` filter, the sorts, the top N.

Plain functions over `JobRow`s (no Textual), so they are tested without a screen.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from gexdaemon.core.vocab import GEXDataType, JobStatus, PriorityLevel
from gexdaemon.protocol import shapes as s
from gexdaemon.readout import short_id

ROW_CAP = 300
LEVEL_NAMES = tuple(level.value for level in PriorityLevel)
STATUS_NAMES = tuple(status.value for status in JobStatus)
TYPE_NAMES = tuple(kind.value for kind in GEXDataType)


@dataclass(frozen=True)
class JobFilter:
    """`/` text: `level:critical status:queued sym:SPX source:cboe type:real_time` and free words.

    A bare level or status name filters on it; other words must all appear in the
    job's symbol, type, source URL, origin, phase or id.
    """

    levels: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> JobFilter:
        levels: set[str] = set()
        statuses: set[str] = set()
        symbols: set[str] = set()
        types: set[str] = set()
        words: list[str] = []
        for token in text.lower().split():
            key, _, value = token.partition(":")
            if value and key in ("level", "lvl", "l"):
                levels.update(_expand(value, LEVEL_NAMES))
            elif value and key in ("status", "st"):
                statuses.update(_expand(value, STATUS_NAMES))
            elif value and key in ("sym", "symbol"):
                symbols.add(value.upper())
            elif value and key == "type":
                types.update(_expand(value, TYPE_NAMES))
            elif value and key in ("source", "src"):
                words.append(value)
            elif token in LEVEL_NAMES:
                levels.add(token)
            elif token in STATUS_NAMES:
                statuses.add(token)
            else:
                words.append(token)
        return cls(
            frozenset(levels),
            frozenset(statuses),
            frozenset(symbols),
            frozenset(types),
            tuple(words),
            text.strip(),
        )

    def matches(self, job: s.JobRow) -> bool:
        if self.levels and job.priority_level.value not in self.levels:
            return False
        if self.statuses and job.status.value not in self.statuses:
            return False
        if self.symbols and job.market_symbol not in self.symbols:
            return False
        if self.types and job.data_type.value not in self.types:
            return False
        if self.words:
            haystack = " ".join(
                (
                    job.market_symbol,
                    job.data_type.value,
                    job.source_url,
                    job.origin.value,
                    job.dispatch_phase.value if job.dispatch_phase else "",
                    job.job_id,
                    short_id(job.job_id),
                )
            ).lower()
            return all(word in haystack for word in self.words)
        return True

    @property
    def is_empty(self) -> bool:
        return not self.text

    def only(self, names: frozenset[str]) -> str | None:
        """The one name of a part of the filter, for the daemon's query (None: any or several)."""
        return next(iter(names)) if len(names) == 1 else None


def _expand(value: str, names: Iterable[str]) -> set[str]:
    """`c`, `crit` or `critical,high`: prefixes of the allowed names.

    A part naming nothing is kept as typed, so `level:urgent` matches no job
    (rather than silently matching every job).
    """
    out: set[str] = set()
    for part in value.split(","):
        found = {n for n in names if part and n.startswith(part)}
        out |= found or {part}
    return out


STATUS_URGENCY = {
    JobStatus.PROCESSING: 0,
    JobStatus.QUEUED: 1,
    JobStatus.FAILED: 2,
    JobStatus.CANCELLED: 3,
    JobStatus.COMPLETED: 4,
}
TYPE_ORDER = {GEXDataType.REAL_TIME: 0, GEXDataType.SNAPSHOT: 1, GEXDataType.HISTORICAL: 2}


def _when(value: datetime | None) -> float:
    """An instant as a sort key; none sorts after every instant."""
    return value.timestamp() if value is not None else float("inf")


def _name(value: StrEnum | None) -> str:
    return value.value if value is not None else "~"  # ~ sorts after every name


def _urgency(job: s.JobRow) -> tuple[Any, ...]:
    return (
        STATUS_URGENCY[job.status],
        job.priority_level.rank,
        _when(job.deadline),
        _when(job.queued_at),
    )


SORTS: dict[str, tuple[str, Callable[[s.JobRow], Any]]] = {
    # name: (what ascending means, key)
    "urgency": ("running first, then level, then deadline", _urgency),
    "level": ("most urgent level first", lambda j: (j.priority_level.rank, _when(j.queued_at))),
    "deadline": (
        "nearest deadline first",
        lambda j: (_when(j.deadline), j.priority_level.rank),
    ),
    "age": ("oldest first", lambda j: _when(j.queued_at)),
    "symbol": ("A to Z", lambda j: (j.market_symbol, _urgency(j))),
    "status": ("running, queued, failed, done", lambda j: (STATUS_URGENCY[j.status], _urgency(j))),
    "retries": ("fewest retries first", lambda j: (j.retry_count, _urgency(j))),
    "score": ("lowest score first", lambda j: j.priority_score),
    "type": ("real-time, snapshot, historical", lambda j: (TYPE_ORDER[j.data_type], _urgency(j))),
    "phase": ("A to Z", lambda j: (_name(j.dispatch_phase), _urgency(j))),
    "source": ("A to Z", lambda j: (j.source or j.source_url, _urgency(j))),
}
SORT_NAMES = tuple(SORTS)


class SortKeys:
    """Sort keys per job, computed again only for jobs that changed.

    The desk replaces a job's row whenever the job changes, so a key cached with
    the row it came from stays right for as long as that very row is current.
    Each key ends with the job id, so two jobs never tie and the heap compares
    plain tuples in C instead of calling back into Python for every comparison
    (at 10,000 live jobs that was most of a flush).
    """

    def __init__(self) -> None:
        self.sort = ""
        self._keys: dict[str, tuple[s.JobRow, tuple[Any, ...]]] = {}

    def keyed(self, jobs: Iterable[s.JobRow], sort: str) -> list[tuple[Any, ...]]:
        """`(key..., job_id)` for each job, from the cache where the row is unchanged."""
        if sort != self.sort:
            self._keys.clear()
            self.sort = sort
        compute = SORTS[sort][1]
        keys = self._keys
        out = []
        for job in jobs:
            hit = keys.get(job.job_id)
            if hit is None or hit[0] is not job:
                hit = (job, (compute(job), job.job_id))
                keys[job.job_id] = hit
            out.append(hit[1])
        if len(keys) > 2 * len(out) + 1000:  # forget the jobs that left
            live = {entry[-1] for entry in out}
            self._keys = {k: v for k, v in keys.items() if k in live}
        return out

    def job(self, job_id: str) -> s.JobRow:
        return self._keys[job_id][0]


def top_jobs(
    jobs: Iterable[s.JobRow],
    flt: JobFilter,
    sort: str,
    *,
    reverse: bool = False,
    cap: int = ROW_CAP,
    keys: SortKeys | None = None,
) -> tuple[list[s.JobRow], int]:
    """The first `cap` jobs passing `flt` in the chosen order, and how many passed."""
    passed = [j for j in jobs if flt.matches(j)] if not flt.is_empty else jobs
    keys = keys or SortKeys()
    keyed = keys.keyed(passed, sort)
    pick = heapq.nlargest if reverse else heapq.nsmallest
    return [keys.job(entry[-1]) for entry in pick(cap, keyed)], len(keyed)
