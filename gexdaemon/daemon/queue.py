"""The queue of live work: jobs in the book and the scheduler, their deadlines watched, their risks told.

Intake admits new jobs here, the runner requeues retries and recovered jobs here,
and both read it. Admitting a job files it in the book (what the API and the
dashboard read), hands it to the scheduler, arms its SLA timer and announces it.
The scheduler's forecast runs here too: each change of a job's at-risk flag is
written to the job and published with its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from gexdaemon import readout
from gexdaemon.core.scheduler import Admission, LevelStats, SchedJob, Scheduler
from gexdaemon.core.settings import SlaSettings
from gexdaemon.core.vocab import EventType, JobStatus, PriorityLevel, SlaStatus
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.jobbook import JobBook, LiveJob
from gexdaemon.daemon.sla import SlaWatch
from gexdaemon.daemon.writes import BackgroundWrites
from gexdaemon.protocol.shapes import LevelFigures
from gexdaemon.storage.store import PutJob

FORECAST_EVERY_S = 1.0
"""How often the at-risk forecast runs while work is queued (and after every change)."""


@dataclass(kw_only=True, eq=False)
class JobQueue:
    book: JobBook
    scheduler: Scheduler
    sla_watch: SlaWatch
    sla: SlaSettings
    bus: EventBus
    clock: Clock
    writes: BackgroundWrites

    def __post_init__(self) -> None:
        self._forecast_at = -1e18
        # Reasons name the wall-clock time a source reopens, as the desk reads clocks.
        self.scheduler.describe_time = lambda mono: readout.clock_time(self.clock.to_wall(mono))
        self.scheduler.describe_source = readout.source_host

    # -- admission ------------------------------------------------------------------

    def admit(self, live: LiveJob, *, not_before: float = 0.0) -> Admission:
        """File a job in the book and the scheduler; its at-risk flag from the admission forecast."""
        self.book.add(live)
        admission = self.scheduler.submit(
            SchedJob(
                job_id=live.job_id,
                level=live.job.priority_level,
                source=live.source_key,
                deadline=live.deadline_mono,
                estimate_s=live.estimate_s,
                enqueued_at=live.enqueued_mono,
                not_before=not_before,
            )
        )
        if admission.at_risk:
            live.at_risk_reason = admission.reason
            if not live.job.at_risk:
                live.job = live.job.model_copy(update={"at_risk": True})  # a bool on a valid job
        return admission

    def announce(self, live: LiveJob) -> None:
        """Arm the job's SLA timer and tell the world it is queued."""
        if live.deadline_mono is not None and live.job.sla_status is SlaStatus.PENDING:
            self.sla_watch.watch(live.job_id, live.deadline_mono)
        self.bus.publish(EventType.JOB_QUEUED, lambda: present.job_notice(live))

    def requeue(self, live: LiveJob, *, not_before: float = 0.0) -> None:
        """Put a job loaded at start-up, retried or re-levelled back in the queue."""
        before = live.job
        self.admit(live, not_before=not_before)
        if live.job.at_risk and not before.at_risk:
            self.writes.soon(PutJob(live.job, previous=before))
        self.announce(live)

    def forget(self, job_id: uuid.UUID) -> None:
        """Take out a job whose admission was not committed."""
        self.scheduler.cancel(job_id)
        self.book.discard(job_id)

    def deadline_for(self, level: PriorityLevel, start: datetime) -> datetime | None:
        """The SLA deadline of a job of `level` whose clock starts at `start` (None for LOW)."""
        seconds = self.sla.seconds_for(level)
        return start + timedelta(seconds=seconds) if seconds is not None else None

    # -- risk ---------------------------------------------------------------------------

    def forecast_due(self) -> float | None:
        """When the next forecast is due (None while nothing with a deadline is queued)."""
        if not self.scheduler.queued_count:
            return None
        return self._forecast_at + FORECAST_EVERY_S

    def forecast(self) -> None:
        """Run the scheduler's forecast; write and announce every flag it raised or cleared."""
        self._forecast_at = self.clock.mono()
        self.scheduler.forecast()
        for change in self.scheduler.take_risk_changes():
            live = self.book.live(change.job_id)  # type: ignore[arg-type]
            if live is None or not live.job.status.is_live:
                continue
            live.at_risk_reason = change.reason
            if live.job.at_risk != change.at_risk:
                before = live.job
                live.job = before.evolve(at_risk=change.at_risk)
                self.writes.soon(PutJob(live.job, previous=before))
            kind = EventType.SLA_AT_RISK if change.at_risk else EventType.SLA_RISK_CLEARED
            self.bus.publish(kind, present.job_notice(live))

    # -- what the API and the dashboard read ----------------------------------------------

    def live_jobs(self, limit: int = 500) -> list[LiveJob]:
        """Running first, then queued; by level, then deadline."""
        order = {JobStatus.PROCESSING: 0, JobStatus.QUEUED: 1}
        far = timedelta(days=3650)
        jobs = sorted(
            self.book,
            key=lambda e: (
                order.get(e.job.status, 2),
                e.job.priority_level.rank,
                e.job.deadline or e.job.queued_at + far,
            ),
        )
        return jobs[:limit]

    def figures(self) -> list[LevelFigures]:
        """Per level: the queue (from the scheduler) and its SLA record."""
        mono = self.clock.mono()
        stats: dict[PriorityLevel, LevelStats] = self.scheduler.stats(mono)
        out = []
        for level in PriorityLevel:
            st = stats[level]
            sla = self.sla_watch.summary(level)
            out.append(
                LevelFigures(
                    level=level,
                    depth=st.depth,
                    delayed=st.delayed,
                    in_flight=st.in_flight,
                    at_risk=st.at_risk,
                    oldest_wait_s=st.oldest_wait_s,
                    next_deadline_in_s=(st.next_deadline - mono)
                    if st.next_deadline is not None
                    else None,
                    sla_s=self.sla.seconds_for(level),
                    sla_met_ratio=sla.sla_met_ratio,
                    finished_last_hour=sla.finished_last_hour,
                    breaches_last_hour=sla.breaches_last_hour,
                    throughput_per_min=sla.throughput_per_min,
                    met_total=sla.met_total,
                    breached_total=sla.breached_total,
                    at_risk_precision=sla.at_risk_precision,
                )
            )
        return out
