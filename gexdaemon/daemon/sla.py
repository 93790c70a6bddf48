"""SLA tracking: a timer per deadline, so a breach is announced the moment it happens.

A job that is still unfinished when its deadline passes is breached right then,
not when it eventually ends; the daemon persists `sla_status = breached` and
publishes `sla.breached`. Finished jobs feed rolling windows per level (met or
breached, throughput) for `/v1/queues`, `/metrics` and the dashboard, and the
at-risk flags are scored against the outcome so their precision can be read.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gexdaemon.core.models import PriorityLevel, SlaStatus
from gexdaemon.protocol.shapes import LevelSla
from gexdaemon.storage.jobs import SlaRecord

WINDOW_S = 3600.0
"""The window of the rolling SLA figures (`*_last_hour`, `sla_met_ratio`)."""


@dataclass
class LevelLedger:
    """What happened to one level's finished jobs in the last hour."""

    finished: deque[tuple[float, bool]] = field(default_factory=deque)  # (mono, met)
    breaches: deque[float] = field(default_factory=deque)
    met_total: int = 0
    breached_total: int = 0
    flagged_total: int = 0
    flagged_and_missed: int = 0

    def trim(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self.finished and self.finished[0][0] < horizon:
            self.finished.popleft()
        while self.breaches and self.breaches[0] < horizon:
            self.breaches.popleft()


class SlaWatch:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        mono: Callable[[], float],
    ) -> None:
        self._loop = loop
        self._mono = mono
        # Who hears a deadline pass (the runner); set when the daemon is wired.
        self.on_deadline: Callable[[uuid.UUID], None] = lambda _job_id: None
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self.ledgers: dict[PriorityLevel, LevelLedger] = {lv: LevelLedger() for lv in PriorityLevel}

    def load(self, record: SlaRecord, to_mono: Callable[[datetime], float | None]) -> None:
        """Start the figures from the store's record: the last hour and the totals since the
        first job, so a restart does not reset what the desk reads."""
        for level, (met, breached, flagged, flagged_missed) in record.totals.items():
            ledger = self.ledgers[level]
            ledger.met_total, ledger.breached_total = met, breached
            ledger.flagged_total, ledger.flagged_and_missed = flagged, flagged_missed
        for level, completed_at, status in record.finished:
            at = to_mono(completed_at)
            if at is not None:
                ok = status is not SlaStatus.BREACHED
                self.ledgers[level].finished.append((at, ok))
        for level, deadline in record.breaches:
            at = to_mono(deadline)
            if at is not None:
                self.ledgers[level].breaches.append(at)

    def watch(self, job_id: uuid.UUID, deadline_mono: float) -> None:
        """Call `on_deadline(job_id)` when the deadline passes (at once if it already has)."""
        self.unwatch(job_id)
        delay = max(0.0, deadline_mono - self._mono())
        # A fresh context: the timer must not carry the request_id of the API call that set it.
        self._timers[job_id] = self._loop.call_at(
            self._loop.time() + delay, self._fire, job_id, context=contextvars.Context()
        )

    def unwatch(self, job_id: uuid.UUID) -> None:
        timer = self._timers.pop(job_id, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, job_id: uuid.UUID) -> None:
        self._timers.pop(job_id, None)
        self.on_deadline(job_id)

    def record_breach(self, level: PriorityLevel) -> None:
        ledger = self.ledgers[level]
        ledger.breaches.append(self._mono())
        ledger.trim(self._mono())

    def record_finish(self, level: PriorityLevel, *, met: bool | None, flagged: bool) -> None:
        """A job of `level` finished: met is None for LOW (no deadline)."""
        now = self._mono()
        ledger = self.ledgers[level]
        ledger.finished.append((now, bool(met) if met is not None else True))
        if met is True:
            ledger.met_total += 1
        elif met is False:
            ledger.breached_total += 1
        if flagged and met is not None:
            ledger.flagged_total += 1
            if not met:
                ledger.flagged_and_missed += 1
        ledger.trim(now)

    def summary(self, level: PriorityLevel) -> LevelSla:
        now = self._mono()
        ledger = self.ledgers[level]
        ledger.trim(now)
        count = len(ledger.finished)
        met = sum(1 for _, ok in ledger.finished if ok)
        recent = [t for t, _ in ledger.finished if t >= now - 300.0]
        return LevelSla(
            level=level,
            sla_met_ratio=(met / count) if count and level is not PriorityLevel.LOW else None,
            finished_last_hour=count,
            breaches_last_hour=len(ledger.breaches),
            throughput_per_min=len(recent) / 5.0,
            met_total=ledger.met_total,
            breached_total=ledger.breached_total,
            at_risk_precision=(ledger.flagged_and_missed / ledger.flagged_total)
            if ledger.flagged_total
            else None,
        )

    @staticmethod
    def empty(level: PriorityLevel) -> LevelSla:
        """The figures of a level before anything finished (or before the watch exists)."""
        return LevelSla(
            level=level,
            sla_met_ratio=None,
            finished_last_hour=0,
            breaches_last_hour=0,
            throughput_per_min=0.0,
            met_total=0,
            breached_total=0,
            at_risk_precision=None,
        )

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
