"""Job execution: the worker pool the scheduler drives, leases, retries, deadlines and recovery.

A dispatched job moves QUEUED -> PROCESSING with a lease (owner = this daemon
instance) that a heartbeat renews; the executor performs the attempt (fetch,
compute, persist); the runner decides what its outcome means. A failure is
classified: transient ones are retried with full-jitter backoff capped by the
remaining slack (PROCESSING -> FAILED -> QUEUED, the attempt counted),
permanent ones end FAILED with a message a trader can act on.

Deadlines: an unfinished job is breached the moment its deadline passes; a
queued job whose source is down (breaker open, disabled) fails then, with that
reason, instead of waiting unseen for probes.

Recovery: at start every QUEUED job goes back to the queue, and every
PROCESSING job whose lease expired is requeued with the attempt counted (or
failed, if its retries are used up); a lease still running is reaped when it
expires. Processing is idempotent, so running a job twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gexdaemon import readout
from gexdaemon.core.errors import Conflict, NotFound
from gexdaemon.core.estimates import ProcessingEstimates
from gexdaemon.core.models import (
    DomainContext,
    JobEvent,
    JobStatus,
    PriorityLevel,
    PriorityRequest,
    ProcessingJob,
    SlaStatus,
    base_url_of,
    check_transition,
)
from gexdaemon.core.retry import FailureCode, decide_retry, is_retryable
from gexdaemon.core.scheduler import Dispatch
from gexdaemon.core.settings import Settings
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.execute import Executor, Outcome
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.daemon.queue import JobQueue
from gexdaemon.daemon.snapshots import LatestSnapshots
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.daemon.writes import BackgroundWrites
from gexdaemon.storage.jobs import load_job, load_request, load_unfinished
from gexdaemon.storage.store import Change, PutJob, Store
from gexdaemon.tasks import finish_within

log = structlog.get_logger("gexdaemon.runner")


def retry_reason(by: str, new_cycle: bool, deadline: datetime | None) -> str:
    """A trader's retry as its history line (embedded and cluster mode alike)."""
    return (
        f"retried by {by}"
        + ("; a new cycle of attempts" if new_cycle else "")
        + (f"; deadline {readout.clock_time(deadline)} (from the retry)" if deadline else "")
    )


def bump_reason(
    before: PriorityLevel, after: PriorityLevel, by: str, deadline: datetime | None
) -> str:
    """A trader's change of level as its history line."""
    when = f"deadline {readout.clock_time(deadline)} (from the bump)" if deadline else "no deadline"
    return f"bumped from {before.value.upper()} to {after.value.upper()} by {by}; {when}"


