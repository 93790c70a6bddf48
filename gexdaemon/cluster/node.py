"""A cluster node: its heartbeat, the reaper, the leader's scheduler and the worker slots.

Every node runs the same four loops:

- heartbeat: `node:<id>` says the node is alive and how many slots it has;
- reaper: expired leases go back to the queue (idempotent, so every node may run it);
- leader: one node at a time holds the leader role and runs the cluster's one
  `core.scheduler.Scheduler` over every node's slots; its assignments carry its epoch,
  which fences it the moment another node takes over;
- worker: the node pops its assignments, runs each attempt while renewing its lease, and
  ends it with FINISH under the attempt's fencing token. Whatever the attempt staged is
  published only once FINISH is accepted, and discarded when the job had moved on.

The node decides nothing alone about a job's state: every change is one board script.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import structlog

from gexdaemon.cluster.board import Board, Finish, NewJob
from gexdaemon.core.retry import FailureCode, decide_retry
from gexdaemon.core.scheduler import SchedJob, Scheduler
from gexdaemon.core.settings import Settings
from gexdaemon.core.vocab import JobStatus, PriorityLevel
from gexdaemon.tasks import cancel_all, finish_within

log = structlog.get_logger("gexdaemon.cluster")

NODE_BEAT_S = 1.0  # at most; shorter with short leases (node_timing)
NODE_TTL_S = 4.0  # at most: a node silent this long has left the cluster
RECONCILE_S = 5.0  # the leader checks its scheduler against the board this often
BACKOFF_MAX_S = 5.0
FORECAST_EVERY_S = 1.0  # as the embedded daemon: at-risk flags within a second
TERMINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})
REQUEUE_EVENTS = frozenset({"job.queued", "job.retrying", "job.lease_expired", "job.level_changed"})


@dataclass(frozen=True)
class Attempt:
    """What one attempt of a job came to, as a worker's work function reports it.

    `publish` runs only after FINISH is accepted (rename the staged snapshot into the
    lake); `discard` only when FINISH is refused (the attempt was stale: delete it).
    """

    ok: bool
    code: FailureCode | None = None
    message: str = ""
    retry_after_s: float | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    publish: Callable[[], Awaitable[None]] | None = None
    discard: Callable[[], Awaitable[None]] | None = None


Work = Callable[[str, Mapping[str, str]], Awaitable[Attempt]]


def new_job(
    job_id: str,
    level: PriorityLevel,
    *,
    source: str,
    estimate_s: float,
    enqueued_ms: int,
    deadline_ms: int | None,
    fields: Mapping[str, Any] | None = None,
    idem_key: str = "",
    idem_value: str = "",
    idem_ttl_ms: int = 0,
) -> NewJob:
    """A job for SUBMIT: queued by deadline, or by arrival for levels without one (LOW)."""
    score = deadline_ms if deadline_ms is not None else enqueued_ms
    return NewJob(
        job_id,
        level,
        float(score),
        {
            **(fields or {}),
            "source": source,
            "estimate_s": repr(float(estimate_s)),
            "enqueued_ms": enqueued_ms,
            "deadline_ms": "" if deadline_ms is None else deadline_ms,
        },
        idem_key=idem_key,
        idem_value=(idem_value or job_id) if idem_key else "",
        idem_ttl_ms=idem_ttl_ms,
    )


def pickup_s(lease_s: float) -> float:
    """How long an assignment waits to be picked up before the reaper takes it back: a
    node that died a moment before it was chosen must not hold a CRITICAL job for a whole
    lease. The worker's first heartbeat, when it picks the job up, extends it to the lease."""
    beat, _ttl = node_timing(lease_s)
    return min(lease_s, max(1.0, 2 * beat))


def node_timing(lease_s: float) -> tuple[float, float]:
    """(beat interval, node TTL): a dead node must leave the cluster before the leases
    it held run out, or the leader would hand their jobs straight back to it."""
    ttl = min(NODE_TTL_S, 0.75 * lease_s)
    return min(NODE_BEAT_S, ttl / 3), ttl


