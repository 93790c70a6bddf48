"""`gexdaemon analyze FILE`: the snapshot pipeline on a local file, nothing stored.

`analyze_file` runs exactly what the daemon runs (`gexdaemon.pipeline.snapshot`);
`snapshot_view` gives the socket API's snapshot shape (surfaces.md "Snapshot
fields"), so `gexdaemon analyze` prints through the same renderer as `gexdaemon gex`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.core.symbols import BUNDLED_OPTIONABLE
from gexdaemon.feeds.naming import symbol_from_name
from gexdaemon.pipeline.snapshot import SnapshotResult, compute_snapshot
from gexdaemon.protocol.shapes import SnapshotView

ANALYZE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://gexdaemon.local/analyze")


def analyze_file(
    path: Path,
    *,
    symbol: str | None,
    settings: GexSettings,
    now: datetime | None = None,
    spot: float | None = None,
    snapshot_at: datetime | None = None,
    optionable: frozenset[str] = BUNDLED_OPTIONABLE,
) -> SnapshotResult:
    """Compute a file's snapshot without a daemon; raises ChainError for a bad file.

    The job id is derived from the file's path, size and modification time, so the
    printed snapshot id is stable for an unchanged file. Any well-formed ticker is
    accepted (a local file needs no optionable-symbol list). Without `symbol`, the
    file's underlying is found as the drop folder finds it: its name, then its content.
    """
    path = Path(path)
    instant = now or datetime.now(UTC)
    try:
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        key = str(path)
    return compute_snapshot(
        path,
        job_id=uuid.uuid5(ANALYZE_NAMESPACE, key),
        symbol_hint=symbol or symbol_from_name(path.name, optionable),
        settings=settings,
        now=instant,
        context=DomainContext(now=instant, allow_any_symbol=True),
        spot_hint=spot,
        snapshot_at_hint=snapshot_at,
    )


def snapshot_view(result: SnapshotResult) -> SnapshotView:
    """The snapshot as the socket API answers it (`gexdaemon gex`), plus what was read."""
    snap = result.snapshot
    data = snap.model_dump(mode="json")
    data.update(
        snapshot_at=snap.snapshot_at.isoformat(),
        lake_path=None,
        source_format=result.format_name,
        rows_read=result.rows_read,
        excluded_rows=dict(result.excluded),
    )
    return msgspec.convert(data, SnapshotView)
