"""The daemon's in-memory view of live work: every unfinished job with its request.

The database is the record; this book is what the scheduler, the runner, the
SLA watch and the event-stream snapshot read without a query. Finished jobs stay
in a bounded "recent" ring so the dashboard can show what just happened.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from gexdaemon.core.models import JobStatus, PriorityRequest, ProcessingJob


@dataclass(eq=False)
class LiveJob:
    request: PriorityRequest
    job: ProcessingJob
    source_key: str
    estimate_s: float
    enqueued_mono: float
    deadline_mono: float | None
    cancel_requested: bool = False
    dispatch_phase: str | None = None
    snapshot_id: str | None = None
    at_risk_reason: str = ""  # why the forecast says it will miss its deadline, in words

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.job_id


class JobBook:
    def __init__(self, recent_limit: int = 2000) -> None:
        self._live: dict[uuid.UUID, LiveJob] = {}
        self._recent: OrderedDict[uuid.UUID, LiveJob] = OrderedDict()
        self._recent_limit = recent_limit

    def add(self, live: LiveJob) -> None:
        self._recent.pop(live.job_id, None)
        self._live[live.job_id] = live

    def get(self, job_id: uuid.UUID) -> LiveJob | None:
        return self._live.get(job_id) or self._recent.get(job_id)

    def discard(self, job_id: uuid.UUID) -> None:
        self._live.pop(job_id, None)
        self._recent.pop(job_id, None)

    def live(self, job_id: uuid.UUID) -> LiveJob | None:
        return self._live.get(job_id)

    def update(self, job: ProcessingJob) -> LiveJob | None:
        """Record a job's new state; a final state moves it to the recent ring."""
        entry = self._live.get(job.job_id) or self._recent.get(job.job_id)
        if entry is None:
            return None
        entry.job = job
        if job.status.is_final or job.status is JobStatus.FAILED:
            self._live.pop(job.job_id, None)
            self._recent[job.job_id] = entry
            self._recent.move_to_end(job.job_id)
            while len(self._recent) > self._recent_limit:
                self._recent.popitem(last=False)
        else:
            self._recent.pop(job.job_id, None)
            self._live[job.job_id] = entry
        return entry

    def __iter__(self) -> Iterator[LiveJob]:
        return iter(tuple(self._live.values()))

    def recent(self) -> list[LiveJob]:
        return list(reversed(self._recent.values()))

    def __len__(self) -> int:
        return len(self._live)

    def count(self, status: JobStatus) -> int:
        return sum(1 for e in self._live.values() if e.job.status is status)
