"""Job execution: the worker pool the scheduler drives, leases, retries and recovery.

A dispatched job moves QUEUED -> PROCESSING with a lease (owner = this daemon
instance) that a heartbeat renews; it fetches its chain (HTTP, or a file the
drop folder or `ingest` stored inside the data directory), computes the
snapshot on the compute threads, persists it (idempotent per job), and ends
COMPLETED. A failure is classified: transient ones are retried with full-jitter
backoff capped by the remaining slack (PROCESSING -> FAILED -> QUEUED, the
attempt counted), permanent ones end FAILED with a message a trader can act on.

Recovery: at start every QUEUED job goes back to the scheduler, and every
PROCESSING job whose lease expired is requeued with the attempt counted (or
failed, if its retries are used up); a lease still running is reaped when it
expires. Processing is idempotent, so running a job twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import structlog

from gexdaemon.core.errors import Conflict, GexError, IllegalTransition, InvalidInput, NotFound
from gexdaemon.core.models import (
    JobStatus,
    PriorityLevel,
    PriorityRequest,
    ProcessingJob,
    SlaStatus,
    base_url_of,
    check_transition,
)
from gexdaemon.core.retry import SOURCE_FAULTS, FailureCode, decide_retry, is_retryable
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon import present
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.fetch.http import FetchError, fetch_to_file
from gexdaemon.pipeline.snapshot import compute_snapshot
from gexdaemon.storage.jobs import load_job, load_request, load_unfinished
from gexdaemon.storage.snapshots import persist_snapshot_async
from gexdaemon.storage.store import Change, PutJob

if TYPE_CHECKING:
    from gexdaemon.core.scheduler import Dispatch
    from gexdaemon.daemon.app import Daemon

log = structlog.get_logger("gexdaemon.runner")

# Extra time a job may take beyond its fetch timeout for parse, compute and persist.
COMPUTE_BUDGET_S = 120.0


@dataclass
class Outcome:
    ok: bool
    records: int = 0
    size_bytes: int = 0
    snapshot_id: str | None = None
    code: FailureCode | None = None
    message: str = ""
    retry_after_s: float | None = None
    source_fault: bool = False
    fetch_s: float = 0.0


class Runner:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self._wake = asyncio.Event()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._foreign_leases: dict[uuid.UUID, datetime] = {}
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._stopping = False
        self._pending_writes: set[asyncio.Future[None]] = set()
        # Python shares one core between threads (the GIL): left alone, three LOW chains
        # computing in threads beside a CRITICAL one gave it a quarter of the CPU. So
        # non-CRITICAL chains compute in separate processes, at most `compute_slots` at
        # once (a slot here), and CRITICAL ones in this process's threads, at once.
        self.compute_gate = asyncio.Semaphore(
            daemon.settings.daemon.shared_compute_slots(os.cpu_count() or 1)
        )

    # -- scheduling loop ----------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    async def loop(self) -> None:
        sched = self.d.scheduler
        while not self._stopping:
            self._dispatch_ready()
            self._flag_new_risks()
            wake_at = sched.next_wakeup()
            timeout = None if wake_at is None else max(0.0, wake_at - self.d.mono())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=min(timeout, 60.0) if timeout is not None else 60.0
                )

    def _dispatch_ready(self) -> None:
        sched = self.d.scheduler
        while not self._stopping and sched.free_slots > 0:
            dispatch = sched.dispatch()
            if dispatch is None:
                return
            live = self.d.book.live(dispatch.job_id)  # type: ignore[arg-type]
            if live is None or live.job.status is not JobStatus.QUEUED:
                sched.finish(dispatch.job_id, 0.0)
                continue
            task = asyncio.create_task(self._run(live, dispatch), name=f"job-{live.job_id}")
            self._tasks[live.job_id] = task

    def _flag_new_risks(self) -> None:
        for job_id in self.d.scheduler.take_at_risk():
            live = self.d.book.live(job_id)  # type: ignore[arg-type]
            if live is None or live.job.at_risk:
                continue
            flagged = live.job.evolve(at_risk=True)
            self.persist_soon(PutJob(flagged, previous=live.job))
            live.job = flagged
            self.d.publish(EventType.SLA_AT_RISK, present.job_notice(live))

    def persist_soon(self, *changes: Change) -> None:
        """Write without waiting (flags and lease renewals); failures are logged."""
        store = self.d.store
        if store is None:
            return
        fut = asyncio.ensure_future(store.commit(list(changes)))
        self._pending_writes.add(fut)

        def done(f: asyncio.Future[None]) -> None:
            self._pending_writes.discard(f)
            if not f.cancelled() and f.exception() is not None:
                log.error("background write failed", error=str(f.exception()))

        fut.add_done_callback(done)

    # -- one job --------------------------------------------------------------------

    async def _run(self, live: LiveJob, dispatch: Dispatch) -> None:
        d = self.d
        structlog.contextvars.bind_contextvars(job_id=str(live.job_id))
        started_mono = d.mono()
        slot_held = True

        def release_slot() -> float:
            # The scheduler must see the slot free before a retry re-enters it.
            nonlocal slot_held
            ran_s = d.mono() - started_mono
            if slot_held:
                slot_held = False
                d.scheduler.finish(live.job_id, ran_s)
            return ran_s

        try:
            now = d.now()
            before = live.job
            running, event = before.transition(
                JobStatus.PROCESSING,
                now,
                lease_owner=d.instance,
                lease_expires_at=now + timedelta(seconds=d.settings.daemon.lease_s),
                dispatch_phase=dispatch.phase.value,
                at_risk=before.at_risk or dispatch.at_risk,
                next_attempt_at=None,
                context=d.config.domain_context(),
            )
            await d.require_store().commit([PutJob(running, event, previous=before)])
            live.job = running
            live.dispatch_phase = dispatch.phase.value
            d.publish(
                EventType.JOB_STARTED,
                lambda: present.job_notice(live, waited_s=round(dispatch.waited_s, 3)),
            )
            heartbeat = asyncio.create_task(self._heartbeat(live))
            try:
                outcome = await self._guarded_execute(live)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
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
            d.sources.job_ended(live.source_key)
            structlog.contextvars.unbind_contextvars("job_id")
            self.kick()

    async def _guarded_execute(self, live: LiveJob) -> Outcome:
        timeout = (
            self.d.settings.sources.timeouts.for_level(live.job.priority_level) + COMPUTE_BUDGET_S
        )
        try:
            return await asyncio.wait_for(self._execute(live), timeout)
        except TimeoutError:
            return Outcome(
                ok=False,
                code=FailureCode.TIMEOUT,
                source_fault=True,
                message=f"the job ran longer than {timeout:.0f} s and was stopped",
            )

    async def _execute(self, live: LiveJob) -> Outcome:
        d = self.d
        request = live.request
        url = request.source_url
        fetched: Path | None = None
        fetch_started = time.perf_counter()
        try:
            if url.startswith("file://"):
                path = self._local_file(url)
                size = path.stat().st_size
                fetch_s = 0.0
            else:
                assert d.http is not None
                src = d.settings.sources
                download = await fetch_to_file(
                    d.http,
                    url,
                    d.tmp_dir,
                    timeout_s=src.timeouts.for_level(live.job.priority_level),
                    connect_timeout_s=src.connect_timeout_s,
                    max_bytes=src.max_body_bytes,
                    max_redirects=src.max_redirects,
                    allowed_hosts=src.allowed_hosts,
                )
                fetched = path = download.path
                size = download.size_bytes
                fetch_s = download.elapsed_s
            d.sources.record(
                live.source_key, ok=True, elapsed_s=time.perf_counter() - fetch_started
            )
        except FetchError as exc:
            # Every failed fetch counts against reliability (successful / total); only the
            # faults that say the source is unwell (timeouts, 5xx, ...) feed its breaker.
            fault = exc.failure in SOURCE_FAULTS
            d.sources.record(
                live.source_key,
                ok=False,
                elapsed_s=time.perf_counter() - fetch_started,
                breaker_fault=fault,
            )
            return Outcome(
                ok=False,
                code=exc.failure,
                message=exc.message,
                source_fault=fault,
                retry_after_s=getattr(exc, "retry_after_s", None),
            )
        except OSError as exc:
            return Outcome(
                ok=False,
                code=FailureCode.UNPARSEABLE,
                message=f"cannot read {unquote(urlsplit(url).path)}: {exc.strerror or exc}",
            )
        try:
            loop = asyncio.get_running_loop()
            compute = functools.partial(
                compute_snapshot,
                path,
                job_id=live.job_id,
                symbol_hint=request.market_symbol,
                settings=d.settings.gex,
                now=d.now(),
                context=d.config.domain_context(allow_any_symbol=True),
            )
            try:
                if live.job.priority_level is PriorityLevel.CRITICAL or d.compute_procs is None:
                    snapshot = await loop.run_in_executor(d.compute_pool, compute)
                else:
                    async with self.compute_gate:  # CPU stays free for CRITICAL work
                        try:
                            snapshot = await loop.run_in_executor(d.compute_procs, compute)
                        except BrokenProcessPool:
                            d.restart_compute_processes()
                            return Outcome(
                                ok=False,
                                code=FailureCode.WORKER_LOST,
                                size_bytes=size,
                                message="the compute process died (killed or out of memory)",
                            )
            except GexError:
                raise
            except Exception as exc:
                # A parser failing other than with a ChainError (a file odd enough to find a
                # bug): the same file fails the same way again, so no retry. The trader gets
                # the file and the error; the log keeps the traceback.
                log.exception("chain parser failed", error=str(exc))
                where = url if fetched is not None else path.name
                return Outcome(
                    ok=False,
                    code=FailureCode.UNPARSEABLE,
                    size_bytes=size,
                    message=f"{where}: could not be parsed ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); not retried: check that the file is complete and unedited",
                )
            await persist_snapshot_async(d.require_store(), d.config.lake_dir, snapshot.record)
        except InvalidInput as exc:  # ChainError and friends: the file itself is wrong
            message = exc.message
            if fetched is not None:  # the parser names the spool file; the trader knows the URL
                message = message.replace(fetched.name, url)
            return Outcome(
                ok=False, code=FailureCode.INVALID_FILE, message=message, size_bytes=size
            )
        finally:
            if fetched is not None:
                with contextlib.suppress(FileNotFoundError):
                    fetched.unlink()
        summary = present.snapshot_summary(snapshot.snapshot_row)
        d.note_snapshot(summary)
        d.publish(EventType.SNAPSHOT_CREATED, present.snapshot_notice(summary, live))
        return Outcome(
            ok=True,
            records=snapshot.rows_read,
            size_bytes=size,
            snapshot_id=str(snapshot.snapshot_id),
            fetch_s=fetch_s,
        )

    def _local_file(self, url: str) -> Path:
        """A file:// URL may only point inside the drop folder or the ingest folder."""
        path = Path(unquote(urlsplit(url).path)).resolve()
        roots = [self.d.config.drop_dir.resolve(), self.d.ingest_dir.resolve()]
        if not any(path.is_relative_to(root) for root in roots):
            raise FetchError.refused(
                url, "file:// sources must be inside the drop folder or the ingest folder"
            )
        return path

    async def _heartbeat(self, live: LiveJob) -> None:
        interval = self.d.settings.daemon.heartbeat_s
        lease = timedelta(seconds=self.d.settings.daemon.lease_s)
        while True:
            await asyncio.sleep(interval)
            current = live.job
            if current.status is not JobStatus.PROCESSING:
                return
            renewed = current.evolve(lease_expires_at=self.d.now() + lease)
            live.job = renewed
            self.persist_soon(PutJob(renewed, previous=current))

    async def _finish(self, live: LiveJob, outcome: Outcome, ran_s: float) -> None:
        d = self.d
        now = d.now()
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
            live.snapshot_id = outcome.snapshot_id
            await d.require_store().commit([PutJob(done, event, previous=before)])
            self._settle(live, done, ran_s)
            d.estimates.observe(live.source_key, live.request.data_type, ran_s)
            d.publish(
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
        decision = decide_retry(
            code,
            retries_done=before.retry_count,
            max_retries=d.settings.retry.max_retries,
            base_s=d.settings.retry.base_delay_s,
            max_s=d.settings.retry.max_delay_s,
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
            await d.require_store().commit([PutJob(failed, fail_event, previous=before)])
            self._settle(live, failed, ran_s)
            d.publish(
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
            context=d.config.domain_context(),
        )
        await d.require_store().commit(
            [
                PutJob(failed, fail_event, previous=before),
                PutJob(requeued, retry_event, previous=failed),
            ]
        )
        live.job = requeued
        d.book.update(requeued)
        d.publish(
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
        d.intake.requeue_loaded(live, not_before=d.mono() + decision.delay_s)

    def _sla_at(self, job: ProcessingJob, now: datetime) -> SlaStatus:
        if job.deadline is None:
            return SlaStatus.NONE
        if job.sla_status is SlaStatus.BREACHED or now > job.deadline:
            return SlaStatus.BREACHED
        return SlaStatus.MET

    def _settle(self, live: LiveJob, job: ProcessingJob, ran_s: float) -> None:
        d = self.d
        live.job = job
        d.book.update(job)
        if d.sla is not None:
            d.sla.unwatch(job.job_id)
            met = None if job.sla_status is SlaStatus.NONE else job.sla_status is SlaStatus.MET
            d.sla.record_finish(job.priority_level, met=met, flagged=job.at_risk)

    # -- deadlines ---------------------------------------------------------------

    def on_deadline(self, job_id: uuid.UUID) -> None:
        """A deadline passed: an unfinished job is breached now, not when it ends."""
        live = self.d.book.live(job_id)
        if live is None or live.job.status.is_final or live.job.sla_status is not SlaStatus.PENDING:
            return
        before = live.job
        breached = before.evolve(sla_status=SlaStatus.BREACHED)
        live.job = breached
        self.persist_soon(PutJob(breached, previous=before))
        if self.d.sla is not None:
            self.d.sla.record_breach(before.priority_level)
        late_by = (self.d.now() - before.deadline).total_seconds() if before.deadline else 0.0
        self.d.publish(
            EventType.SLA_BREACHED, present.job_notice(live, late_by_s=round(late_by, 3))
        )
        log.warning(
            "sla breached",
            level=before.priority_level.value,
            status=before.status.value,
            phase=before.dispatch_phase,
            retries=before.retry_count,
            source=live.source_key,
        )

    # -- trader actions -------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID) -> LiveJob:
        live = self.d.book.get(job_id)
        if live is None:
            raise NotFound(f"no live job {job_id}; finished jobs cannot be cancelled")
        status = live.job.status
        if status is JobStatus.QUEUED:
            self.d.scheduler.cancel(job_id)
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
        raise IllegalTransition(
            status.value,
            JobStatus.CANCELLED.value,
            [s.value for s in (JobStatus.QUEUED, JobStatus.PROCESSING)],
        )

    async def _write_cancel(self, live: LiveJob, reason: str) -> None:
        before = live.job
        cancelled, event = before.transition(JobStatus.CANCELLED, self.d.now(), reason=reason)
        await self.d.require_store().commit([PutJob(cancelled, event, previous=before)])
        live.job = cancelled
        self.d.book.update(cancelled)
        if self.d.sla is not None:
            self.d.sla.unwatch(before.job_id)
        self.d.publish(EventType.JOB_CANCELLED, present.job_notice(live, reason=reason))

    async def retry(self, job_id: uuid.UUID) -> LiveJob:
        """A trader's retry of a FAILED job (FAILED -> QUEUED, counted against the limit)."""
        live = self.d.book.get(job_id)
        if live is None:
            live = await self._load_live(job_id)
        before = live.job
        check_transition(before.status, JobStatus.QUEUED)  # names both states unless FAILED
        now = self.d.now()
        requeued, event = before.transition(
            JobStatus.QUEUED,
            now,
            reason="retried by a trader",
            next_attempt_at=None,
            context=self.d.config.domain_context(),
        )
        await self.d.require_store().commit([PutJob(requeued, event, previous=before)])
        live.job = requeued
        live.enqueued_mono = self.d.mono()
        self.d.publish(
            EventType.JOB_RETRYING, present.job_notice(live, reason="retried by a trader")
        )
        self.d.intake.requeue_loaded(live)
        self.kick()
        return live

    async def set_level(self, job_id: uuid.UUID, level: PriorityLevel) -> LiveJob:
        """Move a queued job to another level (a trader's bump); its deadline follows the level."""
        live = self.d.book.live(job_id)
        if live is None or live.job.status is not JobStatus.QUEUED:
            raise Conflict(
                "only a QUEUED job can change level; this one is "
                f"{live.job.status.value.upper() if live else 'not live'}"
            )
        if level is live.job.priority_level:
            return live
        self.d.scheduler.cancel(job_id)
        sla_s = self.d.settings.sla.seconds_for(level)
        deadline = (
            live.request.requested_at + timedelta(seconds=sla_s) if sla_s is not None else None
        )
        before = live.job
        moved = before.evolve(
            priority_level=level,
            deadline=deadline,
            sla_status=SlaStatus.NONE
            if deadline is None
            else (SlaStatus.BREACHED if deadline < self.d.now() else SlaStatus.PENDING),
            version=before.version + 1,
            updated_at=self.d.now(),
        )
        await self.d.require_store().commit([PutJob(moved, previous=before)])
        live.job = moved
        live.deadline_mono = self.d.to_mono(deadline)
        if self.d.sla is not None:
            self.d.sla.unwatch(job_id)
        self.d.publish(
            EventType.JOB_LEVEL_CHANGED,
            present.job_notice(live, from_level=before.priority_level),
        )
        self.d.intake.requeue_loaded(live)
        self.kick()
        return live

    async def _load_live(self, job_id: uuid.UUID) -> LiveJob:
        store = self.d.require_store()
        job = await store.read(load_job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        request = await store.read(load_request, job.request_id)
        if request is None:
            raise NotFound(f"job {job_id} has no request (archived?)")
        return self._live_from(request, job)

    def _live_from(self, request: PriorityRequest, job: ProcessingJob) -> LiveJob:
        source = base_url_of(request.source_url)
        live = LiveJob(
            request=request,
            job=job,
            source_key=source,
            estimate_s=request.estimated_processing_time.total_seconds()
            or self.d.estimates.estimate(source, request.data_type),
            enqueued_mono=self.d.to_mono(job.queued_at) or self.d.mono(),
            deadline_mono=self.d.to_mono(job.deadline),
        )
        self.d.book.add(live)
        return live

    # -- start-up and shutdown ----------------------------------------------------

    async def recover(self) -> None:
        """Reload unfinished jobs; requeue those whose lease expired (a crash), count it."""
        d = self.d
        store = d.require_store()
        found = await store.read(load_unfinished)
        now = d.now()
        requeue_changes: list[Change] = []
        loaded = reaped = 0
        for request, job in found:
            live = self._live_from(request, job)
            if job.status is JobStatus.PROCESSING:
                if (
                    job.lease_expires_at is not None
                    and job.lease_expires_at > now
                    and job.lease_owner != d.instance
                ):
                    self._foreign_leases[job.job_id] = job.lease_expires_at
                    continue
                requeue_changes += self._reap(live, now)
                reaped += 1
            loaded += 1
        if requeue_changes:
            await store.commit(requeue_changes)
        for live in list(d.book):
            if live.job.status is JobStatus.QUEUED:
                not_before = d.to_mono(live.job.next_attempt_at) or 0.0
                d.intake.requeue_loaded(live, not_before=not_before)
            if (
                live.job.deadline is not None
                and live.job.sla_status is SlaStatus.PENDING
                and d.sla is not None
            ):
                d.sla.watch(live.job_id, live.deadline_mono or d.mono())
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
        if before.retry_count < self.d.settings.retry.max_retries:
            requeued, event = failed.transition(
                JobStatus.QUEUED,
                now,
                reason="requeued after the lease expired",
                context=self.d.config.domain_context(),
            )
            changes.append(PutJob(requeued, event, previous=failed))
            live.job = requeued
            self.d.book.add(live)
        else:
            live.job = failed
            self.d.book.update(failed)
        return changes

    async def lease_reaper(self) -> None:
        """Requeue jobs whose lease (held by a previous instance) runs out after we started."""
        while True:
            if not self._foreign_leases:
                await asyncio.sleep(3600)
                continue
            job_id, expires = min(self._foreign_leases.items(), key=lambda kv: kv[1])
            await asyncio.sleep(max(0.0, (expires - self.d.now()).total_seconds()))
            self._foreign_leases.pop(job_id, None)
            live = self.d.book.live(job_id)
            if live is None or live.job.status is not JobStatus.PROCESSING:
                continue
            await self.d.require_store().commit(self._reap(live, self.d.now()))
            if (
                live.job.status.value == JobStatus.QUEUED.value
            ):  # _reap requeued it (mypy cannot see)
                self.d.intake.requeue_loaded(live)
                self.kick()

    async def drain(self, grace_s: float) -> None:
        """Stop dispatching; let running jobs finish for `grace_s`, then release their leases."""
        self._stopping = True
        self._wake.set()
        running = list(self._tasks.values())
        if running:
            log.info("waiting for running jobs", count=len(running), grace_s=grace_s)
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            released = []
            now = self.d.now()
            for live in self.d.book:
                if (
                    live.job.status is JobStatus.PROCESSING
                    and live.job.lease_owner == self.d.instance
                ):
                    before = live.job
                    live.job = before.evolve(lease_expires_at=now)
                    released.append(PutJob(live.job, previous=before))
            if released and self.d.store is not None:
                await self.d.store.commit(released)
                log.info("released leases", count=len(released))
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
