"""The daemon's two clocks: wall time (records, deadlines) and monotonic time (the scheduler)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gexdaemon.core.timeutil import utc_now


@dataclass(frozen=True)
class Clock:
    """`now()` stamps records and deadlines; `mono()` times the scheduler, immune to clock steps."""

    now: Callable[[], datetime] = field(default=utc_now)
    mono: Callable[[], float] = field(default=time.monotonic)

    def to_mono(self, instant: datetime | None) -> float | None:
        """An instant on the monotonic clock."""
        if instant is None:
            return None
        return self.mono() + (instant - self.now()).total_seconds()

    def to_wall(self, mono: float) -> datetime:
        """A monotonic instant as wall time."""
        return self.now() + timedelta(seconds=mono - self.mono())
