"""The latest snapshot of each symbol, as the desk defines latest: by the chain's market time."""

from __future__ import annotations

from gexdaemon.daemon import present
from gexdaemon.protocol.shapes import SnapshotSummary
from gexdaemon.storage.snapshots import list_snapshots
from gexdaemon.storage.store import Store


class LatestSnapshots:
    """Per symbol, the snapshot with the latest market time (then the latest processing).

    An old file processed now does not replace a newer snapshot: `gexdaemon gex`,
    GET /v1/snapshots/latest and the dashboard all mean the same "latest".
    """

    def __init__(self) -> None:
        self._by_symbol: dict[str, SnapshotSummary] = {}

    async def load(self, store: Store, limit: int = 200) -> None:
        for row in await store.read(list_snapshots, None, None, limit):
            self.note(present.snapshot_summary(row))

    def note(self, summary: SnapshotSummary) -> None:
        held = self._by_symbol.get(summary.market_symbol)
        if held is None or (summary.snapshot_at, summary.processed_at) >= (
            held.snapshot_at,
            held.processed_at,
        ):
            self._by_symbol[summary.market_symbol] = summary

    def all(self) -> list[SnapshotSummary]:
        return list(self._by_symbol.values())
