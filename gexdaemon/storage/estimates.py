"""Processing-time estimates (per source and data type) in the store, kept across restarts.

The moving averages themselves are `gexdaemon.core.estimates`; the daemon loads
them at start (`load_estimates` through `Store.read`) and commits the changed
ones with `PutEstimates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gexdaemon.core.estimates import EstimateState
from gexdaemon.core.timeutil import as_utc
from gexdaemon.storage.store import Connection, WritePlan, fetch_dicts

_UPSERT_ESTIMATE_SQL = (
    "INSERT INTO processing_estimates (source_key, data_type, ema_s, samples, updated_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_key, data_type) DO UPDATE SET "
    "ema_s = EXCLUDED.ema_s, samples = EXCLUDED.samples, updated_at = EXCLUDED.updated_at"
)


def load_estimates(cur: Connection) -> list[EstimateState]:
    found = fetch_dicts(
        cur,
        "SELECT source_key, data_type, ema_s, samples, updated_at FROM processing_estimates "
        "ORDER BY source_key, data_type",
    )
    return [
        EstimateState(
            source_key=row["source_key"],
            data_type=row["data_type"],
            ema_s=float(row["ema_s"]),
            samples=int(row["samples"]),
            updated_at=as_utc(row["updated_at"]),
        )
        for row in found
    ]


@dataclass(frozen=True, slots=True)
class PutEstimates:
    """A store change: insert or replace these averages.

    A state without `updated_at` is stamped `now` (default: the time of the change).
    """

    states: Sequence[EstimateState]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add_to(self, plan: WritePlan) -> None:
        for s in self.states:
            plan.statement(
                _UPSERT_ESTIMATE_SQL,
                (s.source_key, s.data_type, s.ema_s, s.samples, s.updated_at or self.now),
            )