@dataclass(kw_only=True, eq=False)
class Runner:
    settings: Settings
    instance: str
    queue: JobQueue
    store: Store
    writes: BackgroundWrites
    sources: SourceBook
    estimates: ProcessingEstimates
    executor: Executor
    latest: LatestSnapshots
    bus: EventBus
    clock: Clock
    domain_context: Callable[[], DomainContext]

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._foreign_leases: dict[uuid.UUID, datetime] = {}
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._stopping = False

    @property
    def queued(self) -> int:
        return self.queue.scheduler.queued_count

    @property
    def running(self) -> int:
        return self.queue.scheduler.in_flight_count

    # -- scheduling loop ----------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    async def loop(self) -> None:
        sched, queue, mono = self.queue.scheduler, self.queue, self.clock.mono
        while not self._stopping:
            self._dispatch_ready()
            forecast_at = queue.forecast_due()
            if forecast_at is not None and forecast_at <= mono():
                queue.forecast()
            wakes = [t for t in (sched.next_wakeup(), queue.forecast_due()) if t is not None]
            timeout = max(0.0, min(wakes) - mono()) if wakes else 60.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 60.0))

    def _dispatch_ready(self) -> None:
        sched, book = self.queue.scheduler, self.queue.book
        while not self._stopping and sched.free_slots > 0:
            dispatch = sched.dispatch()
            if dispatch is None:
                return
            live = book.live(dispatch.job_id)  # type: ignore[arg-type]
            if live is None or live.job.status is not JobStatus.QUEUED:
                sched.finish(dispatch.job_id, 0.0)
                continue
            task = asyncio.create_task(self._run(live, dispatch), name=f"job-{live.job_id}")
            self._tasks[live.job_id] = task

    # -- one job --------------------------------------------------------------------

    async def _run(self, live: LiveJob, dispatch: Dispatch) -> None:
        clock = self.clock
        structlog.contextvars.bind_contextvars(job_id=str(live.job_id))
        started_mono = clock.mono()
        slot_held = True

        def release_slot() -> float:
            # The scheduler must see the slot free before a retry re-enters it.
            nonlocal slot_held
            ran_s = clock.mono() - started_mono
            if slot_held:
                slot_held = False
                self.queue.scheduler.finish(live.job_id, ran_s)
            return ran_s

        try:
            now = clock.now()
            before = live.job
            running, event = before.transition(
                JobStatus.PROCESSING,
                now,
                lease_owner=self.instance,
                lease_expires_at=now + timedelta(seconds=self.settings.daemon.lease_s),
                dispatch_phase=dispatch.phase.value,
                at_risk=before.at_risk or dispatch.at_risk,
                next_attempt_at=None,
                context=self.domain_context(),
            )
            await self.store.commit([PutJob(running, event, previous=before)])
            live.job = running
            live.dispatch_phase = dispatch.phase.value
            self.bus.publish(
                EventType.JOB_STARTED,
                lambda: present.job_notice(live, waited_s=round(dispatch.waited_s, 3)),
            )
            heartbeat = asyncio.create_task(self._heartbeat(live))
            try:
                outcome = await self.executor.attempt(live)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if outcome.ok and outcome.snapshot is not None:
                summary = present.snapshot_summary(outcome.snapshot.snapshot_row)
                live.snapshot_id = summary.snapshot_id
                self.latest.note(summary)
                self.bus.publish(EventType.SNAPSHOT_CREATED, present.snapshot_notice(summary, live))
            await self._finish(live, outcome, release_slot())
        except asyncio.CancelledError:
            release_slot()
            if live.cancel_requested:
                await self._write_cancel(live, "cancelled by a trader while running")
            elif not self._stopping:
                raise
        except Exception as exc:  # a bug or the store failing: never let a job vanish
            log.exception("job crashed", error=str(exc))
            ran_s = release_slot()
            with contextlib.suppress(Exception):
                crash = Outcome(
                    ok=False,
                    code=FailureCode.WORKER_LOST,
                    message=f"internal error: {type(exc).__name__}: {exc}",
                )
                await self._finish(live, crash, ran_s)
        finally:
            release_slot()
            self._tasks.pop(live.job_id, None)
            self.sources.job_ended(live.source_key)
            structlog.contextvars.unbind_contextvars("job_id")
            self.kick()

    async def _heartbeat(self, live: LiveJob) -> None:
        interval = self.settings.daemon.heartbeat_s
        lease = timedelta(seconds=self.settings.daemon.lease_s)
        while True:
            await asyncio.sleep(interval)
            current = live.job
            if current.status is not JobStatus.PROCESSING:
                return
            renewed = current.evolve(lease_expires_at=self.clock.now() + lease)
            live.job = renewed
            self.writes.soon(PutJob(renewed, previous=current))

    async def _finish(self, live: LiveJob, outcome: Outcome, ran_s: float) -> None:
        now = self.clock.now()
        before = live.job
        if before.status is not JobStatus.PROCESSING:
            return  # cancelled meanwhile; the cancel wrote the final state
        sla_status = self._sla_at(before, now)
        if outcome.ok:
            done, event = before.transition(
                JobStatus.COMPLETED,
                now,
                records_processed=outcome.records,
                data_size_bytes=outcome.size_bytes,
                sla_status=sla_status,
            )
            await self.store.commit([PutJob(done, event, previous=before)])
            self._settle(live, done)
            self.estimates.observe(live.source_key, live.request.data_type, ran_s)
            self.bus.publish(
                EventType.JOB_COMPLETED, lambda: present.job_notice(live, ran_s=round(ran_s, 3))
            )
            return
        code = outcome.code or FailureCode.WORKER_LOST
        message = f"{code.value}: {outcome.message}"
        deadline = before.deadline
        slack = None
        if deadline is not None:
            remaining = (deadline - now).total_seconds() - live.estimate_s
            slack = remaining if remaining > 0 else None  # past hope: late data still beats none
        retry = self.settings.retry
        decision = decide_retry(
            code,
            retries_done=before.retry_count,
            max_retries=retry.max_retries,
            base_s=retry.base_delay_s,
            max_s=retry.max_delay_s,
            remaining_slack_s=slack,
            rng=self._rng,
            retry_after_s=outcome.retry_after_s,
        )
        if not decision.retry and is_retryable(code):
            # The fetcher said "will retry"; the job's last word must say it gave up, and why.
            message = (
                f"{code.value}: {outcome.message.removesuffix('; will retry')}; {decision.reason}"
            )
        failed, fail_event = before.transition(
            JobStatus.FAILED,
            now,
            reason=message,
            sla_status=sla_status if not decision.retry else before.sla_status,
        )
        if not decision.retry:
            final_status = (
                SlaStatus.BREACHED if before.sla_status is not SlaStatus.NONE else SlaStatus.NONE
            )
            failed = failed.evolve(sla_status=final_status)
            await self.store.commit([PutJob(failed, fail_event, previous=before)])
            if before.sla_status is SlaStatus.PENDING:  # failed for good before its deadline
                self.queue.sla_watch.record_breach(before.priority_level)
            self._settle(live, failed)
            self.bus.publish(
                EventType.JOB_FAILED,
                present.job_notice(live, reason=decision.reason, code=code.value),
            )
            log.warning(
                "job failed", code=code.value, reason=decision.reason, message=outcome.message
            )
            return
        requeued, retry_event = failed.transition(
            JobStatus.QUEUED,
            now,
            reason=decision.reason,
            next_attempt_at=now + timedelta(seconds=decision.delay_s),
            context=self.domain_context(),
        )
        await self.store.commit(
            [
                PutJob(failed, fail_event, previous=before),
                PutJob(requeued, retry_event, previous=failed),
            ]
        )
        live.job = requeued
        self.queue.book.update(requeued)
        self.bus.publish(
            EventType.JOB_RETRYING,
            present.job_notice(
                live,
                reason=decision.reason,
                code=code.value,
                delay_s=round(decision.delay_s, 3),
            ),
        )
        log.info(
            "job will retry",
            code=code.value,
            delay_s=round(decision.delay_s, 2),
            retry=requeued.retry_count,
        )
        self.queue.requeue(live, not_before=self.clock.mono() + decision.delay_s)

    @staticmethod
    def _sla_at(job: ProcessingJob, now: datetime) -> SlaStatus:
        if job.deadline is None:
            return SlaStatus.NONE
        if job.sla_status is SlaStatus.BREACHED or now > job.deadline:
            return SlaStatus.BREACHED
        return SlaStatus.MET

    def _settle(self, live: LiveJob, job: ProcessingJob) -> None:
        live.job = job
        live.at_risk_reason = live.at_risk_reason if job.at_risk else ""
        self.queue.book.update(job)
        watch = self.queue.sla_watch
        watch.unwatch(job.job_id)
        met = None if job.sla_status is SlaStatus.NONE else job.sla_status is SlaStatus.MET
        watch.record_finish(job.priority_level, met=met, flagged=job.at_risk)

    # -- deadlines ---------------------------------------------------------------

    def on_deadline(self, job_id: uuid.UUID) -> None:
        """A deadline passed: an unfinished job is breached now, not when it ends; a queued
        job whose source is down fails now, with that reason."""
        live = self.queue.book.live(job_id)
        if live is None or live.job.status.is_final or live.job.sla_status is not SlaStatus.PENDING:
            return
        before = live.job
        now = self.clock.now()
        late_by = (now - before.deadline).total_seconds() if before.deadline else 0.0
        self.queue.sla_watch.record_breach(before.priority_level)
        log.warning(
            "sla breached",
            job_id=str(job_id),
            job=readout.short_id(job_id),
            priority_level=before.priority_level.value,
            status=before.status.value,
            phase=before.dispatch_phase,
            retries=before.retry_count,
            source=live.source_key,
        )
        blocked = self.sources.blocked_reason(live.source_key)
        if before.status is JobStatus.QUEUED and blocked is not None:
            self._expire(live, f"the deadline passed while {blocked}")
            return
        breached = before.evolve(sla_status=SlaStatus.BREACHED)
        live.job = breached
        self.writes.soon(PutJob(breached, previous=before))
        self.bus.publish(
            EventType.SLA_BREACHED, present.job_notice(live, late_by_s=round(late_by, 3))
        )

    def _expire(self, live: LiveJob, reason: str) -> None:
        """QUEUED -> FAILED at the deadline: its source is down and nothing will run it in time."""
        self.queue.scheduler.cancel(live.job_id)
        before = live.job
        failed, event = before.transition(
            JobStatus.FAILED,
            self.clock.now(),
            reason=f"{FailureCode.SOURCE_DOWN.value}: {reason}",
            sla_status=SlaStatus.BREACHED,
        )
        self.writes.soon(PutJob(failed, event, previous=before))
        self._settle(live, failed)
        self.bus.publish(
            EventType.JOB_FAILED,
            present.job_notice(live, reason=reason, code=FailureCode.SOURCE_DOWN.value),
        )

    # -- trader actions -------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID) -> LiveJob:
        live = self.queue.book.get(job_id)
        if live is None:
            raise NotFound(f"no live job {job_id}; finished jobs cannot be cancelled")
        status = live.job.status
        if status is JobStatus.QUEUED:
            self.queue.scheduler.cancel(job_id)
            await self._write_cancel(live, "cancelled by a trader while queued")
            return live
        if status is JobStatus.PROCESSING:
            live.cancel_requested = True
            task = self._tasks.get(job_id)
            if task is None:
                # Running under the lease of an instance that died: nothing here runs it,
                # so cancelling the task would cancel nothing. Write the cancel now; the
                # lease reaper then finds the job final and leaves it.
                self._foreign_leases.pop(job_id, None)
                await self._write_cancel(live, "cancelled by a trader while its worker was gone")
                return live
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
            return live
        raise finished_conflict(live.job)

    async def _write_cancel(self, live: LiveJob, reason: str) -> None:
        before = live.job
        cancelled, event = before.transition(JobStatus.CANCELLED, self.clock.now(), reason=reason)
        await self.store.commit([PutJob(cancelled, event, previous=before)])
        live.job = cancelled
        self.queue.book.update(cancelled)
        self.queue.sla_watch.unwatch(before.job_id)
        self.bus.publish(EventType.JOB_CANCELLED, present.job_notice(live, reason=reason))

    async def retry(self, job_id: uuid.UUID, *, by: str) -> LiveJob:
        """A trader's retry of a FAILED job: a new cycle of attempts, in its history.

        Its deadline runs from the retry (the old one passed, or the job would not
        have failed); a breach already recorded stands.
        """
        live = self.queue.book.get(job_id)
        if live is None:
            live = await self._load_live(job_id)
        before = live.job
        check_transition(before.status, JobStatus.QUEUED)  # names both states unless FAILED
        now = self.clock.now()
        deadline = self.queue.deadline_for(before.priority_level, now)
        cycle = before.retry_count >= self.settings.retry.max_retries
        requeued, event = before.transition(
            JobStatus.QUEUED,
            now,
            reason=retry_reason(by, cycle, deadline),
            next_attempt_at=None,
            context=self.domain_context(),
            new_cycle=cycle,
            deadline=deadline,
            sla_status=before.sla_status
            if before.sla_status in (SlaStatus.BREACHED, SlaStatus.NONE)
            else SlaStatus.PENDING,
        )
        await self.store.commit([PutJob(requeued, event, previous=before)])
        live.job = requeued
        live.enqueued_mono = self.clock.mono()
        live.deadline_mono = self.clock.to_mono(deadline)
        self.bus.publish(
            EventType.JOB_RETRYING, present.job_notice(live, reason=f"retried by {by}")
        )
        self.queue.requeue(live)
        self.kick()
        return live

    async def set_level(self, job_id: uuid.UUID, level: PriorityLevel, *, by: str) -> LiveJob:
        """A trader's bump: a queued job moves to another level, its deadline running from now.

        The bump is in the job's history (when, from, to, by whom). The deadline is
        the new level's SLA counted from the bump, not from the request: a job queued
        for minutes and bumped to CRITICAL gets its 30 s from the moment it is bumped.
        """
        live = self.queue.book.live(job_id)
        if live is None or live.job.status is not JobStatus.QUEUED:
            raise Conflict(
                "only a QUEUED job can change level; this one is "
                f"{live.job.status.value.upper() if live else 'not live'}"
            )
        before = live.job
        if level is before.priority_level:
            return live
        if not self.queue.scheduler.cancel(job_id):
            # Dispatched a moment ago: the book says QUEUED until the worker reports in.
            raise Conflict("only a QUEUED job can change level; this one has just started")
        now = self.clock.now()
        deadline = self.queue.deadline_for(level, now)
        moved = before.evolve(
            priority_level=level,
            deadline=deadline,
            sla_status=SlaStatus.NONE if deadline is None else SlaStatus.PENDING,
            at_risk=False,
            version=before.version + 1,
            updated_at=now,
        )
        event = JobEvent.model_construct(
            job_id=job_id,
            seq=moved.version,
            occurred_at=now,
            from_status=JobStatus.QUEUED,
            to_status=JobStatus.QUEUED,
            reason=bump_reason(before.priority_level, level, by, deadline),
        )
        await self.store.commit([PutJob(moved, event, previous=before)])
        live.job = moved
        live.at_risk_reason = ""
        live.enqueued_mono = self.clock.mono()
        live.deadline_mono = self.clock.to_mono(deadline)
        self.queue.sla_watch.unwatch(job_id)
        self.bus.publish(
            EventType.JOB_LEVEL_CHANGED,
            present.job_notice(live, from_level=before.priority_level, reason=event.reason),
        )
        self.queue.requeue(live)
        self.kick()
        return live

    async def _load_live(self, job_id: uuid.UUID) -> LiveJob:
        job = await self.store.read(load_job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        request = await self.store.read(load_request, job.request_id)
        if request is None:
            raise NotFound(f"job {job_id} has no request (archived?)")
        return self._live_from(request, job)

    def _live_from(self, request: PriorityRequest, job: ProcessingJob) -> LiveJob:
        source = base_url_of(request.source_url)
        clock = self.clock
        live = LiveJob(
            request=request,
            job=job,
            source_key=source,
            estimate_s=request.estimated_processing_time.total_seconds()
            or self.estimates.estimate(source, request.data_type),
            enqueued_mono=clock.to_mono(job.queued_at) or clock.mono(),
            deadline_mono=clock.to_mono(job.deadline),
        )
        self.queue.book.add(live)
        return live

    # -- start-up and shutdown ----------------------------------------------------

    async def recover(self) -> None:
        """Reload unfinished jobs; requeue those whose lease expired (a crash), count it."""
        found = await self.store.read(load_unfinished)
        now = self.clock.now()
        requeue_changes: list[Change] = []
        loaded = reaped = 0
        for request, job in found:
            live = self._live_from(request, job)
            if job.status is JobStatus.PROCESSING:
                if (
                    job.lease_expires_at is not None
                    and job.lease_expires_at > now
                    and job.lease_owner != self.instance
                ):
                    self._foreign_leases[job.job_id] = job.lease_expires_at
                    continue
                requeue_changes += self._reap(live, now)
                reaped += 1
            loaded += 1
        if requeue_changes:
            await self.store.commit(requeue_changes)
        watch = self.queue.sla_watch
        for live in list(self.queue.book):
            if live.job.status is JobStatus.QUEUED:
                not_before = self.clock.to_mono(live.job.next_attempt_at) or 0.0
                self.queue.requeue(live, not_before=not_before)
            elif live.job.deadline is not None and live.job.sla_status is SlaStatus.PENDING:
                watch.watch(live.job_id, live.deadline_mono or self.clock.mono())
        log.info(
            "recovered jobs",
            loaded=loaded,
            lease_expired=reaped,
            leases_running=len(self._foreign_leases),
        )

    def _reap(self, live: LiveJob, now: datetime) -> list[Change]:
        """PROCESSING -> FAILED ("worker lost") -> QUEUED, or FAILED for good if out of retries."""
        before = live.job
        reason = (
            f"{FailureCode.WORKER_LOST.value}: the worker holding this job stopped (lease expired)"
        )
        failed, fail_event = before.transition(
            JobStatus.FAILED, max(now, before.started_at or now), reason=reason
        )
        changes: list[Change] = [PutJob(failed, fail_event, previous=before)]
        if before.retry_count < self.settings.retry.max_retries:
            requeued, event = failed.transition(
                JobStatus.QUEUED,
                now,
                reason="requeued after the lease expired",
                context=self.domain_context(),
            )
            changes.append(PutJob(requeued, event, previous=failed))
            live.job = requeued
            self.queue.book.add(live)
        else:
            live.job = failed
            self.queue.book.update(failed)
        return changes

    async def lease_reaper(self) -> None:
        """Requeue jobs whose lease (held by a previous instance) runs out after we started."""
        while True:
            if not self._foreign_leases:
                await asyncio.sleep(3600)
                continue
            job_id, expires = min(self._foreign_leases.items(), key=lambda kv: kv[1])
            await asyncio.sleep(max(0.0, (expires - self.clock.now()).total_seconds()))
            self._foreign_leases.pop(job_id, None)
            live = self.queue.book.live(job_id)
            if live is None or live.job.status is not JobStatus.PROCESSING:
                continue
            await self.store.commit(self._reap(live, self.clock.now()))
            if live.job.status.value == JobStatus.QUEUED.value:  # _reap requeued it
                self.queue.requeue(live)
                self.kick()

    async def drain(self, grace_s: float) -> None:
        """Stop dispatching; let running jobs finish for `grace_s`, then release their leases."""
        self._stopping = True
        self._wake.set()
        running = list(self._tasks.values())
        if running:
            log.info("waiting for running jobs", count=len(running), grace_s=grace_s)
            await finish_within(running, grace_s)
            released = []
            now = self.clock.now()
            for live in self.queue.book:
                if (
                    live.job.status is JobStatus.PROCESSING
                    and live.job.lease_owner == self.instance
                ):
                    before = live.job
                    live.job = before.evolve(lease_expires_at=now)
                    released.append(PutJob(live.job, previous=before))
            if released:
                await self.store.commit(released)
                log.info("released leases", count=len(released))
        await self.writes.drain()


def finished_conflict(job: ProcessingJob) -> Conflict:
    """The answer to changing a job that already ended: what it ended as, and when."""
    when = readout.market_time(job.completed_at) if job.completed_at else "an unknown time"
    return Conflict(
        f"job {readout.short_id(job.job_id)} already {job.status.value} at {when}; "
        "only QUEUED or PROCESSING jobs can be cancelled"
    )
