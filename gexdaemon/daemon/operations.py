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
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from gexdaemon.core.errors import Conflict, InvalidInput, MalformedInput, NotFound, Problem
from gexdaemon.core.models import (
    ExpiryFilter,
    GEXDataType,
    JobStatus,
    Origin,
    PriorityLevel,
    RequestSubmission,
)
from gexdaemon.core.symbols import normalize_symbol, underlying_of_root
from gexdaemon.daemon import present
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.metrics import render_metrics
from gexdaemon.daemon.sla import SlaWatch
from gexdaemon.drop.watcher import symbol_from_name
from gexdaemon.feeds import registry
from gexdaemon.feeds.base import FeedFile
from gexdaemon.protocol import shapes as s
from gexdaemon.storage import snapshots
from gexdaemon.storage.jobs import (
    job_detail,
    job_page,
    jobs_of_request,
    load_job,
    load_request,
    sla_breaches,
)
from gexdaemon.storage.sql import run_read_only

if TYPE_CHECKING:
    from gexdaemon.daemon.app import Daemon

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


class Operations:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    @property
    def bus(self) -> EventBus:
        return self.d.bus

    @property
    def max_ingest_bytes(self) -> int:
        return self.d.settings.drop.max_file_bytes

    # -- health and queues ---------------------------------------------------------

    def health(self) -> s.Health:
        d = self.d
        store = d.store
        return s.Health(
            status="ok" if d.state == "running" else d.state,
            version=d.version,
            uptime_s=round(d.uptime_s(), 3),
            instance=d.instance,
            pid=os.getpid(),
            socket=str(d.config.socket_path),
            data_dir=str(d.config.data_dir),
            drop_dir=str(d.config.drop_dir),
            workers=d.settings.daemon.workers,
            queued=d.scheduler.queued_count,
            in_flight=d.scheduler.in_flight_count,
            store=s.StoreFigures(
                commits=store.stats.commits if store else 0,
                changes=store.stats.changes if store else 0,
                last_commit_ms=round(store.stats.last_commit_ms, 3) if store else None,
            ),
            events=s.EventFigures(last_seq=d.bus.last_seq, subscribers=d.bus.subscriber_count),
        )

    def queues(self) -> s.Queues:
        d = self.d
        return s.Queues(
            levels=d.level_summary(),
            workers=s.Workers(total=d.settings.daemon.workers, busy=d.scheduler.in_flight_count),
            phases=dict(d.scheduler.phase_counts),
            sources=[
                s.SourceLane(
                    source=lane.source,
                    queued=lane.queued,
                    in_flight=lane.in_flight,
                    cap=lane.cap,
                    tokens=round(lane.tokens, 2),
                    access=lane.access,
                )
                for lane in d.scheduler.source_stats()
            ],
        )

    async def sla(self) -> s.SlaReport:
        d = self.d
        breached = await d.require_store().read(sla_breaches, 200)
        now = d.now()
        breaches = []
        for row in breached:
            listed = present.listed_job(row)
            end = row["completed_at"] or now
            late = round((end - row["deadline"]).total_seconds(), 3) if row["deadline"] else None
            breaches.append(
                s.Breach(
                    **{k: getattr(listed, k) for k in listed.__struct_fields__}, late_by_s=late
                )
            )
        return s.SlaReport(
            breaches=breaches,
            at_risk=[present.job_row(live) for live in d.book if live.job.at_risk],
            levels=[d.sla.summary(lv) if d.sla else SlaWatch.empty(lv) for lv in PriorityLevel],
        )

    # -- requests and jobs -----------------------------------------------------------

    async def submit_payload(
        self, payload: Any, *, origin: str = "api"
    ) -> s.Accepted | s.AcceptedBatch:
        # A client may say it is the CLI or the dashboard; anything else counts as the API.
        said = CLIENT_ORIGINS.get(origin, Origin.API)
        subs = self.d.intake.parse(payload)
        accepted = await self.d.intake.submit(subs, origin=said)
        single = isinstance(payload, Mapping) and "requests" not in payload
        items = [a.receipt(explain=single) for a in accepted]
        return items[0] if single else s.AcceptedBatch(requests=items, accepted=len(items))

    async def get_request(self, request_id: uuid.UUID) -> s.RequestView:
        store = self.d.require_store()
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
        page = await self.d.require_store().read(
            job_page, status=status, level=level, symbol=sym, before=before, limit=limit
        )
        jobs = [self._listed(row) for row in page.jobs]
        return s.JobPage(jobs=jobs, next_cursor=jobs[-1].job_id if page.more and jobs else None)

    def _listed(self, row: Mapping[str, Any]) -> s.JobRow:
        """A stored job's row; a live one says why it is at risk, as the book knows."""
        listed = present.listed_job(row)
        live = self.d.book.live(uuid.UUID(listed.job_id))
        if live is not None and live.at_risk_reason:
            listed.at_risk_reason = live.at_risk_reason
        return listed

    async def get_job(self, job_id: uuid.UUID) -> s.JobDetail:
        found = await self.d.require_store().read(job_detail, job_id)
        if found is None:
            raise NotFound(
                f"no job {job_id} (archived jobs are in the processing_jobs_all view: gexdaemon query)"
            )
        live = self.d.book.get(job_id)
        return s.JobDetail(
            job=present.job_view(found.job),
            request=present.request_view(found.request) if found.request else None,
            history=[present.job_event(e) for e in found.history],
            snapshot_id=str(found.snapshot_id) if found.snapshot_id else None,
            live=present.job_row(live) if live is not None else None,
        )

    async def cancel_job(self, job_id: uuid.UUID) -> s.JobRow:
        if self.d.book.get(job_id) is None:
            await self._known_job(job_id)
            raise Conflict(
                f"job {job_id} has already finished; only QUEUED or PROCESSING jobs can be cancelled"
            )
        live = await self.d.runner.cancel(job_id)
        return present.job_row(live)

    async def retry_job(self, job_id: uuid.UUID) -> s.JobRow:
        live = await self.d.runner.retry(job_id)
        return present.job_row(live)

    async def change_job(self, job_id: uuid.UUID, change: s.JobChange) -> s.JobRow:
        if self.d.book.live(job_id) is None:
            await self._known_job(job_id)
        live = await self.d.runner.set_level(job_id, change.priority_level)
        return present.job_row(live)

    async def _known_job(self, job_id: uuid.UUID) -> None:
        job = await self.d.require_store().read(load_job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")

    # -- rules ---------------------------------------------------------------------

    async def list_rules(self) -> s.RuleList:
        return s.RuleList(
            rules=[present.rule_view(r) for r in self.d.rules.rules],
            fingerprint=self.d.rules.current.fingerprint,
        )

    async def get_rule(self, ref: str) -> s.RuleView:
        return present.rule_view(self.d.rules.find(ref))

    async def create_rule(self, draft: s.RuleDraft) -> s.SavedRule:
        return await self.d.rules.create(draft.to_builtins())

    async def update_rule(self, ref: str, change: s.RuleChange) -> s.SavedRule:
        sent = {k: v for k, v in change.to_builtins().items() if v is not None}
        if not sent:
            raise InvalidInput.from_problems(
                "the rule change", [Problem("(root)", "names no field to change")]
            )
        return await self.d.rules.update(ref, sent)

    async def delete_rule(self, ref: str) -> s.RuleView:
        return await self.d.rules.delete(ref)

    async def rule_history(self, ref: str) -> s.RuleHistory:
        return s.RuleHistory(history=await self.d.rules.history(ref))

    async def test_rules(self, test: s.ShadowTest) -> s.ShadowReport:
        return await self.d.rules.test(test.to_builtins())

    # -- sources -------------------------------------------------------------------

    def list_sources(self) -> s.SourceList:
        return s.SourceList(sources=[present.source_view(src) for src in self.d.sources.all()])

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
        source = await self.d.sources.set_enabled(ref, value)
        return present.source_view(source)

    # -- snapshots -----------------------------------------------------------------

    async def list_snapshots(
        self, *, symbol: str | None, date: str | None, limit: int
    ) -> s.SnapshotList:
        sym = normalize_symbol(symbol) if symbol else None
        found = await self.d.require_store().read(
            lambda cur: snapshots.list_snapshots(cur, sym, date, limit)
        )
        return s.SnapshotList(snapshots=[present.snapshot_summary(row) for row in found])

    async def latest_snapshot(self, symbol: str, expiry: ExpiryFilter | None) -> s.SnapshotView:
        sym = normalize_symbol(symbol)
        found = await self.d.require_store().read(
            lambda cur: snapshots.latest_snapshot(cur, sym, expiry)
        )
        if found is None:
            raise NotFound(f"no snapshot of {sym} yet")
        return present.snapshot_view(found)

    async def get_snapshot(self, snapshot_id: uuid.UUID) -> s.SnapshotView:
        found = await self.d.require_store().read(
            lambda cur: snapshots.load_snapshot(cur, snapshot_id)
        )
        if found is None:
            raise NotFound(f"no snapshot {snapshot_id}")
        return present.snapshot_view(found)

    async def gex_history(self, symbol: str, limit: int) -> s.GexHistory:
        sym = normalize_symbol(symbol)
        points = await self.d.require_store().read(
            lambda cur: snapshots.gex_history(cur, sym, limit)
        )
        return msgspec.convert(
            {"symbol": sym, "points": [{"snapshot_at": at, "total_gex": g} for at, g in points]},
            s.GexHistory,
        )

    # -- SQL -----------------------------------------------------------------------

    async def query(self, sql: str, *, limit: int) -> s.QueryResult:
        """Read-only SQL: one SELECT; the database cannot touch files outside the data directory."""
        found = await self.d.require_store().read(
            run_read_only, sql, limit=limit, timeout_s=QUERY_TIMEOUT_S
        )
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
        fmt, _ = registry.detect(FeedFile(name=name, data=data))
        optionable = self.d.config.domain_context().optionable
        sym = normalize_symbol(symbol) if symbol else symbol_from_name(name, optionable)
        if sym is None:
            _, parsed = await asyncio.to_thread(registry.parse, FeedFile(name=name, data=data))
            sym = (
                underlying_of_root(normalize_symbol(parsed.underlying))
                if parsed.underlying
                else None
            )
        if sym is None:
            raise InvalidInput.from_problems(
                name, [Problem("symbol", "the file does not say its underlying; pass --symbol")]
            )
        lv = level
        target = self.d.ingest_dir / f"{uuid.uuid4().hex[:12]}_{name}"
        await asyncio.to_thread(target.write_bytes, data)
        sub = RequestSubmission.parse(
            {
                "source_url": target.resolve().as_uri(),
                "data_type": GEXDataType.SNAPSHOT,
                "market_symbol": sym,
                "metadata": {"file": name, "format": fmt.name, "bytes": len(data)},
            },
            context=self.d.config.domain_context(allow_file_urls=True),
            what=name,
        )
        try:
            accepted = await self.d.intake.submit([sub], origin=Origin.INGEST, level_override=lv)
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
        store = self.d.require_store()
        report = await asyncio.wrap_future(store.archive(now=self.d.now()))
        return msgspec.convert(report.as_dict(), s.ArchiveResult)

    def metrics_text(self) -> str:
        return render_metrics(self.d)

    # -- the event stream's first message ------------------------------------------

    def state_message(self) -> s.StateMessage:
        """Everything a dashboard needs to draw itself, built without awaiting (so no event slips in)."""
        d = self.d
        return s.StateMessage(
            seq=d.bus.last_seq,
            at=d.now(),
            state=s.DeskState(
                health=self.health(),
                queues=self.queues(),
                jobs=[present.job_row(live) for live in d.live_jobs(limit=2000)],
                recent=[present.job_row(live) for live in d.book.recent()[:500]],
                sources=self.list_sources().sources,
                rules=[present.rule_view(r) for r in d.rules.rules],
                snapshots=list(d.latest_snapshots.values()),
            ),
        )
