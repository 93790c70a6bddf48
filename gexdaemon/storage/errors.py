"""Storage errors a user can meet, each saying what to do."""

from __future__ import annotations

from gexdaemon.core.errors import GexError


class StorageError(GexError):
    code = "storage_error"


class DataDirLocked(StorageError):
    """Another process holds the data directory."""

    code = "data_dir_locked"


class WalReplayFailed(StorageError):
    """DuckDB could not replay its write-ahead log; nothing has been moved or deleted."""

    code = "wal_replay_failed"


class SchemaTooNew(StorageError):
    code = "schema_too_new"


class StoreClosed(StorageError):
    code = "store_closed"
