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
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.metrics import render_metrics
from gexdaemon.drop.watcher import symbol_from_name
from gexdaemon.feeds import registry
from gexdaemon.feeds.base import FeedFile
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


def _enum(value: str | None, kind: Any, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(value.lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidInput.from_problems(
            "the filter", [Problem(name, f"must be one of {allowed} (got {value!r})")]
        ) from None


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

    def health(self) -> dict[str, Any]:
        d = self.d
        store = d.store
        return {
            "status": "ok" if d.state == "running" else d.state,
            "version": d.version,
            "uptime_s": round(d.uptime_s(), 3),
            "instance": d.instance,
            "pid": os.getpid(),
            "socket": str(d.config.socket_path),
            "data_dir": str(d.config.data_dir),
            "drop_dir": str(d.config.drop_dir),
            "workers": d.settings.daemon.workers,
            "queued": d.scheduler.queued_count,
            "in_flight": d.scheduler.in_flight_count,
            "store": {
                "commits": store.stats.commits if store else 0,
                "changes": store.stats.changes if store else 0,
                "last_commit_ms": round(store.stats.last_commit_ms, 3) if store else None,
            },
            "events": {"last_seq": d.bus.last_seq, "subscribers": d.bus.subscriber_count},
        }

    def queues(self) -> dict[str, Any]:
        d = self.d
        return {
            "levels": d.level_summary(),
            "workers": {"total": d.settings.daemon.workers, "busy": d.scheduler.in_flight_count},
            "phases": {p.value: n for p, n in d.scheduler.phase_counts.items()},
            "sources": [
                {
                    "source": s.source,
                    "queued": s.queued,
                    "in_flight": s.in_flight,
                    "cap": s.cap,
                    "tokens": round(s.tokens, 2),
                    "access": s.access.value,
                }
                for s in d.scheduler.source_stats()
            ],
        }

    async def sla(self) -> dict[str, Any]:
        d = self.d
        breached = await d.require_store().read(sla_breaches, 200)
        now = d.now()
        out_breaches = []
        for row in breached:
            item = _jsonable(row)
            end = row["completed_at"] or now
            item["late_by_s"] = (
                round((end - row["deadline"]).total_seconds(), 3) if row["deadline"] else None
            )
            out_breaches.append(item)
        at_risk = [live.summary() for live in d.book if live.job.at_risk]
        return {
            "breaches": out_breaches,
            "at_risk": at_risk,
            "levels": [
                {"level": lv.value, **(d.sla.summary(lv) if d.sla else {})} for lv in PriorityLevel
            ],
        }

    # -- requests and jobs -----------------------------------------------------------

    async def submit_payload(self, payload: Any, *, origin: str = "api") -> dict[str, Any]:
        # A client may say it is the CLI or the dashboard; anything else counts as the API.
        said = CLIENT_ORIGINS.get(origin, Origin.API)
        subs = self.d.intake.parse(payload)
        accepted = await self.d.intake.submit(subs, origin=said)
        single = isinstance(payload, Mapping) and "requests" not in payload
        items = [a.as_dict(explain=single) for a in accepted]
        return items[0] if single else {"requests": items, "accepted": len(items)}

    async def get_request(self, request_id: uuid.UUID) -> dict[str, Any]:
        store = self.d.require_store()
        request = await store.read(load_request, request_id)
        if request is None:
            raise NotFound(f"no request {request_id}")
        jobs = await store.read(jobs_of_request, request_id)
        return request.model_dump(mode="json") | {"jobs": [_jsonable(j) for j in jobs]}

    async def list_jobs(
        self,
        *,
        status: str | None,
        level: str | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        st = _enum(status, JobStatus, "status")
        lv = _enum(level, PriorityLevel, "level")
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
            job_page, status=st, level=lv, symbol=sym, before=before, limit=limit
        )
        jobs = [_jsonable(r) for r in page.jobs]
        return {"jobs": jobs, "next_cursor": jobs[-1]["job_id"] if page.more and jobs else None}

    async def get_job(self, job_id: uuid.UUID) -> dict[str, Any]:
        found = await self.d.require_store().read(job_detail, job_id)
        if found is None:
            raise NotFound(
                f"no job {job_id} (archived jobs are in the processing_jobs_all view: gexdaemon query)"
            )
        live = self.d.book.get(job_id)
        return {
            "job": found.job.model_dump(mode="json"),
            "request": found.request.model_dump(mode="json") if found.request else None,
            "history": [e.model_dump(mode="json") for e in found.history],
            "snapshot_id": str(found.snapshot_id) if found.snapshot_id else None,
            "live": live.summary() if live is not None else None,
        }

    async def cancel_job(self, job_id: uuid.UUID) -> dict[str, Any]:
        if self.d.book.get(job_id) is None:
            await self._known_job(job_id)
            raise Conflict(
                f"job {job_id} has already finished; only QUEUED or PROCESSING jobs can be cancelled"
            )
        live = await self.d.runner.cancel(job_id)
        return live.summary()

    async def retry_job(self, job_id: uuid.UUID) -> dict[str, Any]:
        live = await self.d.runner.retry(job_id)
        return live.summary()

    async def patch_job(self, job_id: uuid.UUID, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, Mapping) or set(payload) != {"priority_level"}:
            raise InvalidInput.from_problems(
                "the job change",
                [
                    Problem(
                        "(root)",
                        'only {"priority_level": "critical|high|medium|low"} can be changed',
                    )
                ],
            )
        level = _enum(str(payload["priority_level"]), PriorityLevel, "priority_level")
        if self.d.book.live(job_id) is None:
            await self._known_job(job_id)
        live = await self.d.runner.set_level(job_id, level)
        return live.summary()

    async def _known_job(self, job_id: uuid.UUID) -> None:
        store = self.d.require_store()
        job = await store.read(load_job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")

    # -- rules ---------------------------------------------------------------------

    async def list_rules(self) -> dict[str, Any]:
        return {
            "rules": [r.model_dump(mode="json") for r in self.d.rules.rules],
            "fingerprint": self.d.rules.current.fingerprint,
        }

    async def get_rule(self, ref: str) -> dict[str, Any]:
        return self.d.rules.find(ref).model_dump(mode="json")

    async def create_rule(self, payload: Any) -> dict[str, Any]:
        return await self.d.rules.create(payload)

    async def update_rule(self, ref: str, payload: Any) -> dict[str, Any]:
        return await self.d.rules.update(ref, payload)

    async def delete_rule(self, ref: str) -> dict[str, Any]:
        return await self.d.rules.delete(ref)

    async def rule_history(self, ref: str) -> dict[str, Any]:
        return {"history": await self.d.rules.history(ref)}

    async def test_rules(self, payload: Any) -> dict[str, Any]:
        return await self.d.rules.test(payload)

    # -- sources -------------------------------------------------------------------

    def list_sources(self) -> dict[str, Any]:
        return {"sources": [self.d.sources.describe(s) for s in self.d.sources.all()]}

    async def patch_source(self, ref: str, payload: Any) -> dict[str, Any]:
        if (
            not isinstance(payload, Mapping)
            or not set(payload) <= {"is_active", "enabled"}
            or not payload
        ):
            raise InvalidInput.from_problems(
                "the source change",
                [
                    Problem(
                        "(root)",
                        'send {"is_active": true} to enable or {"is_active": false} to disable',
                    )
                ],
            )
        value = payload.get("is_active", payload.get("enabled"))
        if not isinstance(value, bool):
            raise InvalidInput.from_problems(
                "the source change", [Problem("is_active", "must be true or false")]
            )
        source = await self.d.sources.set_enabled(ref, value)
        return self.d.sources.describe(source)

    # -- snapshots -----------------------------------------------------------------

    async def list_snapshots(
        self, *, symbol: str | None, date: str | None, limit: int
    ) -> dict[str, Any]:
        sym = normalize_symbol(symbol) if symbol else None
        found = await self.d.require_store().read(
            lambda cur: snapshots.list_snapshots(cur, sym, date, limit)
        )
        return {"snapshots": found}

    async def latest_snapshot(self, symbol: str, expiry_filter: str | None) -> dict[str, Any]:
        sym = normalize_symbol(symbol)
        expiry = _enum(expiry_filter, ExpiryFilter, "expiry_filter")
        found = await self.d.require_store().read(
            lambda cur: snapshots.latest_snapshot(cur, sym, expiry)
        )
        if found is None:
            raise NotFound(f"no snapshot of {sym} yet")
        return found

    async def get_snapshot(self, snapshot_id: uuid.UUID) -> dict[str, Any]:
        found = await self.d.require_store().read(
            lambda cur: snapshots.load_snapshot(cur, snapshot_id)
        )
        if found is None:
            raise NotFound(f"no snapshot {snapshot_id}")
        return found

    async def gex_history(self, symbol: str, limit: int) -> dict[str, Any]:
        sym = normalize_symbol(symbol)
        points = await self.d.require_store().read(
            lambda cur: snapshots.gex_history(cur, sym, limit)
        )
        return {
            "symbol": sym,
            "points": [{"snapshot_at": at, "total_gex": total} for at, total in points],
        }

    # -- SQL -----------------------------------------------------------------------

    async def query(self, sql: str, *, limit: int) -> dict[str, Any]:
        """Read-only SQL: one SELECT; the database cannot touch files outside the data directory."""
        found = await self.d.require_store().read(
            run_read_only, sql, limit=limit, timeout_s=QUERY_TIMEOUT_S
        )
        return {
            "columns": found.columns,
            "rows": [[_json_value(v) for v in r] for r in found.rows],
            "row_count": len(found.rows),
            "truncated": found.truncated,
        }

    # -- ingest and admin --------------------------------------------------------

    async def ingest_upload(
        self, data: bytes, *, filename: str, symbol: str | None, level: str | None
    ) -> dict[str, Any]:
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
        lv = _enum(level, PriorityLevel, "level")
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
        return accepted[0].as_dict() | {"format": fmt.name, "stored_as": target.name}

    async def archive(self) -> dict[str, Any]:
        store = self.d.require_store()
        report = await asyncio.wrap_future(store.archive(now=self.d.now()))
        return report.as_dict()

    def metrics_text(self) -> str:
        return render_metrics(self.d)

    # -- the event stream's first message ------------------------------------------

    def state_snapshot(self) -> dict[str, Any]:
        """Everything a dashboard needs to draw itself, built without awaiting (so no event slips in)."""
        d = self.d
        return {
            "type": "snapshot",
            "seq": d.bus.last_seq,
            "at": d.now().isoformat(),
            "state": {
                "health": self.health(),
                "queues": self.queues(),
                "jobs": [live.summary() for live in d.live_jobs(limit=2000)],
                "recent": [live.summary() for live in d.book.recent()[:500]],
                "sources": self.list_sources()["sources"],
                "rules": [r.model_dump(mode="json") for r in d.rules.rules],
                "snapshots": [_jsonable(s) for s in d.latest_snapshots.values()],
            },
        }
