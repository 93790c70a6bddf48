"""Estimated processing time per (source, data type): a moving average of real durations.

The scheduler needs an estimate before a job runs (to judge laxity against the
deadline). Each finished job feeds its duration into an exponential moving
average for its source and data type; until a pair has a sample, the
configured default (`[priority] estimate_default_s`) stands in.

The first sample replaces the default outright rather than being blended with
it: the default is a guess, the sample is a measurement, and blending would
keep the guess in the average for many jobs. After that,
`ema = alpha * sample + (1 - alpha) * ema` (alpha = `[priority] estimate_alpha`).

`source_key` is the source's base URL (`gexdaemon.core.models.base_url_of`).
Pure: persistence is `export_state()` / `take_changed()` out and
`import_state()` in; the storage adapter does the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.models import GEXDataType
from gexdaemon.core.settings import PrioritySettings
from gexdaemon.core.timeutil import as_utc


@dataclass(frozen=True, slots=True)
class EstimateState:
    """The average for one (source_key, data_type), as stored in `processing_estimates`."""

    source_key: str
    data_type: str
    ema_s: float
    samples: int
    updated_at: datetime | None = None  # None: the storage adapter stamps it when saving


class ProcessingEstimates:
    """Moving averages of job durations, keyed by (source_key, data_type)."""

    def __init__(self, *, default_s: float, alpha: float) -> None:
        if not (math.isfinite(default_s) and default_s > 0):
            raise ValueError("default_s must be a positive number of seconds")
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.default_s = float(default_s)
        self.alpha = float(alpha)
        self._states: dict[tuple[str, str], EstimateState] = {}
        self._changed: set[tuple[str, str]] = set()

    @classmethod
    def from_settings(cls, settings: PrioritySettings) -> ProcessingEstimates:
        return cls(default_s=settings.estimate_default_s, alpha=settings.estimate_alpha)

    def __len__(self) -> int:
        return len(self._states)

    def estimate(self, source_key: str, data_type: GEXDataType | str) -> float:
        """Expected seconds for a job of this source and type (the default when cold)."""
        state = self._states.get((source_key, _type(data_type)))
        return self.default_s if state is None else state.ema_s

    def state(self, source_key: str, data_type: GEXDataType | str) -> EstimateState | None:
        return self._states.get((source_key, _type(data_type)))

    def observe(
        self,
        source_key: str,
        data_type: GEXDataType | str,
        seconds: float,
        at: datetime | None = None,
    ) -> EstimateState:
        """Feed one real duration in; returns the updated average (stamped `at`, if given)."""
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
            raise InvalidInput.from_problems(
                "processing duration",
                [
                    Problem(
                        path="seconds",
                        message=f"must be a finite, non-negative number of seconds (got {seconds!r})",
                    )
                ],
            )
        key = (source_key, _type(data_type))
        previous = self._states.get(key)
        if previous is None:
            ema, samples = float(seconds), 1
        else:
            ema = self.alpha * seconds + (1.0 - self.alpha) * previous.ema_s
            samples = previous.samples + 1
        state = EstimateState(key[0], key[1], ema, samples, None if at is None else as_utc(at))
        self._states[key] = state
        self._changed.add(key)
        return state

    def export_state(self) -> list[EstimateState]:
        """Every average, ordered by key (for a full save)."""
        return [self._states[k] for k in sorted(self._states)]

    def take_changed(self) -> list[EstimateState]:
        """The averages changed since the last call (for an incremental save)."""
        changed = [self._states[k] for k in sorted(self._changed)]
        self._changed.clear()
        return changed

    def import_state(self, states: Iterable[EstimateState]) -> None:
        """Load saved averages (replacing any with the same key); they count as saved."""
        for state in states:
            if not (math.isfinite(state.ema_s) and state.ema_s >= 0 and state.samples >= 1):
                raise InvalidInput.from_problems(
                    "saved processing estimate",
                    [
                        Problem(
                            path=f"{state.source_key}/{state.data_type}",
                            message=(
                                f"ema_s {state.ema_s!r} with {state.samples} samples is not a "
                                "valid average; delete the row from processing_estimates"
                            ),
                        )
                    ],
                )
            key = (state.source_key, _type(state.data_type))
            self._states[key] = state
            self._changed.discard(key)


def _type(data_type: GEXDataType | str) -> str:
    return GEXDataType(data_type).value
