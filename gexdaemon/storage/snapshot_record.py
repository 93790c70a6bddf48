"""What storage needs to persist one GEX snapshot; the snapshot pipeline builds it.

Apart from `snapshots.py` (which opens DuckDB) so that the compute processes that
build a record never import the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gexdaemon.storage import lake as lakefs

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A snapshot's row, its strike rows and its lake table, ready to write."""

    row: Mapping[
        str, Any
    ]  # gex_snapshots columns (rows.SNAPSHOTS); lake_path is set when persisted
    strikes: pa.Table  # gex_strikes columns (rows.STRIKES)
    lake: pa.Table  # the Parquet lake file: one row per contract (or per strike)

    @property
    def snapshot_id(self) -> uuid.UUID:
        return uuid.UUID(str(self.row["snapshot_id"]))

    def lake_path(self, lake_dir: Path) -> Path:
        row = self.row
        return lakefs.snapshot_path(
            lake_dir,
            row["market_symbol"],
            row["snapshot_date"],
            row["snapshot_at"],
            self.snapshot_id,
        )