class Leader:
    """The cluster's scheduler while this node leads; rebuilt from the board on election.

    Times on the board are Redis' milliseconds; the scheduler runs on this node's monotonic
    clock. One offset, measured against Redis TIME at each reconcile, converts between them.
    """

    def __init__(self, board: Board, settings: Settings, *, mono: Callable[[], float]) -> None:
        self._board = board
        self._settings = settings
        self._mono = mono
        self.epoch = 0
        self.scheduler: Scheduler | None = None
        self._jobs: dict[str, SchedJob] = {}  # what the scheduler holds, to put one back
        self._started: dict[str, float] = {}  # running: when (mono) it was dispatched
        self._pins: dict[str, str] = {}  # jobs only one node can run (a file it holds)
        self._node_of: dict[str, str] = {}  # running: the node it was given to
        self._busy: Counter[str] = Counter()  # running jobs per node, as this leader knows
        self._members: dict[str, int] = {}  # live nodes and their slots
        self._members_at = -1e9
        self._after = "0-0"
        self._base = (0, 0.0)  # (redis ms, mono) measured together
        self._reconciled = 0.0
        self.assigned = 0
        self._forecast_at = -1e9
        # Why a source cannot run its jobs now, in words (None: it can); set by the daemon.
        self.blocked_reason: Callable[[str], str | None] = lambda source: None
        # Told of each new scheduler before it takes any job (what each source may do now).
        self.on_scheduler: Callable[[Scheduler], None] = lambda scheduler: None

    def _to_mono(self, ms: float) -> float:
        redis_ms, mono = self._base
        return mono + (ms - redis_ms) / 1000.0

    async def _measure_clock(self) -> None:
        before = self._mono()
        redis_ms = await self._board.time_ms()
        self._base = (redis_ms, (before + self._mono()) / 2)

    def _new_scheduler(self, slots: int) -> Scheduler:
        s = self._settings
        return Scheduler(
            s.scheduler,
            s.sla,
            max(1, slots),
            source_cap=s.sources.max_concurrency,
            rate_per_s=s.sources.rate_per_s,
            burst=s.sources.burst,
            clock=self._mono,
        )

    def _sched_job(self, h: Mapping[str, str]) -> SchedJob:
        if h.get("pin"):
            self._pins[h["job_id"]] = h["pin"]
        deadline_ms = h.get("deadline_ms", "")
        not_before_ms = h.get("not_before_ms", "")
        return SchedJob(
            h["job_id"],
            PriorityLevel(h["level"]),
            h.get("source", ""),
            self._to_mono(float(deadline_ms)) if deadline_ms else None,
            float(h.get("estimate_s") or 1.0),
            self._to_mono(float(h.get("enqueued_ms") or h.get("score") or 0)),
            self._to_mono(float(not_before_ms)) if not_before_ms else 0.0,
        )

    async def take_over(self, epoch: int) -> None:
        """Rebuild the scheduler from the board: every queued job, every running one."""
        await self._measure_clock()
        self.epoch = epoch
        slots = sum(int(n.get("slots", 0)) for n in await self._board.nodes())
        sched = self._new_scheduler(slots)
        self.on_scheduler(sched)
        self._jobs.clear()
        self._started.clear()
        self._pins.clear()
        self._node_of.clear()
        self._busy.clear()
        self._members_at = -1e9
        after, queued, running = await self._board.live_work()
        for h in running:
            job = self._sched_job(h)
            started = (
                self._to_mono(float(h.get("started_ms") or 0))
                if h.get("started_ms")
                else self._mono()
            )
            sched.adopt(job, started)
            self._jobs[h["job_id"]] = job
            self._started[h["job_id"]] = started
            self._running_on(h["job_id"], h.get("node", ""))
        for h in queued:
            if h.get("status") != JobStatus.QUEUED.value:
                continue
            job = self._sched_job(h)
            sched.submit(job)
            self._jobs[h["job_id"]] = job
        self.scheduler = sched
        self._after = after
        self._reconciled = self._mono()
        log.info(
            "leading the cluster",
            epoch=epoch,
            queued=len(queued),
            running=len(running),
            slots=slots,
        )

    def step_down(self) -> None:
        if self.scheduler is not None:
            log.info("no longer leading the cluster", epoch=self.epoch)
        self.scheduler = None
        self.epoch = 0
        self._jobs.clear()
        self._started.clear()
        self._pins.clear()
        self._node_of.clear()
        self._busy.clear()

    def _running_on(self, job_id: str, node: str) -> None:
        self._node_of[job_id] = node
        self._busy[node] += 1

    def _not_running(self, job_id: str) -> None:
        node = self._node_of.pop(job_id, None)
        if node is not None:
            self._busy[node] -= 1
            if self._busy[node] <= 0:
                del self._busy[node]

    async def step(self, block_ms: int) -> None:
        """Take in what happened since the last step, then hand out every free slot."""
        sched = self.scheduler
        if sched is None:
            return
        events = await self._board.events_after(self._after, block_ms=block_ms)
        if events:
            self._after = events[-1][0]
            await self._apply(events)
        if self._mono() - self._reconciled >= RECONCILE_S:
            await self._reconcile()
        if self.scheduler is not None:
            await self._dispatch()
        if self.scheduler is not None and self._mono() - self._forecast_at >= FORECAST_EVERY_S:
            await self._forecast()

    async def _forecast(self) -> None:
        """The forecast the embedded daemon runs, over the cluster's work: every job it flags
        as at risk of missing its deadline (or clears) is written to the board for every node."""
        sched = self.scheduler
        assert sched is not None
        self._forecast_at = self._mono()
        sched.forecast()
        verdicts = [
            (str(c.job_id), c.at_risk, c.reason)
            for c in sched.take_risk_changes()
            if str(c.job_id) in self._jobs
        ]
        if verdicts:
            await self._board.flag_risk(verdicts)
        await self._expire_blocked()

    async def _expire_blocked(self) -> None:
        """A queued job whose deadline passed while its source is down fails now, with why
        (as in embedded mode); one whose source can run it waits, breached, for its turn."""
        now = self._mono()
        for job_id, job in list(self._jobs.items()):
            if job_id in self._started or job.deadline is None or job.deadline > now:
                continue
            blocked = self.blocked_reason(job.source)
            if blocked is None:
                continue
            reason = f"{FailureCode.SOURCE_DOWN.value}: the deadline passed while {blocked}"
            ttl_ms = int(self._settings.cluster.job_status_ttl_days * 86_400_000)
            await self._board.expire(job_id, reason, ttl_ms=ttl_ms)
            self._forget(job_id)  # failed now, or no longer queued: not the scheduler's

    async def _apply(self, events: Sequence[tuple[str, dict[str, str]]]) -> None:
        """Events in order: a job queued (new, retried, its lease expired) joins the
        scheduler from the fields its event carries; a job that ended leaves it."""
        sched = self.scheduler
        assert sched is not None
        unread: list[str] = []  # queued without its fields on the event: read its hash
        for _id, event in events:
            kind, job_id = event.get("type", ""), event.get("job_id", "")
            if kind in TERMINAL_EVENTS or kind in REQUEUE_EVENTS:
                self._forget(job_id)
            if kind not in REQUEUE_EVENTS:
                continue
            if event.get("sched") == "1":
                job = self._sched_job(event)
                sched.submit(job)
                self._jobs[job_id] = job
            else:
                unread.append(job_id)
        if not unread:
            return
        unique = list(dict.fromkeys(unread))
        for job_id, h in zip(unique, await self._board.jobs(unique), strict=True):
            if h is None or h.get("status") != JobStatus.QUEUED.value or job_id in self._jobs:
                continue
            job = self._sched_job({"job_id": job_id, **h})
            sched.submit(job)
            self._jobs[job_id] = job

    def _forget(self, job_id: str) -> None:
        sched = self.scheduler
        if sched is None or job_id not in self._jobs:
            return
        started = self._started.pop(job_id, None)
        self._not_running(job_id)
        if started is not None:
            sched.finish(job_id, max(0.0, self._mono() - started))
        else:
            sched.cancel(job_id)
        del self._jobs[job_id]
        self._pins.pop(job_id, None)

    async def _reconcile(self) -> None:
        """Rebuild when the scheduler and the board disagree (an event trimmed unseen)."""
        sched = self.scheduler
        assert sched is not None
        self._reconciled = self._mono()
        depths = await self._board.depths()
        running = await self._board.running()
        if sum(depths.values()) != sched.queued_count or len(running) != sched.in_flight_count:
            log.warning(
                "the leader's scheduler drifted from the board; rebuilding",
                board_queued=sum(depths.values()),
                scheduler_queued=sched.queued_count,
                board_running=len(running),
                scheduler_running=sched.in_flight_count,
            )
            await self.take_over(self.epoch)
        else:
            await self._measure_clock()

    async def _dispatch(self) -> None:
        sched = self.scheduler
        assert sched is not None
        beat, _ttl = node_timing(self._settings.cluster.lease_s)
        if self._mono() - self._members_at >= beat / 2:
            nodes = await self._board.nodes()
            redis_ms, mono = self._base
            now_ms = redis_ms + (self._mono() - mono) * 1000
            self._members = {
                n["node_id"]: int(n.get("slots", 0))
                for n in nodes  # a node two beats late is not given new work
                if now_ms - float(n.get("heartbeat_ms") or 0) <= 2 * beat * 1000
            }
            self._members_at = self._mono()
            total = sum(int(n.get("slots", 0)) for n in nodes)
            if total != sched.slots and total > 0:
                sched.set_slots(total)
        if not self._members or sched.queued_count == 0 or sched.free_slots <= 0:
            return
        free = {node: slots - self._busy[node] for node, slots in self._members.items()}
        pairs: list[tuple[str, str]] = []
        while sched.free_slots > 0:
            picked = sched.dispatch()
            if picked is None:
                break
            job_id = str(picked.job_id)
            pin = self._pins.get(job_id)
            if pin is not None:
                node = pin if pin in free else None
            else:
                node = max(free, key=lambda n: free[n], default=None)
            if node is None or free[node] <= 0:
                self._put_back(job_id)
                break
            free[node] -= 1
            pairs.append((job_id, node))
            self._started[job_id] = self._mono()
            self._running_on(job_id, node)
        if not pairs:
            return
        answers = await self._board.assign(
            self.epoch, int(pickup_s(self._settings.cluster.lease_s) * 1000), pairs
        )
        if answers is None:  # another node leads now
            self.step_down()
            return
        for (job_id, _node), answer in zip(pairs, answers, strict=True):
            if answer.isdigit():
                self.assigned += 1
            elif answer.startswith("SKIP"):  # cancelled or ended meanwhile
                self._forget(job_id)
            else:  # FULL or NODE_GONE: the node's view changed; try again next step
                self._put_back(job_id)

    def _put_back(self, job_id: str) -> None:
        sched = self.scheduler
        assert sched is not None
        job = self._jobs.get(job_id)
        self._started.pop(job_id, None)
        self._not_running(job_id)
        sched.finish(job_id, 0.0)
        if job is not None:
            sched.submit(job)


