"""`gexdaemon analyze FILE`: the snapshot pipeline on a local file, nothing stored.

`analyze_file` runs exactly what the daemon runs (`gexdaemon.pipeline.snapshot`);
`levels_json` gives the socket API's snapshot shape (surfaces.md "Snapshot
fields"), so `gexdaemon analyze` prints through the same renderer as `gexdaemon gex`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.pipeline.snapshot import SnapshotResult, compute_snapshot

ANALYZE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://gexdaemon.local/analyze")


def analyze_file(
    path: Path,
    *,
    symbol: str | None,
    settings: GexSettings,
    now: datetime | None = None,
    spot: float | None = None,
    snapshot_at: datetime | None = None,
) -> SnapshotResult:
    """Compute a file's snapshot without a daemon; raises ChainError for a bad file.

    The job id is derived from the file's path, size and modification time, so the
    printed snapshot id is stable for an unchanged file. Any well-formed ticker is
    accepted (a local file needs no optionable-symbol list).
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
        symbol_hint=symbol,
        settings=settings,
        now=instant,
        context=DomainContext(now=instant, allow_any_symbol=True),
        spot_hint=spot,
        snapshot_at_hint=snapshot_at,
    )


def levels_json(result: SnapshotResult) -> dict[str, Any]:
    """The socket API's snapshot shape (JSON-ready), key for key and in the same order."""
    snap = result.snapshot
    data = snap.model_dump(mode="json")
    return {
        "snapshot_id": data["snapshot_id"],
        "job_id": data["job_id"],
        "market_symbol": data["market_symbol"],
        "snapshot_date": data["snapshot_date"],
        "snapshot_time": data["snapshot_time"],
        "snapshot_at": snap.snapshot_at.isoformat(),
        "spot_price": data["spot_price"],
        "gex_unit": data["gex_unit"],
        "sign_model": data["sign_model"],
        "gamma_source": data["gamma_source"],
        "expiry_filter": data["expiry_filter"],
        "total_gex": data["total_gex"],
        "zero_gamma": data["zero_gamma"],
        "zero_gamma_crossings": data["zero_gamma_crossings"],
        "call_wall": data["call_wall"],
        "put_wall": data["put_wall"],
        "abs_gamma_strike": data["abs_gamma_strike"],
        "total_open_interest": data["total_open_interest"],
        "total_volume": data["total_volume"],
        "data_quality_score": data["data_quality_score"],
        # isoformat, as the API's reader writes instants (pydantic would write "Z")
        "processed_at": snap.processed_at.isoformat(),
        "lake_path": None,
        "source_format": result.format_name,
        "rows_read": result.rows_read,
        "excluded_rows": dict(result.excluded),
        "strikes": data["strikes"],
    }
