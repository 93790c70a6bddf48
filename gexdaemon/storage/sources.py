"""Data sources as the store holds them (written with `PutSource`, read back at start)."""

from __future__ import annotations

from gexdaemon.core.models import DataSource
from gexdaemon.storage import rows
from gexdaemon.storage.store import Connection, fetch_dicts


def load_sources(cur: Connection) -> list[DataSource]:
    """Every source the daemon has met, with its counts and circuit state."""
    return [rows.source_from_row(row) for row in fetch_dicts(cur, rows.SOURCES.select_sql())]
