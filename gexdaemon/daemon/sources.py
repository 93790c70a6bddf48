"""Data sources as the daemon tracks them: reliability, response time, circuit breaker.

One `DataSource` per base URL (drop-folder and uploaded files share
`file://localhost`). Every fetch updates its counts and its response-time EMA;
faults that say the source is unwell feed its circuit breaker
(`gexdaemon.core.breaker`), whose state the scheduler respects: an open source's
jobs wait, a half-open one gets one probe. A trader can disable or enable a
source by id, base URL or host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog

from gexdaemon import readout
from gexdaemon.core import breaker
from gexdaemon.core.breaker import BreakerChange, BreakerUpdate
from gexdaemon.core.errors import NotFound
from gexdaemon.core.models import CircuitState, DataSource
from gexdaemon.core.scheduler import Scheduler
from gexdaemon.core.settings import SourcesSettings
from gexdaemon.core.vocab import EventType, SourceAccess
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.daemon.writes import BackgroundWrites
from gexdaemon.storage.sources import load_sources
from gexdaemon.storage.store import PutSource, Store

log = structlog.get_logger("gexdaemon.sources")


def new_source(base_url: str, now: datetime) -> DataSource:
    name = (
        "local files" if base_url.startswith("file://") else (urlsplit(base_url).netloc or base_url)
    )
    return DataSource.parse(
        {"base_url": base_url, "name": name, "created_at": now, "updated_at": now}
    )


@dataclass(kw_only=True, eq=False)
class SourceBook:
    settings: SourcesSettings
    scheduler: Scheduler
    store: Store
    writes: BackgroundWrites
    bus: EventBus
    clock: Clock

    def __post_init__(self) -> None:
        self._by_url: dict[str, DataSource] = {}
        self._probe_timers: dict[str, asyncio.TimerHandle] = {}
        # The runner's wake-up: a breaker change may let work through again.
        self.on_change: Callable[[], None] = lambda: None
        # A change of what a source may do, made here (cluster mode shares it).
        self.on_control: Callable[[DataSource], None] = lambda source: None

    async def load(self) -> None:
        for source in await self.store.read(load_sources):
            self._by_url[source.base_url] = source
            self._sync_scheduler(source)
            self._arm_probe(source)

    def all(self) -> list[DataSource]:
        return sorted(self._by_url.values(), key=lambda s: s.base_url)

    def get(self, base_url: str) -> DataSource | None:
        return self._by_url.get(base_url)

    def reliability(self) -> dict[str, float]:
        """Each source's reliability score by base URL (what scoring reads)."""
        return {s.base_url: s.reliability_score for s in self._by_url.values()}

    def ensure(
        self, base_url: str, now: datetime, *, share: bool = True
    ) -> tuple[DataSource, bool]:
        """The source of a base URL; a new one is created in memory (the caller persists it)
        and, in cluster mode, made known to the other nodes (`share`)."""
        found = self._by_url.get(base_url)
        if found is not None:
            return found, False
        source = new_source(base_url, now)
        self._by_url[base_url] = source
        self._sync_scheduler(source)
        self.bus.publish(EventType.SOURCE_CREATED, lambda: present.source_notice(source))
        if share:
            self.on_control(source)
        return source, True

    def find(self, ref: str) -> DataSource:
        text = ref.strip().lower().rstrip("/")
        for source in self._by_url.values():
            if text in (
                str(source.source_id),
                source.base_url,
                urlsplit(source.base_url).netloc,
                urlsplit(source.base_url).hostname or "",
            ):
                return source
        raise NotFound(f"no source {ref!r}; `gexdaemon sources` lists them (id, base URL or host)")

    def blocked_reason(self, base_url: str) -> str | None:
        """Why the source's jobs cannot run now, in words; None when they can."""
        source = self._by_url.get(base_url)
        if source is None:
            return None
        if source.manually_disabled:
            return f"source {source.name} is disabled"
        if source.circuit_state is CircuitState.CLOSED:
            return None
        since = readout.clock_time(source.circuit_opened_at)
        if source.circuit_state is CircuitState.HALF_OPEN:
            return f"source {source.name} circuit open since {since}, one probe fetch under way"
        due = breaker.probe_due_at(source, self.settings.breaker_cooldown_s)
        return f"source {source.name} circuit open since {since}, next try at {readout.clock_time(due)}"

    def record(
        self, base_url: str, *, ok: bool, elapsed_s: float, breaker_fault: bool = False
    ) -> None:
        """Count one fetch: reliability and response time always, the breaker only for faults."""
        now = self.clock.now()
        source = self._by_url.get(base_url)
        if source is None:
            source, _ = self.ensure(base_url, now)
        s = self.settings
        counted = source.record_fetch(
            success=ok,
            response_time=timedelta(seconds=max(0.0, elapsed_s)),
            at=now,
            alpha=s.ema_alpha,
        )
        if ok:
            update = breaker.record_success(counted, now)
        elif breaker_fault:
            update = breaker.record_failure(
                counted, now, failures_to_open=s.breaker_failures, cooldown_s=s.breaker_cooldown_s
            )
        else:
            update = BreakerUpdate(counted, BreakerChange.NONE)
        self._apply(update, persist_now=False)

    def job_ended(self, base_url: str) -> None:
        """A job of the source ended. If its breaker is still half-open, that job was the
        probe and gave no verdict (a 404, a web page, a cancel, a worker lost): let another
        probe go, or the source's jobs would wait for ever."""
        source = self._by_url.get(base_url)
        if source is None or breaker.access(source) is not SourceAccess.PROBE:
            return
        # The scheduler lets a new probe through only after the source was blocked in between.
        self.scheduler.set_source_access(base_url, SourceAccess.BLOCKED)
        self._sync_scheduler(source)

    async def set_enabled(self, ref: str, enabled: bool) -> DataSource:
        source = self.find(ref)
        update = breaker.set_disabled(source, not enabled, self.clock.now())
        await self.store.commit([PutSource(update.source)])
        self._apply(update, persist_now=True)
        return update.source

    def adopt(self, state: dict[str, Any], by: str) -> DataSource | None:
        """What another node says a source may do now (cluster mode); the source if it changed."""
        now = self.clock.now()
        base_url = str(state["base_url"])
        known = self._by_url.get(base_url)
        source = known or self.ensure(base_url, now, share=False)[0]
        update = breaker.adopt(source, state, now, by)
        if not update.changed:
            if known is None:  # new here: keep it, as a source this node first met would be
                self.writes.soon(PutSource(source))
            return source if known is None else None
        self._apply(update, persist_now=False, share=False)
        return update.source

    def access_of(self, source: DataSource) -> tuple[SourceAccess, float | None]:
        """May the source's jobs run, and (open breaker) when, on the monotonic clock, it
        lets a probe through."""
        due = breaker.probe_due_at(source, self.settings.breaker_cooldown_s)
        until = None if due is None or source.manually_disabled else self.clock.to_mono(due)
        return breaker.access(source), until

    def _apply(self, update: BreakerUpdate, *, persist_now: bool, share: bool = True) -> None:
        source = update.source
        self._by_url[source.base_url] = source
        if not persist_now:
            self.writes.soon(PutSource(source))
        self._sync_scheduler(source)
        self._arm_probe(source)
        if update.changed:
            log.warning(
                "source circuit",
                source=source.base_url,
                change=update.change.value,
                message=update.message,
            )
            self.bus.publish(
                EventType(f"source.{update.change.value}"),
                present.source_notice(source, update.message),
            )
            if share:
                self.on_control(source)
            self.on_change()
        self.bus.publish(EventType.SOURCE_UPDATED, lambda: present.source_notice(source))

    def _sync_scheduler(self, source: DataSource) -> None:
        """The scheduler's view of the source: may it run, and when an open breaker retries."""
        self.sync_into(self.scheduler, [source])

    def sync_into(self, scheduler: Scheduler, sources: Iterable[DataSource] | None = None) -> None:
        """Tell `scheduler` what each source (all, unless named) may do now (cluster mode:
        the leader's scheduler follows the same book)."""
        for source in self._by_url.values() if sources is None else sources:
            access, until = self.access_of(source)
            scheduler.set_source_access(source.base_url, access, until=until)

    def _arm_probe(self, source: DataSource) -> None:
        """While a breaker is open, wake when its cool-down ends to let one probe through."""
        timer = self._probe_timers.pop(source.base_url, None)
        if timer is not None:
            timer.cancel()
        due = breaker.probe_due_at(source, self.settings.breaker_cooldown_s)
        if due is None:
            return
        delay = max(0.0, (due - self.clock.now()).total_seconds())
        loop = asyncio.get_running_loop()
        self._probe_timers[source.base_url] = loop.call_later(delay, self._probe, source.base_url)

    def _probe(self, base_url: str) -> None:
        self._probe_timers.pop(base_url, None)
        source = self._by_url.get(base_url)
        if source is None:
            return
        update = breaker.poll(source, self.clock.now(), cooldown_s=self.settings.breaker_cooldown_s)
        if update.changed:
            self._apply(update, persist_now=False)

    def cancel_timers(self) -> None:
        for timer in self._probe_timers.values():
            timer.cancel()
        self._probe_timers.clear()
