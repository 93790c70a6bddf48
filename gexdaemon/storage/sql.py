"""A trader's own SQL, read-only: `gexdaemon query` and POST /v1/query.

One SELECT (or WITH ... SELECT, DESCRIBE, SHOW), run inside a transaction that
is always rolled back, stopped after a timeout. What it may read is bounded by
the connection itself: files outside the data directory are out of reach (see
`store.connect`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import duckdb

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.storage.store import Connection


@dataclass(frozen=True, slots=True)
class QueryRows:
    """What a read-only query returned: its column names and at most `limit` rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # the query had more rows than the limit


def run_read_only(cur: Connection, sql: str, *, limit: int, timeout_s: float) -> QueryRows:
    """Run one read-only statement; `InvalidInput` (on `sql`) for anything else or any failure."""
    try:
        statements = cur.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInput.from_problems(
            "the query", [Problem("sql", str(exc).splitlines()[0])]
        ) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidInput.from_problems(
            "the query",
            [
                Problem(
                    "sql",
                    "only one read-only SELECT (or WITH ... SELECT, DESCRIBE, SHOW) is allowed",
                )
            ],
        )
    timer = _Interrupter(cur, timeout_s)
    try:
        cur.execute("BEGIN TRANSACTION")
        result = cur.execute(sql)
        columns = [c[0] for c in result.description or ()]
        fetched = result.fetchmany(limit + 1)
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if timer.fired:
            message = f"the query ran longer than {timeout_s:.0f} s and was stopped"
        raise InvalidInput.from_problems("the query", [Problem("sql", message)]) from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):
            cur.execute("ROLLBACK")
    return QueryRows(columns=columns, rows=fetched[:limit], truncated=len(fetched) > limit)


class _Interrupter:
    """Interrupts a DuckDB query that runs too long (a trader's runaway SQL)."""

    def __init__(self, cur: Connection, seconds: float) -> None:
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(cur,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, cur: Connection) -> None:
        self.fired = True
        cur.interrupt()

    def cancel(self) -> None:
        self._timer.cancel()
