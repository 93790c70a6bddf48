"""Idempotency keys in the store: which request and job a key stood for, and since when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Connection = Any  # duckdb's; the store hands readers a cursor


@dataclass(frozen=True, slots=True)
class KeyUse:
    key: str
    fingerprint: str
    request_id: uuid.UUID
    job_id: uuid.UUID
    created_at: datetime


_COLUMNS = "idempotency_key, fingerprint, request_id, job_id, created_at"


def keys_since(cur: Connection, since: datetime) -> list[KeyUse]:
    """Every key used at or after `since`, oldest first (loaded at start)."""
    found = cur.execute(
        f"SELECT {_COLUMNS} FROM idempotency_keys WHERE created_at >= ? ORDER BY created_at",
        [since],
    ).fetchall()
    return [KeyUse(*row) for row in found]


def key_use(cur: Connection, key: str) -> KeyUse | None:
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM idempotency_keys WHERE idempotency_key = ?", [key]
    ).fetchone()
    return KeyUse(*row) if row else None