@dataclass(eq=False)
class ClusterNode:
    """One node's loops. `await start()`, then `await stop()`."""

    board: Board
    settings: Settings
    _: KW_ONLY
    node_id: str
    slots: int
    work: Work
    version: str = ""
    mono: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.leader = Leader(self.board, self.settings, mono=self.mono)
        self.finished = 0
        self.stale = 0  # attempts whose FINISH was refused (the job had moved on)
        self._tasks: list[asyncio.Task[None]] = []
        self._finisher: asyncio.Task[None] | None = None
        self._finishing: list[tuple[Finish, asyncio.Future[bool]]] = []
        self._finish_wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    @property
    def cluster(self) -> Any:
        return self.settings.cluster

    @property
    def lease_ms(self) -> int:
        return int(self.cluster.lease_s * 1000)

    @property
    def ttl_ms(self) -> int:
        return int(self.cluster.job_status_ttl_days * 86_400_000)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        await self._beat()
        self._finisher = asyncio.create_task(self._finish_loop(), name="gexd-finish")
        for name, loop in (
            ("beat", self._beat_loop),
            ("reap", self._reap_loop),
            ("lead", self._lead_loop),
            ("work", self._work_loop),
        ):
            self._tasks.append(asyncio.create_task(self._guarded(name, loop), name=f"gexd-{name}"))

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking work, give up leadership, let running attempts end for `grace_s`;
        the rest are abandoned (their leases run out and the reaper requeues them)."""
        self._stopping = True
        await cancel_all(self._tasks)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.board.resign(self.node_id)
        await finish_within(self._running.values(), grace_s)
        await self._stop_finisher()

    async def kill(self) -> None:
        """Stop at once, as a crash would: no FINISH, no resign (tests and chaos drills)."""
        self._stopping = True
        await cancel_all([*self._tasks, *self._running.values()])
        self._tasks.clear()
        await self._stop_finisher()

    async def _stop_finisher(self) -> None:
        if self._finisher is not None:
            await cancel_all([self._finisher])
            self._finisher = None
        for _, waiting in self._finishing:
            if not waiting.done():
                waiting.cancel()
        self._finishing.clear()

    async def _finish_loop(self) -> None:
        """FINISH in batches: what ends while one batch is on its way goes in the next, one
        round trip and one fsync for all of it (each job still its own FINISH script)."""
        while True:
            await self._finish_wake.wait()
            self._finish_wake.clear()
            batch, self._finishing = self._finishing, []
            if not batch:
                continue
            try:
                answers = await self.board.finish_many([ended for ended, _ in batch])
            except asyncio.CancelledError:
                for _, waiting in batch:
                    waiting.cancel()
                raise
            except Exception as exc:  # Redis away: each attempt's own loop tries again
                for _, waiting in batch:
                    if not waiting.done():
                        waiting.set_exception(exc)
                continue
            for (_, waiting), accepted in zip(batch, answers, strict=True):
                if not waiting.done():
                    waiting.set_result(accepted)

    async def _send_finish(self, ended: Finish) -> bool:
        if self._finisher is None or self._finisher.done():
            return (await self.board.finish_many([ended]))[0]
        waiting: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._finishing.append((ended, waiting))
        self._finish_wake.set()
        return await waiting

    async def submit(self, jobs: Sequence[NewJob]) -> list[str]:
        return await self.board.submit(jobs)

    # -- loops ------------------------------------------------------------------------

    async def _guarded(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a loop for the node's life; a Redis fault backs off and tries again."""
        delay = 0.1
        while not self._stopping:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis unreachable, a timeout: keep the node alive
                log.warning(
                    "cluster loop failed; retrying",
                    loop=name,
                    error=type(exc).__name__,
                    delay_s=delay,
                )
                if name == "lead":
                    self.leader.step_down()
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(BACKOFF_MAX_S, delay * 2)

    async def _beat(self) -> None:
        await self.board.node_heartbeat(
            self.node_id,
            int(node_timing(self.cluster.lease_s)[1] * 1000),
            slots=self.slots,
            host=socket.gethostname(),
            version=self.version,
        )

    async def _beat_loop(self) -> None:
        while not self._stopping:
            await self._beat()
            await asyncio.sleep(node_timing(self.cluster.lease_s)[0])

    async def _reap_loop(self) -> None:
        interval = min(1.0, self.cluster.lease_s / 4)
        while not self._stopping:
            for job_id, what in await self.board.reap(
                max_retries=self.settings.retry.max_retries, ttl_ms=self.ttl_ms
            ):
                log.warning("lease expired", job_id=job_id, now=what)
            await asyncio.sleep(interval)

    async def _lead_loop(self) -> None:
        ttl_ms = int(self.cluster.leader_ttl_s * 1000)
        renew_s = self.cluster.leader_ttl_s / 3
        leader = self.leader
        while not self._stopping:
            role = await self.board.lead(self.node_id, ttl_ms)
            if not role.mine:
                leader.step_down()
                await asyncio.sleep(renew_s)
                continue
            if role.fresh or leader.scheduler is None or leader.epoch != role.epoch:
                await leader.take_over(role.epoch)
            until = self.mono() + renew_s
            while leader.scheduler is not None and self.mono() < until and not self._stopping:
                await leader.step(block_ms=50)

    async def _work_loop(self) -> None:
        while not self._stopping:
            # Every assignment waiting, in one round trip; then one PICKUP for all of them.
            popped = await self.board.pop_assignments(self.node_id, 1.0, max(1, self.slots))
            if not popped:
                continue
            for (job_id, token), job in zip(
                popped, await self.board.pickup(popped, self.lease_ms), strict=True
            ):
                if job is None:  # an assignment left from before the job moved on
                    self.stale += 1
                    continue
                task = asyncio.create_task(
                    self._attempt(job_id, token, job), name=f"gexd-job-{job_id}"
                )
                self._running[job_id] = task
                task.add_done_callback(self._ended(job_id))

    def _ended(self, job_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)

        return forget

    # -- one attempt ---------------------------------------------------------------------

    async def _attempt(self, job_id: str, token: int, job: Mapping[str, str]) -> None:
        work: asyncio.Task[Attempt] = asyncio.ensure_future(self.work(job_id, job))
        verdict = await self._keep_lease(job_id, token, work)
        if verdict == "STALE":
            self.stale += 1
            log.warning("abandoned a job that moved on (lease lost)", job_id=job_id)
            return
        if verdict == "CANCEL":
            await self._finish(job_id, token, job, "cancelled", Attempt(ok=False))
            return
        try:
            attempt = work.result()
        except Exception as exc:  # a bug in the work: the job must still end
            log.exception("job attempt crashed", job_id=job_id)
            attempt = Attempt(
                ok=False,
                code=FailureCode.WORKER_LOST,
                message=f"internal error: {type(exc).__name__}",
            )
        if attempt.ok:
            await self._finish(job_id, token, job, "completed", attempt)
            return
        code = attempt.code or FailureCode.WORKER_LOST
        retry = self.settings.retry
        deadline_ms = job.get("deadline_ms", "")
        now_ms = await self.board.time_ms()
        slack = None
        if deadline_ms:
            remaining = (float(deadline_ms) - now_ms) / 1000 - float(job.get("estimate_s") or 0)
            slack = remaining if remaining > 0 else None
        decision = decide_retry(
            code,
            retries_done=int(job.get("retries") or 0),
            max_retries=retry.max_retries,
            base_s=retry.base_delay_s,
            max_s=retry.max_delay_s,
            remaining_slack_s=slack,
            rng=self._rng,
            retry_after_s=attempt.retry_after_s,
        )
        # The fetcher says "will retry"; the job's last word must say it gave up, and why.
        said = attempt.message if decision.retry else attempt.message.removesuffix("; will retry")
        message = f"{code.value}: {said}" + ("" if decision.retry else f"; {decision.reason}")
        failed = Attempt(
            ok=False,
            code=code,
            message=message,
            fields={**attempt.fields, "error_message": message, "error_code": code.value},
            publish=attempt.publish,
            discard=attempt.discard,
        )
        if decision.retry:
            await self._finish(
                job_id,
                token,
                job,
                "queued",
                failed,
                not_before_ms=now_ms + int(decision.delay_s * 1000),
            )
        else:
            await self._finish(job_id, token, job, "failed", failed)

    async def _keep_lease(self, job_id: str, token: int, work: asyncio.Task[Attempt]) -> str:
        """Renew the lease until the work ends: DONE, or STALE/CANCEL (the work is stopped)."""
        interval = self.cluster.lease_s / 3
        while True:
            done, _ = await asyncio.wait([work], timeout=interval)
            if done:
                return "DONE"
            try:
                answer = await self.board.heartbeat(job_id, token, self.lease_ms)
            except Exception as exc:  # Redis away: keep working; the lease may yet hold
                log.warning("lease renewal failed", job_id=job_id, error=type(exc).__name__)
                continue
            if answer in ("STALE", "CANCEL"):
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                return answer

    async def _finish(
        self,
        job_id: str,
        token: int,
        job: Mapping[str, str],
        target: str,
        attempt: Attempt,
        *,
        not_before_ms: int = 0,
    ) -> None:
        # Redis away for a moment: keep trying while the lease may still hold; after that
        # the job has moved on (or will), so the attempt's result is dropped.
        give_up = self.mono() + self.cluster.lease_s
        delay = 0.05
        while True:
            try:
                accepted = await self._send_finish(
                    Finish(
                        job_id,
                        token,
                        target,
                        attempt.fields,
                        self.ttl_ms,
                        float(job.get("score") or 0),
                        not_before_ms,
                    )
                )
                break
            except Exception as exc:
                if self.mono() + delay > give_up:
                    log.warning(
                        "FINISH never reached Redis", job_id=job_id, error=type(exc).__name__
                    )
                    accepted = False
                    break
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        if accepted:
            self.finished += 1
            if attempt.publish is not None:
                await attempt.publish()
        else:
            self.stale += 1
            log.warning("FINISH refused: the job moved on without this attempt", job_id=job_id)
            if attempt.discard is not None:
                await attempt.discard()
