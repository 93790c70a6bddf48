"""What the socket API can ask of the daemon, one method per operation, in wire shapes.

Handlers in `gexdaemon.api.server` only decode and encode; every rule about what
is allowed lives here or below. Reads of history go to the database (the
record); live facts (queues, in-flight work, SLA windows) come from memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from gexdaemon import readout
from gexdaemon.config import Config
from gexdaemon.core.errors import Conflict, InvalidInput, MalformedInput, NotFound, Problem
from gexdaemon.core.models import (
    ExpiryFilter,
    GEXDataType,
    JobStatus,
    Origin,
    PriorityLevel,
    ProcessingJob,
    RequestSubmission,
    check_idempotency_key,
    check_transition,
)
from gexdaemon.core.symbols import normalize_symbol
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.intake import Intake
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.daemon.metrics import render_metrics
from gexdaemon.daemon.queue import JobQueue
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.runner import Runner, bump_reason, finished_conflict, retry_reason
from gexdaemon.daemon.snapshots import LatestSnapshots
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.protocol import shapes as s
from gexdaemon.storage import snapshots
from gexdaemon.storage.jobs import (
    IdKind,
    ids_matching,
    job_detail,
    job_page,
    jobs_of_request,
    load_job,
    load_request,
    sla_breaches,
)
from gexdaemon.storage.sql import run_read_only
from gexdaemon.storage.store import Store


class AmbiguousId(InvalidInput):
    """A short id that matches more than one job (or request, or snapshot)."""

    code = "ambiguous_id"


if TYPE_CHECKING:
    from gexdaemon.daemon.cluster import ClusterService

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
QUERY_TIMEOUT_S = 30.0
CLIENT_ORIGINS = {o.value: o for o in (Origin.CLI, Origin.TUI, Origin.DEMO)}


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


class Identity(Protocol):
    """What the daemon says about itself (`Daemon` is one)."""

    version: str
    instance: str

    @property
    def state(self) -> str: ...

    def uptime_s(self) -> float: ...


@dataclass(kw_only=True, eq=False)
class Operations:
    """Every operation of the socket API, over the daemon's services."""

    identity: Identity
    config: Config
    store: Store
    queue: JobQueue
    runner: Runner
    intake: Intake
    rules: RuleService
    sources: SourceBook
    latest: LatestSnapshots
    bus: EventBus
    clock: Clock
    ingest_dir: Path
    cluster: ClusterService | None = None

    def __post_init__(self) -> None:
        self._settings = self.config.settings

    @property
    def max_ingest_bytes(self) -> int:
        return self._settings.drop.max_file_bytes

    # -- health and queues ---------------------------------------------------------

    def health(self) -> s.Health:
        me, cfg, stats, sched = (
            self.identity,
            self.config,
            self.store.stats,
            self.queue.scheduler,
        )
        return s.Health(
            status="ok" if me.state == "running" else me.state,
            version=me.version,
            uptime_s=round(me.uptime_s(), 3),
            instance=me.instance,
            pid=os.getpid(),
            socket=str(cfg.socket_path),
            data_dir=str(cfg.data_dir),
            drop_dir=str(cfg.drop_dir),
            workers=self._settings.daemon.workers,
            queued=self._cluster_total(0) if self.cluster else sched.queued_count,
            in_flight=self._cluster_total(1) if self.cluster else sched.in_flight_count,
            store=s.StoreFigures(
                commits=stats.commits,
                changes=stats.changes,
                last_commit_ms=round(stats.last_commit_ms, 3),
            ),
            events=s.EventFigures(
                last_seq=self.bus.last_seq, subscribers=self.bus.subscriber_count
            ),
        )

    def _cluster_total(self, which: int) -> int:
        assert self.cluster is not None
        return sum(figures[which] for figures in self.cluster.figures.values())

    def queues(self) -> s.Queues:
        sched = self.queue.scheduler
        levels = self.queue.figures()
        busy = sched.in_flight_count
        if self.cluster is not None:  # the whole cluster's queues, this node's workers
            found = self.cluster.figures
            risky = self.cluster.at_risk_by_level()
            levels = [
                msgspec.structs.replace(
                    lv,
                    depth=found[lv.level][0],
                    in_flight=found[lv.level][1],
                    at_risk=risky[lv.level],
                )
                for lv in levels
            ]
            busy = self.cluster.node.busy
        return s.Queues(
            levels=levels,
            workers=s.Workers(total=self._settings.daemon.workers, busy=busy),
            phases=dict(sched.phase_counts),
            sources=[
                s.SourceLane(
                    source=lane.source,
                    queued=lane.queued,
                    in_flight=lane.in_flight,
                    cap=lane.cap,
                    tokens=round(lane.tokens, 2),
                    access=lane.access,
                )
                for lane in sched.source_stats()
            ],
        )

    async def sla(self) -> s.SlaReport:
        breached = await self.store.read(sla_breaches, 200)
        now = self.clock.now()
        breaches = []
        for row in breached:
            listed = present.listed_job(row)
            end = row["completed_at"] or now
            late = None
            if row["deadline"] is not None and end > row["deadline"]:
                late = round((end - row["deadline"]).total_seconds(), 3)
            # else: it failed for good before its deadline (a breach without lateness)
            breaches.append(
                s.Breach(
                    **{k: getattr(listed, k) for k in listed.__struct_fields__}, late_by_s=late
                )
            )
        return s.SlaReport(
            breaches=breaches,
            at_risk=[present.job_row(live) for live in self.queue.book if live.job.at_risk],
            levels=[self.queue.sla_watch.summary(lv) for lv in PriorityLevel],
        )

    # -- requests and jobs -----------------------------------------------------------

    async def submit_payload(
        self, payload: Any, *, origin: str = "api", idempotency_key: str | None = None
    ) -> s.Accepted | s.AcceptedBatch:
        # A client may say it is the CLI or the dashboard; anything else counts as the API.
        said = CLIENT_ORIGINS.get(origin, Origin.API)
        if idempotency_key is not None:
            payload = with_idempotency_key(payload, idempotency_key)
        subs = self.intake.parse(payload)
        accepted = await self.intake.submit(subs, origin=said)
        single = isinstance(payload, Mapping) and "requests" not in payload
        items = [a.receipt(explain=single) for a in accepted]
        return items[0] if single else s.AcceptedBatch(requests=items, accepted=len(items))

    async def get_request(self, ref: str) -> s.RequestView:
        request_id = await self._resolve(ref, "request")
        store = self.store
        request = await store.read(load_request, request_id)
        if request is None:
            raise NotFound(f"no request {request_id}")
        jobs = await store.read(jobs_of_request, request_id)
        return present.request_view(
            request, [msgspec.convert(_jsonable(j), s.JobBrief) for j in jobs]
        )

    async def list_jobs(
        self,
        *,
        status: JobStatus | None,
        level: PriorityLevel | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
    ) -> s.JobPage:
        sym = normalize_symbol(symbol) if symbol else None
        before = None
        if cursor:
            try:
                before = uuid.UUID(cursor)
            except ValueError:
                raise InvalidInput.from_problems(
                    "the filter", [Problem("cursor", "is not a cursor this API returned")]
                ) from None
        page = await self.store.read(
            job_page, status=status, level=level, symbol=sym, before=before, limit=limit
        )
        jobs = [self._listed(row) for row in page.jobs]
        return s.JobPage(jobs=jobs, next_cursor=jobs[-1].job_id if page.more and jobs else None)

    def _listed(self, row: Mapping[str, Any]) -> s.JobRow:
        """A stored job's row; a live one says why it is at risk, as the book knows."""
        listed = present.listed_job(row)
        live = self.queue.book.live(uuid.UUID(listed.job_id))
        if live is not None and live.at_risk_reason:
            listed.at_risk_reason = live.at_risk_reason
        return listed

    async def get_job(self, ref: str) -> s.JobDetail:
        job_id = await self._resolve(ref, "job")
        found = await self.store.read(job_detail, job_id)
        if found is None and self.cluster is not None:
            # Submitted on another node a moment ago: the board has it before our mirror.
            live = await self.cluster.live(job_id)
            if live is not None:
                return s.JobDetail(
                    job=present.job_view(live.job),
                    request=present.request_view(live.request),
                    history=[],
                    snapshot_id=live.snapshot_id,
                    live=present.job_row(live),
                )
        if found is None:
            raise NotFound(
                f"no job {job_id} (archived jobs are in the processing_jobs_all view: gexdaemon query)"
            )
        live = self.queue.book.get(job_id)
        if self.cluster is not None and not found.job.status.is_final:
            live = await self.cluster.live(job_id)
        return s.JobDetail(
            job=present.job_view(found.job),
            request=present.request_view(found.request) if found.request else None,
            history=[present.job_event(e) for e in found.history],
            snapshot_id=str(found.snapshot_id) if found.snapshot_id else None,
            live=present.job_row(live) if live is not None else None,
        )

    async def cancel_job(self, ref: str) -> s.JobRow:
        job_id = await self._resolve(ref, "job")
        if self.cluster is not None:
            return present.job_row(await self.cluster.cancel(job_id))
        if self.queue.book.get(job_id) is None:
            job = await self._stored_job(job_id)
            raise finished_conflict(job)
        live = await self.runner.cancel(job_id)
        return present.job_row(live)

    async def retry_job(self, ref: str, *, by: str) -> s.JobRow:
        job_id = await self._resolve(ref, "job")
        if self.cluster is not None:
            return present.job_row(await self._cluster_retry(job_id, by))
        live = await self.runner.retry(job_id, by=by)
        return present.job_row(live)

    async def _cluster_retry(self, job_id: uuid.UUID, by: str) -> LiveJob:
        assert self.cluster is not None
        found = await self.cluster.live(job_id)
        if found is None:
            raise NotFound(f"no job {job_id} on the cluster's board")
        job = found.job
        check_transition(job.status, JobStatus.QUEUED)  # names both states unless FAILED
        deadline = self.queue.deadline_for(job.priority_level, self.clock.now())
        cycle = job.retry_count >= self.config.settings.retry.max_retries
        return await self.cluster.requeue(
            job_id,
            wanted=JobStatus.FAILED,
            level=job.priority_level,
            deadline=deadline,
            reason=retry_reason(by, cycle, deadline),
            new_cycle=cycle,
        )

    async def change_job(self, ref: str, change: s.JobChange, *, by: str) -> s.JobRow:
        job_id = await self._resolve(ref, "job")
        if self.cluster is not None:
            return present.job_row(await self._cluster_set_level(job_id, change, by))
        if self.queue.book.live(job_id) is None:
            job = await self._stored_job(job_id)
            raise Conflict(
                f"only a QUEUED job can change level; job {readout.short_id(job_id)} is "
                f"{job.status.value.upper()}"
            )
        live = await self.runner.set_level(job_id, change.priority_level, by=by)
        return present.job_row(live)

    async def _cluster_set_level(self, job_id: uuid.UUID, change: s.JobChange, by: str) -> LiveJob:
        assert self.cluster is not None
        found = await self.cluster.live(job_id)
        if found is None:
            raise NotFound(f"no job {job_id} on the cluster's board")
        before, level = found.job.priority_level, change.priority_level
        if found.job.status is JobStatus.QUEUED and level is before:
            return found
        deadline = self.queue.deadline_for(level, self.clock.now())
        return await self.cluster.requeue(
            job_id,
            wanted=JobStatus.QUEUED,
            level=level,
            deadline=deadline,
            reason=bump_reason(before, level, by, deadline),
        )

    async def _stored_job(self, job_id: uuid.UUID) -> ProcessingJob:
        job = await self.store.read(load_job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    async def _resolve(self, ref: str, kind: IdKind) -> uuid.UUID:
        """A full id, or the short id the CLI and the dashboard show (or a unique start of it)."""
        try:
            return uuid.UUID(ref)
        except ValueError:
            pass
        text = ref.strip().lower().replace("-", "")
        if not 4 <= len(text) <= 31 or any(c not in "0123456789abcdef" for c in text):
            raise NotFound(
                f"{ref!r} is not a {kind} id: give the full id or its short form "
                "(the 8 characters `gexdaemon jobs` shows; a unique start of them is enough)"
            )
        found = await self.store.read(ids_matching, kind, text)
        if not found:
            raise NotFound(f"no {kind} matches {ref!r}")
        if len(found) > 1:
            raise AmbiguousId(
                f"{ref!r} matches {len(found)} {kind}s; give more of the id",
                details=[Problem(readout.short_id(m.id), m.describe()) for m in found],
            )
        return found[0].id

    # -- the cluster -------------------------------------------------------------------

    async def cluster_status(self) -> s.ClusterStatus:
        if self.cluster is None:
            me = self.identity
            return s.ClusterStatus(
                mode="embedded",
                cluster=None,
                node_id=me.instance,
                leader=None,
                epoch=0,
                nodes=[
                    s.ClusterNode(
                        node_id=me.instance,
                        host=me.instance.split(":", 1)[0],
                        slots=self._settings.daemon.workers,
                        busy=self.queue.scheduler.in_flight_count,
                        heartbeat_age_s=0.0,
                        leader=True,
                        version=me.version,
                    )
                ],
                redis=None,
            )
        return msgspec.convert(await self.cluster.status(), s.ClusterStatus)

    # -- rules ---------------------------------------------------------------------

    async def list_rules(self) -> s.RuleList:
        return s.RuleList(
            rules=[present.rule_view(r) for r in self.rules.rules],
            fingerprint=self.rules.current.fingerprint,
        )

    async def get_rule(self, ref: str) -> s.RuleView:
        return present.rule_view(self.rules.find(ref))

    async def create_rule(self, draft: s.RuleDraft) -> s.SavedRule:
        return await self.rules.create(draft.to_builtins())

    async def update_rule(self, ref: str, change: s.RuleChange) -> s.SavedRule:
        sent = {k: v for k, v in change.to_builtins().items() if v is not None}
        if not sent:
            raise InvalidInput.from_problems(
                "the rule change", [Problem("(root)", "names no field to change")]
            )
        return await self.rules.update(ref, sent)

    async def delete_rule(self, ref: str) -> s.RuleView:
        return await self.rules.delete(ref)

    async def rule_history(self, ref: str) -> s.RuleHistory:
        return s.RuleHistory(history=await self.rules.history(ref))

    async def test_rules(self, test: s.ShadowTest) -> s.ShadowReport:
        return await self.rules.test(test.to_builtins())

    # -- sources -------------------------------------------------------------------

    def list_sources(self) -> s.SourceList:
        return s.SourceList(sources=[present.source_view(src) for src in self.sources.all()])

    async def change_source(self, ref: str, change: s.SourceChange) -> s.SourceView:
        value = change.is_active if change.is_active is not None else change.enabled
        if value is None:
            raise InvalidInput.from_problems(
                "the source change",
                [
                    Problem(
                        "is_active",
                        'is required: {"is_active": true} enables, {"is_active": false} disables',
                    )
                ],
            )
        source = await self.sources.set_enabled(ref, value)
        return present.source_view(source)

    # -- snapshots -----------------------------------------------------------------

    async def list_snapshots(
        self, *, symbol: str | None, date: str | None, limit: int
    ) -> s.SnapshotList:
        sym = normalize_symbol(symbol) if symbol else None
        found = await self.store.read(snapshots.list_snapshots, sym, date, limit)
        return s.SnapshotList(snapshots=[present.snapshot_summary(row) for row in found])

    async def latest_snapshot(self, symbol: str, expiry: ExpiryFilter | None) -> s.SnapshotView:
        sym = normalize_symbol(symbol)
        found = await self.store.read(snapshots.latest_snapshot, sym, expiry)
        if found is None:
            raise NotFound(f"no snapshot of {sym} yet")
        return present.snapshot_view(found)

    async def get_snapshot(self, ref: str) -> s.SnapshotView:
        snapshot_id = await self._resolve(ref, "snapshot")
        found = await self.store.read(snapshots.load_snapshot, snapshot_id)
        if found is None:
            raise NotFound(f"no snapshot {snapshot_id}")
        return present.snapshot_view(found)

    async def gex_history(self, symbol: str, limit: int) -> s.GexHistory:
        sym = normalize_symbol(symbol)
        points = await self.store.read(snapshots.gex_history, sym, limit)
        return msgspec.convert(
            {"symbol": sym, "points": [{"snapshot_at": at, "total_gex": g} for at, g in points]},
            s.GexHistory,
        )

    # -- SQL -----------------------------------------------------------------------

    async def query(self, sql: str, *, limit: int) -> s.QueryResult:
        """Read-only SQL: one SELECT; the database cannot touch files outside the data directory."""
        found = await self.store.read(run_read_only, sql, limit=limit, timeout_s=QUERY_TIMEOUT_S)
        return s.QueryResult(
            columns=found.columns,
            rows=[[_json_value(v) for v in r] for r in found.rows],
            row_count=len(found.rows),
            truncated=found.truncated,
        )

    # -- ingest and admin --------------------------------------------------------

    async def ingest_upload(
        self, data: bytes, *, filename: str, symbol: str | None, level: PriorityLevel | None
    ) -> s.IngestAccepted:
        """Keep an uploaded chain file in the data directory and queue it as a snapshot request."""
        if not data:
            raise MalformedInput("the uploaded file is empty")
        name = SAFE_NAME.sub("_", Path(filename).name)[:120] or "upload"
        # The chain readers (numpy, pyarrow) load with the first upload, not at start.
        from gexdaemon.feeds import registry  # noqa: PLC0415
        from gexdaemon.feeds.base import FeedFile  # noqa: PLC0415
        from gexdaemon.feeds.naming import symbol_of  # noqa: PLC0415

        feed = FeedFile(name=name, data=data)
        fmt, _ = registry.detect(feed)
        optionable = self.config.domain_context().optionable
        sym = (
            normalize_symbol(symbol)
            if symbol
            else await asyncio.to_thread(symbol_of, feed, optionable)
        )
        if sym is None:
            raise InvalidInput.from_problems(
                name, [Problem("symbol", "the file does not say its underlying; pass --symbol")]
            )
        lv = level
        target = self.ingest_dir / f"{uuid.uuid4().hex[:12]}_{name}"
        await asyncio.to_thread(target.write_bytes, data)
        sub = RequestSubmission.parse(
            {
                "source_url": target.resolve().as_uri(),
                "data_type": GEXDataType.SNAPSHOT,
                "market_symbol": sym,
                "metadata": {"file": name, "format": fmt.name, "bytes": len(data)},
            },
            context=self.config.domain_context(allow_file_urls=True),
            what=name,
        )
        try:
            accepted = await self.intake.submit([sub], origin=Origin.INGEST, level_override=lv)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        receipt = accepted[0].receipt()
        return s.IngestAccepted(
            **{k: getattr(receipt, k) for k in receipt.__struct_fields__},
            format=fmt.name,
            stored_as=target.name,
        )

    async def archive(self) -> s.ArchiveResult:
        report = await asyncio.wrap_future(self.store.archive(now=self.clock.now()))
        return msgspec.convert(report.as_dict(), s.ArchiveResult)

    async def rebuild_lake(self) -> s.LakeRebuildResult:
        """This node's database as a cache of the lake: every snapshot file it lacks, added."""
        report = await asyncio.to_thread(
            snapshots.rebuild_from_lake, self.store, self.config.lake_dir
        )
        if report.added:
            await self.latest.load(self.store)
        return msgspec.convert(report, s.LakeRebuildResult, from_attributes=True)

    def metrics_text(self) -> str:
        return render_metrics(
            queues=self.queues(),
            sources=self.sources.all(),
            store=self.store.stats,
            bus=self.bus,
            uptime_s=self.identity.uptime_s(),
        )

    # -- the event stream's first message ------------------------------------------

    def state_message(self) -> s.StateMessage:
        """Everything a dashboard needs to draw itself, built without awaiting (so no event slips in)."""
        return s.StateMessage(
            seq=self.bus.last_seq,
            at=self.clock.now(),
            state=s.DeskState(
                health=self.health(),
                queues=self.queues(),
                jobs=[present.job_row(live) for live in self.queue.live_jobs(limit=2000)],
                recent=[present.job_row(live) for live in self.queue.book.recent()[:500]],
                sources=self.list_sources().sources,
                rules=[present.rule_view(r) for r in self.rules.rules],
                snapshots=self.latest.all(),
            ),
        )


def with_idempotency_key(payload: Any, key: str) -> Any:
    """The Idempotency-Key header applied to a body: the request's key, or for a batch each
    entry's key `<key>#<index>`. A key in the body wins, for a single request as for a
    batch entry: the header is the default for what carries no key of its own."""
    try:
        check_idempotency_key(key)
    except ValueError as exc:
        raise InvalidInput.from_problems(
            "the Idempotency-Key header", [Problem("Idempotency-Key", str(exc))]
        ) from None
    if isinstance(payload, Mapping) and "requests" not in payload:
        if payload.get("idempotency_key") is not None:
            return payload
        return {**payload, "idempotency_key": key}
    entries = payload.get("requests") if isinstance(payload, Mapping) else payload
    if not isinstance(entries, list):
        return payload  # not a batch either: parse() words the problem
    keyed = [
        {"idempotency_key": f"{key}#{i}", **entry} if isinstance(entry, Mapping) else entry
        for i, entry in enumerate(entries)
    ]
    return {**payload, "requests": keyed} if isinstance(payload, Mapping) else keyed
