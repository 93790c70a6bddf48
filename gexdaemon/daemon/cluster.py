"""Cluster mode for the daemon: submissions go to the cluster's board, work comes from its
leader, snapshots are published to the shared lake only after FINISH is accepted, and
this node's DuckDB mirrors the cluster's jobs (fed by the event stream) so that every
read of the API answers for the whole cluster from any node.

Embedded mode never builds this module (nor loads Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import structlog

from gexdaemon import readout
from gexdaemon.cluster.board import Board
from gexdaemon.cluster.link import RedisFacts, facts
from gexdaemon.cluster.node import Attempt, ClusterNode, new_job
from gexdaemon.core import breaker
from gexdaemon.core.errors import Conflict, NotFound, Unavailable
from gexdaemon.core.models import (
    MAX_ERROR_MESSAGE,
    DataSource,
    DomainContext,
    JobEvent,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
)
from gexdaemon.core.scheduler import Scheduler
from gexdaemon.core.settings import Settings
from gexdaemon.core.vocab import EventType, JobStatus, PriorityLevel, SlaStatus
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.execute import Executor
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.runner import finished_conflict
from gexdaemon.daemon.sla import SlaWatch
from gexdaemon.daemon.snapshots import LatestSnapshots
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.storage.jobs import last_event_seqs
from gexdaemon.storage.snapshot_record import SnapshotRecord
from gexdaemon.storage.snapshots import (
    Staged,
    cache_snapshot,
    publish_staged,
    read_lake_record,
    rebuild_from_lake,
    stage_snapshot,
)
from gexdaemon.storage.store import MirrorJob, PutRequest, Store
from gexdaemon.tasks import cancel_all

log = structlog.get_logger("gexdaemon.cluster")

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
MIRROR_BATCH = 500
SNAPSHOT_WAIT_TRIES, SNAPSHOT_WAIT_S = 40, 0.25  # another node's file, up to 10 s
FINAL_EVENTS = frozenset({EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED})
# The board's events carry the daemon's job event names, and one of its own: a lease that
# ran out puts the job back in its queue, which the desk sees as a retry.
EVENT_TYPES = {
    **{kind.value: kind for kind in EventType if kind.family in ("job", "sla")},
    "job.lease_expired": EventType.JOB_RETRYING,
}


# A cluster job event as a history entry: (from, to, what it says when the event has no reason).
HISTORY_OF_EVENT: dict[str, tuple[JobStatus | None, JobStatus, str]] = {
    "job.started": (JobStatus.QUEUED, JobStatus.PROCESSING, "started on node {node}"),
    "job.completed": (JobStatus.PROCESSING, JobStatus.COMPLETED, "completed on node {node}"),
    "job.failed": (None, JobStatus.FAILED, "failed on node {node}"),
    "job.cancelled": (None, JobStatus.CANCELLED, "cancelled"),
    "job.retrying": (None, JobStatus.QUEUED, "retrying"),
    "job.level_changed": (JobStatus.QUEUED, JobStatus.QUEUED, "level changed"),
    "job.lease_expired": (JobStatus.PROCESSING, JobStatus.QUEUED, "lease expired"),
}


def history_event(e: Mapping[str, str], seq: int, at: datetime | None) -> JobEvent:
    """One announced job event as the history line `gexdaemon job ID` shows."""
    before, after, said = HISTORY_OF_EVENT[e["type"]]
    node = e.get("node", "")
    if before is None:  # from a node's attempt, or a trader's act on a job no node holds
        before = (
            JobStatus.PROCESSING
            if node
            else JobStatus.FAILED
            if after is JobStatus.QUEUED
            else JobStatus.QUEUED
        )
    reason = e.get("reason") or said.format(node=node)
    if node and node not in reason:
        reason = f"{reason} (node {node})"
    return JobEvent.model_construct(
        job_id=uuid.UUID(e["job_id"]),
        seq=seq,
        occurred_at=at or datetime.now(UTC),
        from_status=before,
        to_status=after,
        reason=reason[:MAX_ERROR_MESSAGE],
    )


@dataclass(kw_only=True, eq=False)
class ClusterService:
    settings: Settings
    node_id: str
    slots: int
    version: str
    board: Board
    redis_facts: RedisFacts
    warning: str
    executor_factory: Callable[[Callable[[LiveJob, SnapshotRecord], Any]], Executor]
    store: Store
    lake_dir: Path
    latest: LatestSnapshots
    bus: EventBus
    clock: Clock
    decode_context: DomainContext
    sla_watch: SlaWatch | None = None
    rules: RuleService | None = None
    sources: SourceBook | None = None

    def __post_init__(self) -> None:
        # What the board holds was validated when a node accepted it (file:// URLs from a
        # drop folder included); reading it back checks the shapes under that same trust.
        self._decode = self.decode_context.as_validation_context()
        self._rules_version = 0
        self._lake_seen = False
        self.staging = self.lake_dir / ".staging" / self.node_id.replace("/", "_")
        self._executor = self.executor_factory(self._stage)
        self.node = ClusterNode(
            self.board,
            self.settings,
            node_id=self.node_id,
            slots=self.slots,
            work=self._work,
            version=self.version,
        )
        self._offset_ms = 0.0  # Redis' clock minus ours
        self._tokens: dict[uuid.UUID, int] = {}
        self._staged: dict[uuid.UUID, tuple[Staged, SnapshotRecord]] = {}
        self._seen_requests: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self.figures: dict[PriorityLevel, tuple[int, int]] = dict.fromkeys(PriorityLevel, (0, 0))
        # Queued jobs the leader flagged at risk, by job id (their level): the queues'
        # "at risk" figures, as the embedded scheduler counts them.
        self.at_risk: dict[str, PriorityLevel] = {}
        self.mirrored = 0
        self._source_versions: dict[str, int] = {}
        self._history_seq: OrderedDict[str, int] = OrderedDict()  # last history entry per job
        self.node.leader.on_scheduler = self._lead_sources
        if self.sources is not None:
            self.node.leader.blocked_reason = self.sources.blocked_reason

    # -- clocks ---------------------------------------------------------------------

    async def measure_clock(self) -> None:
        before = time.time()
        redis_ms = await self.board.time_ms()
        self._offset_ms = redis_ms - (before + time.time()) * 500

    def to_board_ms(self, at: datetime) -> int:
        return int(at.timestamp() * 1000 + self._offset_ms)

    def from_board_ms(self, ms: str | float | None) -> datetime | None:
        if ms in (None, ""):
            return None
        return datetime.fromtimestamp((float(ms) - self._offset_ms) / 1000, tz=UTC)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)
        self._lake_seen = any(self.lake_dir.glob("symbol=*/*/*.parquet"))
        await self.measure_clock()
        await self._settle_leftovers()
        await self._join_rules()
        await self._join_sources()
        self._spawn(self._rebuild_from_lake(), "gexd-cluster-lake")
        after, queued, running = await self.board.live_work()
        await self._mirror_hashes([*queued, *running])
        await self.node.start()
        self._tasks.append(asyncio.create_task(self._follow(after), name="gexd-cluster-mirror"))
        self._tasks.append(asyncio.create_task(self._watch(), name="gexd-cluster-figures"))
        log.info(
            "joined the cluster",
            node=self.node_id,
            cluster=self.settings.cluster.name,
            redis=self.redis_facts.url,
            queued=len(queued),
            running=len(running),
        )

    async def stop(self, grace_s: float) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        await self.node.stop(grace_s)

    # -- rules: one set for the cluster ---------------------------------------------------

    async def _join_rules(self) -> None:
        """The first node to start shares its rules; every later one adopts the cluster's."""
        rules = self.rules
        if rules is None:
            return
        version, text = await self.board.rules()
        if version == 0:
            await self.publish_rules(rules.rules)
        else:
            await self._adopt_rules(version, text)
        rules.on_change = self.publish_rules

    async def publish_rules(self, rules: list[PriorityRule]) -> None:
        text = msgspec.json.encode([r.model_dump(mode="json") for r in rules]).decode()
        self._rules_version = await self.board.publish_rules(text, self.node_id)
        log.info("shared the rule set with the cluster", version=self._rules_version)

    async def _adopt_rules(self, version: int, text: str) -> None:
        if self.rules is None or version <= self._rules_version:
            return
        found = [
            PriorityRule.model_validate(r, context=self._decode) for r in msgspec.json.decode(text)
        ]
        changed = await self.rules.adopt(found)
        self._rules_version = version
        log.info("adopted the cluster's rule set", version=version, changed=changed)

    # -- sources: what each may do is one state for the cluster ---------------------------

    async def _join_sources(self) -> None:
        """Take the cluster's state of every source, then share each change made here."""
        if self.sources is None:
            return
        await self._adopt_sources(await self.board.source_states())
        self.sources.on_control = self._share_source

    def _share_source(self, source: DataSource) -> None:
        self._lead_source(source)
        state = msgspec.json.encode(
            {**breaker.control_state(source), "node": self.node_id}
        ).decode()

        async def share() -> None:
            try:
                version = await self.board.publish_source(source.base_url, state, self.node_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not share a source change with the cluster")
                return
            key = source.base_url
            self._source_versions[key] = max(version, self._source_versions.get(key, 0))

        self._spawn(share(), "gexd-cluster-source")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(work, name=name))

    # -- snapshots: this node's DuckDB is a cache of the shared lake --------------------

    async def _rebuild_from_lake(self) -> None:
        """At start: every snapshot the lake holds that this node's database lacks."""
        try:
            report = await asyncio.to_thread(rebuild_from_lake, self.store, self.lake_dir)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not rebuild this node's snapshots from the lake")
            return
        if report.added:
            await self.latest.load(self.store)
            self._lake_seen = True
        log.info(
            "snapshots from the lake",
            files=report.files,
            added=report.added,
            present=report.present,
            without_record=len(report.without_record),
            unreadable=len(report.unreadable),
        )

    async def _adopt_snapshot(self, h: Mapping[str, str]) -> None:
        """Another node's snapshot, from its lake file: into this node's database and its
        dashboard. FINISH is announced before the file is moved to its final name, so wait
        for it a little; a file that never shows is left to `gexdaemon lake rebuild`."""
        relative = h.get("lake_file", "")
        if not relative:
            return
        path = self.lake_dir / relative
        for _ in range(SNAPSHOT_WAIT_TRIES):
            if path.exists():
                break
            await asyncio.sleep(SNAPSHOT_WAIT_S)
        else:
            log.warning("another node's snapshot file did not appear", path=str(path))
            return
        try:
            change = await asyncio.to_thread(read_lake_record, path)
            if change is None:
                return
            await self.store.commit([change])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not read another node's snapshot", path=str(path))
            return
        if not self._lake_seen:
            await self._see_lake()
        summary = present.snapshot_summary(change.snapshot)
        self.latest.note(summary)
        self.bus.publish(
            EventType.SNAPSHOT_CREATED, present.snapshot_notice(summary, self.live_from(h))
        )

    async def _adopt_sources(self, states: Mapping[str, tuple[int, str]]) -> None:
        if self.sources is None:
            return
        for key, (version, text) in states.items():
            if version <= self._source_versions.get(key, 0):
                continue
            self._source_versions[key] = version
            state = msgspec.json.decode(text)
            changed = self.sources.adopt(state, by=str(state.get("node") or "another node"))
            if changed is not None:
                self._lead_source(changed)

    def _lead_source(self, source: DataSource) -> None:
        """While this node leads, its scheduler follows what the source may do."""
        scheduler = self.node.leader.scheduler
        if scheduler is not None and self.sources is not None:
            self.sources.sync_into(scheduler, [source])

    def _lead_sources(self, scheduler: Scheduler) -> None:
        """A new leader's scheduler: what each source may do, and how its forecast's
        reasons name times and sources (as the desk reads them)."""
        scheduler.describe_time = lambda mono: readout.clock_time(self.clock.to_wall(mono))
        scheduler.describe_source = readout.source_host
        if self.sources is not None:
            self.sources.sync_into(scheduler)

    async def _settle_leftovers(self) -> None:
        """Staged files a previous run of this node left: publish those whose FINISH was
        accepted, delete the rest (their jobs moved on or will run again)."""
        for path in sorted(self.staging.glob("*")):
            staged = Staged.parse(path)
            if staged is None:
                continue
            h = await self.board.job(staged.job_id)
            if (
                h is not None
                and h.get("status") == JobStatus.COMPLETED.value
                and h.get("token") == str(staged.token)
                and h.get("node") == self.node_id
            ):
                final = await asyncio.to_thread(publish_staged, self.lake_dir, staged)
                log.info("published a snapshot staged before a restart", path=str(final))
            else:
                path.unlink(missing_ok=True)
                log.info("discarded a stale staged snapshot", path=str(path))

    # -- intake -----------------------------------------------------------------------

    async def submit(
        self, lives: Sequence[LiveJob], keys: Mapping[uuid.UUID, tuple[str, str]]
    ) -> list[tuple[LiveJob, bool]]:
        """Queue jobs on the board; answered once Redis has them (and fsynced them)."""
        jobs = []
        for live in lives:
            key, fingerprint = keys.get(live.job_id, ("", ""))
            request = live.request
            jobs.append(
                new_job(
                    str(live.job_id),
                    live.job.priority_level,
                    source=live.source_key,
                    estimate_s=live.estimate_s,
                    enqueued_ms=self.to_board_ms(live.job.queued_at),
                    deadline_ms=None
                    if request.deadline is None
                    else self.to_board_ms(request.deadline),
                    fields={
                        "request": request.model_dump_json(),
                        "job": live.job.model_dump_json(exclude={"processing_duration"}),
                        "symbol": request.market_symbol,
                        "origin": str(request.origin),
                        "submitted_by": self.node_id,
                        # a file in this node's drop or ingest folder: only this node has it
                        "pin": self.node_id if request.source_url.startswith("file://") else "",
                    },
                    idem_key=key,
                    # the first use: its job and what was asked
                    idem_value=f"{live.job_id} {fingerprint}" if key else "",
                    idem_ttl_ms=IDEMPOTENCY_TTL_MS,
                )
            )
        try:
            found = await self.board.submit(jobs)
        except Exception as exc:
            raise Unavailable(
                f"the cluster's Redis ({self.redis_facts.url}) did not take the request "
                f"({type(exc).__name__}); nothing was accepted: retry"
            ) from None
        out = []
        for live, earlier in zip(lives, found, strict=True):
            if not earlier:
                out.append((live, False))
                continue
            job_id, _, fingerprint = earlier.partition(" ")
            key = keys[live.job_id][0]
            if fingerprint != keys[live.job_id][1]:
                raise Conflict(
                    f"idempotency key {key!r} was used for a different request (job "
                    f"{job_id[:8]}); a key stands for one request for 24 hours"
                )
            h = await self.board.job(job_id)
            if h is None:
                raise Conflict(
                    f"idempotency key {key!r} stands for job {job_id[:8]}, which the cluster "
                    "no longer holds"
                )
            out.append((self.live_from({"job_id": job_id, **h}), True))
        return out

    # -- reads ------------------------------------------------------------------------

    def job_from(self, h: Mapping[str, str]) -> ProcessingJob:
        """The job as the board holds it now (its first shape, with the live fields)."""
        job = ProcessingJob.model_validate_json(h["job"], context=self._decode)
        status = JobStatus(h.get("status", "queued"))
        update: dict[str, Any] = {
            "status": status,
            "priority_level": PriorityLevel(h.get("level", job.priority_level)),
            "retry_count": min(int(h.get("retries") or 0), self.settings.retry.max_retries),
            "lease_owner": h.get("node") or None,
            "started_at": self.from_board_ms(h.get("started_ms")),
            "updated_at": self.from_board_ms(h.get("updated_ms")),
            "error_message": h.get("error_message") or None,
            "at_risk": h.get("at_risk") == "1",
        }
        if h.get("deadline_ms"):  # a trader's retry or bump runs it from then
            update["deadline"] = self.from_board_ms(h["deadline_ms"])
        if status.is_final or status is JobStatus.FAILED:
            update["completed_at"] = self.from_board_ms(h.get("finished_ms"))
            sla = h.get("sla_status", "")
            if sla in {s.value for s in SlaStatus}:
                update["sla_status"] = SlaStatus(sla)
        if h.get("records_processed"):
            update["records_processed"] = int(h["records_processed"])
        if h.get("data_size_bytes"):
            update["data_size_bytes"] = int(h["data_size_bytes"])
        return job.model_copy(update=update)

    def live_from(self, h: Mapping[str, str]) -> LiveJob:
        request = PriorityRequest.model_validate_json(h["request"], context=self._decode)
        job = self.job_from(h)
        deadline = job.deadline
        return LiveJob(
            request=request,
            job=job,
            source_key=h.get("source", ""),
            estimate_s=float(h.get("estimate_s") or 0.0),
            enqueued_mono=self.clock.mono(),
            deadline_mono=self.clock.to_mono(deadline) if deadline else None,
            snapshot_id=h.get("snapshot_id") or None,
            at_risk_reason=h.get("risk_reason", "") if h.get("at_risk") == "1" else "",
        )

    async def live(self, job_id: uuid.UUID) -> LiveJob | None:
        h = await self.board.job(str(job_id))
        return None if h is None or "request" not in h else self.live_from(h)

    async def cancel(self, job_id: uuid.UUID) -> LiveJob:
        answer = await self.board.cancel(
            str(job_id), "cancelled by a trader", ttl_ms=self.node.ttl_ms
        )
        if answer == "MISSING":
            raise NotFound(f"no job {job_id} on the cluster's board")
        live = await self.live(job_id)
        if live is None:
            raise NotFound(f"no job {job_id} on the cluster's board")
        if answer not in ("CANCELLED", "RUNNING"):
            raise finished_conflict(live.job)
        if answer == "RUNNING":
            live.cancel_requested = True
        return live

    async def requeue(
        self,
        job_id: uuid.UUID,
        *,
        wanted: JobStatus,
        level: PriorityLevel,
        deadline: datetime | None,
        reason: str,
        new_cycle: bool = False,
    ) -> LiveJob:
        """A trader's retry of a FAILED job or change of a QUEUED job's level, on the board."""
        answer = await self.board.requeue(
            str(job_id),
            wanted=wanted.value,
            level=level,
            deadline_ms=None if deadline is None else self.to_board_ms(deadline),
            enqueued_ms=self.to_board_ms(self.clock.now()),
            reason=reason,
            new_cycle=new_cycle,
        )
        live = await self.live(job_id) if answer != "MISSING" else None
        if live is None:
            raise NotFound(
                f"no job {job_id} on the cluster's board (a finished job leaves it after "
                "[cluster] job_status_ttl_days): submit the request again"
            )
        if answer != "OK":
            raise Conflict(
                f"only a {wanted.value.upper()} job can be "
                f"{'retried' if wanted is JobStatus.FAILED else 'given another level'}; "
                f"job {job_id} is {answer.upper()}"
            )
        return live

    async def status(self) -> dict[str, Any]:
        nodes = await self.board.nodes()
        holder, epoch = await self.board.leader()
        now_ms = await self.board.time_ms()
        found = await facts(self.board.client, self.settings.cluster)
        self.redis_facts = found
        return {
            "mode": "cluster",
            "cluster": self.settings.cluster.name,
            "node_id": self.node_id,
            "leader": holder or None,
            "epoch": epoch,
            "nodes": [
                {
                    "node_id": n["node_id"],
                    "host": n.get("host", ""),
                    "slots": int(n.get("slots") or 0),
                    "busy": int(n.get("busy") or 0),
                    "heartbeat_age_s": round(
                        max(0.0, (now_ms - float(n.get("heartbeat_ms") or now_ms)) / 1000), 3
                    ),
                    "leader": n["node_id"] == holder,
                    "version": n.get("version", ""),
                }
                for n in nodes
            ],
            "redis": {
                "url": found.url,
                "version": found.version,
                "appendonly": found.aof_enabled,
                "appendfsync": found.appendfsync,
                "durable": found.durable,
                "used_memory": found.used_memory_human,
                "ops_per_s": found.ops_per_s,
                "warning": found.volatility() if not found.durable else "",
            },
        }

    # -- work -------------------------------------------------------------------------

    async def _work(self, job_id: str, h: Mapping[str, str]) -> Attempt:
        live = self.live_from({"job_id": job_id, **h})
        key = live.job_id
        self._tokens[key] = int(h["token"])
        try:
            outcome = await self._executor.attempt(live)
        finally:
            self._tokens.pop(key, None)
            staged = self._staged.pop(key, None)
        fields: dict[str, Any] = {
            "records_processed": outcome.records,
            "data_size_bytes": outcome.size_bytes,
        }
        if not outcome.ok or staged is None:
            if staged is not None:
                staged[0].path.unlink(missing_ok=True)
            return Attempt(
                ok=False,
                code=outcome.code,
                message=outcome.message,
                retry_after_s=outcome.retry_after_s,
                fields=fields,
            )
        found, record = staged
        fields["snapshot_id"] = str(record.snapshot_id)
        fields["lake_file"] = str(found.final)  # where the other nodes find it once published

        async def publish() -> None:
            first = not any(self.lake_dir.glob("symbol=*"))
            final = await asyncio.to_thread(publish_staged, self.lake_dir, found)
            await cache_snapshot(self.store, record, final, first_in_lake=first)
            if outcome.snapshot is not None:
                summary = present.snapshot_summary(outcome.snapshot.snapshot_row)
                live.snapshot_id = summary.snapshot_id
                self.latest.note(summary)
                self.bus.publish(EventType.SNAPSHOT_CREATED, present.snapshot_notice(summary, live))

        async def discard() -> None:
            found.path.unlink(missing_ok=True)

        return Attempt(ok=True, fields=fields, publish=publish, discard=discard)

    async def _stage(self, live: LiveJob, record: SnapshotRecord) -> None:
        token = self._tokens[live.job_id]
        staged = await asyncio.to_thread(
            stage_snapshot, self.staging, self.lake_dir, record, str(live.job_id), token
        )
        self._staged[live.job_id] = (staged, record)

    # -- the mirror -------------------------------------------------------------------

    async def _follow(self, after: str) -> None:
        """Copy every job change the cluster announces into this node's DuckDB and bus."""
        delay = 0.1
        while True:
            try:
                events = await self.board.events_after(after, count=MIRROR_BATCH, block_ms=1000)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster event stream unreachable", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            if not events:
                continue
            after = events[-1][0]
            shared = [
                int(e.get("version") or 0) for _, e in events if e.get("type") == "rules.changed"
            ]
            if shared and max(shared) > self._rules_version:
                try:
                    await self._adopt_rules(*await self.board.rules())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("could not adopt the cluster's rule set")
            changed_sources = {
                e["source"]
                for _, e in events
                if e.get("type") == "source.changed" and e.get("node") != self.node_id
            }
            if changed_sources:
                try:
                    await self._adopt_sources(
                        await self.board.source_states(sorted(changed_sources))
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("could not adopt a source change from the cluster")
            ids = list(dict.fromkeys(e["job_id"] for _, e in events if e.get("job_id")))
            found = {
                j: {"job_id": j, **h}
                for j, h in zip(ids, await self.board.jobs(ids), strict=True)
                if h and "request" in h
            }
            try:
                history = await self._history(events, found)
                await self._mirror_hashes(list(found.values()), history)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store refused: say so, keep following
                log.exception("could not mirror cluster jobs into this node's database")
            for _, event in events:
                kind = EVENT_TYPES.get(event.get("type", ""))
                h = found.get(event.get("job_id", ""))
                if kind is None or h is None:
                    continue
                self._count_risk(kind, h)
                if kind is EventType.JOB_COMPLETED and h.get("node") != self.node_id:
                    self._spawn(self._adopt_snapshot(h), "gexd-cluster-snapshot")
                if kind in FINAL_EVENTS:
                    self._count_finish(h)
                    if kind is EventType.JOB_COMPLETED and not self._lake_seen:
                        await self._see_lake()
                self.bus.publish(kind, self._notice(h, kind))

    async def _see_lake(self) -> None:
        """The first snapshot in the shared lake (another node's, maybe): let this node's
        `gex_lake` view, made over an empty lake at start, read it."""
        if await asyncio.to_thread(lambda: any(self.lake_dir.glob("symbol=*/*/*.parquet"))):
            self._lake_seen = True
            await asyncio.wrap_future(self.store.refresh_views())

    def _count_finish(self, h: Mapping[str, str]) -> None:
        """The cluster's SLA figures, on every node: each job that ended, met or not."""
        watch = self.sla_watch
        if watch is None or "level" not in h:
            return
        sla = h.get("sla_status", "")
        met = None if sla in ("", SlaStatus.NONE.value) else sla == SlaStatus.MET.value
        watch.record_finish(PriorityLevel(h["level"]), met=met, flagged=False)

    def _notice(self, h: Mapping[str, str], kind: EventType) -> Callable[[], Any]:
        facts: dict[str, Any] = {}
        if kind in (EventType.JOB_RETRYING, EventType.JOB_FAILED) and h.get("error_message"):
            facts = {"reason": h["error_message"], "code": h.get("error_code") or None}
        return lambda: present.job_notice(self.live_from(h), **facts)

    async def _history(
        self, events: Sequence[tuple[str, Mapping[str, str]]], found: Mapping[str, Any]
    ) -> dict[str, list[JobEvent]]:
        """Each job's history entries from what the cluster announced (its creation is the
        job row's own), numbered after what this node's database already holds."""
        wanted = [
            (stream_id, e)
            for stream_id, e in events
            if e.get("type") in HISTORY_OF_EVENT and e.get("job_id") in found
        ]
        ids = list(dict.fromkeys(e["job_id"] for _, e in wanted))
        unknown = [j for j in ids if j not in self._history_seq]
        if unknown:
            self._history_seq.update(await self.store.read(last_event_seqs, unknown))
            while len(self._history_seq) > 100_000:
                self._history_seq.popitem(last=False)
        history: dict[str, list[JobEvent]] = {}
        for stream_id, e in wanted:
            job_id = e["job_id"]
            seq = self._history_seq.get(job_id, 1) + 1
            self._history_seq[job_id] = seq
            history.setdefault(job_id, []).append(
                history_event(e, seq, self.from_board_ms(stream_id.split("-", 1)[0]))
            )
        return history

    async def _mirror_hashes(
        self,
        hashes: Sequence[Mapping[str, str]],
        history: Mapping[str, list[JobEvent]] | None = None,
    ) -> None:
        changes: list[Any] = []
        for h in hashes:
            if "request" not in h or "job" not in h:
                continue
            try:
                request = PriorityRequest.model_validate_json(h["request"], context=self._decode)
                job = self.job_from(h)
            except ValueError:  # never let one odd job stop the mirror
                log.exception("a cluster job did not read back; not mirrored", job_id=h["job_id"])
                continue
            request_id = str(request.request_id)
            if request_id not in self._seen_requests:
                changes.append(PutRequest(request))
                self._seen_requests[request_id] = None
                if len(self._seen_requests) > 100_000:
                    self._seen_requests.popitem(last=False)
            changes.append(MirrorJob(job, tuple((history or {}).get(h["job_id"], ()))))
        if changes:
            await self.store.commit(changes)
            self.mirrored += len(hashes)

    def _count_risk(self, kind: EventType, h: Mapping[str, str]) -> None:
        job_id = h["job_id"]
        if kind is EventType.SLA_AT_RISK and h.get("status") == JobStatus.QUEUED.value:
            self.at_risk[job_id] = PriorityLevel(h.get("level", "low"))
        elif kind is EventType.SLA_RISK_CLEARED or (
            kind.family == "job" and kind is not EventType.JOB_QUEUED
        ):  # cleared, or started, ended, moved: no longer counted
            self.at_risk.pop(job_id, None)

    def at_risk_by_level(self) -> dict[PriorityLevel, int]:
        counts = dict.fromkeys(PriorityLevel, 0)
        for level in self.at_risk.values():
            counts[level] += 1
        return counts

    async def _watch(self) -> None:
        """Queue depth and running jobs per level, for /v1/queues and health."""
        while True:
            with contextlib.suppress(Exception):
                depths = await self.board.depths()
                running = await self.board.running()
                levels = [(h or {}).get("level", "") for h in await self.board.jobs(running)]
                self.figures = {
                    level: (depths.get(level, 0), levels.count(level.value))
                    for level in PriorityLevel
                }
            await asyncio.sleep(1.0)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
