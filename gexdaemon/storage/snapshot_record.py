"""What storage needs to persist one GEX snapshot; the snapshot pipeline builds it.

Apart from `snapshots.py` (which opens DuckDB) so that the compute processes that
build a record never import the database.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gexdaemon.storage import lake as lakefs
from gexdaemon.storage import rows

if TYPE_CHECKING:
    import pyarrow as pa

# The lake file carries the snapshot's gex_snapshots row and its gex_strikes rows in its
# Parquet metadata (each an Arrow IPC stream, base64), so the file alone can put the
# snapshot back into any node's DuckDB (`gexdaemon lake rebuild`, a cluster node that
# did not compute it). Readers of the contract rows never see them.
RECORD_KEY = b"gexd.snapshot"
STRIKES_KEY = b"gexd.strikes"


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

    def lake_file(self) -> pa.Table:
        """The lake table as it is written: the contract rows, the record in the metadata."""
        row = {**self.row, "lake_path": None}  # where it lands is the reader's to say
        metadata = dict(self.lake.schema.metadata or {})
        metadata[RECORD_KEY] = ipc_bytes(rows.SNAPSHOTS.to_arrow([row]))
        metadata[STRIKES_KEY] = ipc_bytes(self.strikes)
        return self.lake.replace_schema_metadata(metadata)


def ipc_bytes(table: pa.Table) -> bytes:
    """A table as base64 text of an Arrow IPC stream (Parquet metadata holds text)."""
    import pyarrow  # noqa: PLC0415 - the record already holds Arrow tables

    sink = pyarrow.BufferOutputStream()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes())


def ipc_table(text: bytes) -> pa.Table:
    import pyarrow  # noqa: PLC0415

    return pyarrow.ipc.open_stream(base64.b64decode(text, validate=True)).read_all()
