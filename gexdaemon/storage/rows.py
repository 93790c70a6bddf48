"""Mapping between the domain models and table rows (Arrow batches in, tuples out).

Each table has one `TableSpec`: its columns with Arrow and SQL types and its
conflict key. Writes build one Arrow table per batch and run a single
`INSERT ... SELECT ... ON CONFLICT` per table, which is what makes group commit
cheap (DuckDB pays per statement and per transaction, not per row).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import pyarrow as pa

from gexdaemon.core.models import (
    DataSource,
    DomainContext,
    JobEvent,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
)

# Column types by name: pyarrow is loaded when a batch is first written as Arrow, not when
# the daemon starts (an idle daemon never needs it; it is ~45 MiB of the process).
TS = "timestamp_us_utc"
DUR = "duration_us"


def arrow_type(code: str) -> pa.DataType:
    """The Arrow type of a column type name."""
    import pyarrow  # noqa: PLC0415 - see above

    found = _ARROW_TYPES.get(code)
    if found is None:
        makers = {
            "string": pyarrow.string,
            "float64": pyarrow.float64,
            "int64": pyarrow.int64,
            "int32": pyarrow.int32,
            "bool": pyarrow.bool_,
            "date32": pyarrow.date32,
            "time64_us": lambda: pyarrow.time64("us"),
            "list_float64": lambda: pyarrow.list_(pyarrow.float64()),
            TS: lambda: pyarrow.timestamp("us", tz="UTC"),
            DUR: lambda: pyarrow.duration("us"),
        }
        found = _ARROW_TYPES[code] = makers[code]()
    return found


_ARROW_TYPES: dict[str, pa.DataType] = {}

# Reading back trusts the database's CHECK constraints but still validates types; the
# environment-dependent rules (symbol list, "not in the future") held when the row was
# written and must not make history unreadable later.
READ_CONTEXT = DomainContext(
    now=datetime(9999, 12, 31, tzinfo=UTC), allow_any_symbol=True, allow_file_urls=True
)


@dataclass(frozen=True)
class Column:
    name: str
    arrow: str  # a type name (see arrow_type)
    sql_cast: str = ""  # e.g. "UUID": the Arrow string is cast on the way in

    def select_expr(self) -> str:
        return f"CAST({self.name} AS {self.sql_cast})" if self.sql_cast else self.name


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # Columns never changed by an upsert (keys, unique columns, write-once facts).
    immutable: tuple[str, ...] = ()
    on_conflict: str = "update"  # "update" | "nothing" | "none" (plain append)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow  # noqa: PLC0415 - loaded with the first Arrow batch

        return pyarrow.schema([pyarrow.field(c.name, arrow_type(c.arrow)) for c in self.columns])

    def to_arrow(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows as an Arrow table with this table's types; `columns` picks a subset."""
        # Column by column is about twice as fast as Table.from_pylist for these shapes;
        # StrEnum members go in as they are (they are str).
        import pyarrow  # noqa: PLC0415 - loaded with the first Arrow batch

        if columns is None:
            return pyarrow.Table.from_arrays(
                [
                    pyarrow.array([r[c.name] for r in rows], type=arrow_type(c.arrow))
                    for c in self.columns
                ],
                schema=self._schema,
            )
        picked = [self._by_name[name] for name in columns]
        return pyarrow.Table.from_arrays(
            [pyarrow.array([r[c.name] for r in rows], type=arrow_type(c.arrow)) for c in picked],
            schema=pyarrow.schema([pyarrow.field(c.name, arrow_type(c.arrow)) for c in picked]),
        )

    @property
    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @property
    def _schema(self) -> pa.Schema:
        cached: pa.Schema | None = self.__dict__.get("_schema_cache")
        if cached is None:
            cached = self.arrow_schema()
            object.__setattr__(self, "_schema_cache", cached)
        return cached

    def row(self, model: Any) -> dict[str, Any]:
        """A domain model as this table's row: each column is the attribute of the same name.

        UUID columns hold the id as text and JSON columns the value encoded; everything
        else goes in as the model holds it (StrEnum members are str). One definition of
        the columns, so a field and its column cannot drift apart.
        """
        fields, derived, encoded = self._row_plan(type(model))
        values = model.__dict__
        row = {name: values[name] for name in fields}
        for name in derived:  # computed on the model (a property), not stored in it
            row[name] = getattr(model, name)
        for name, encode in encoded:
            row[name] = encode(getattr(model, name))
        return row

    def _row_plan(
        self, model_type: type
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, Any], ...]]:
        plans: dict[type, Any] = self.__dict__.setdefault("_row_plans", {})
        plan = plans.get(model_type)
        if plan is None:
            encoders = {"UUID": _s, "JSON": _json}
            stored = getattr(model_type, "model_fields", {})
            plain = [c.name for c in self.columns if c.sql_cast not in encoders]
            plan = plans[model_type] = (
                tuple(n for n in plain if n in stored),
                tuple(n for n in plain if n not in stored),
                tuple(
                    (c.name, encoders[c.sql_cast]) for c in self.columns if c.sql_cast in encoders
                ),
            )
        return plan

    def insert_sql(self, relation: str, *, returning: str = "") -> str:
        cols = ", ".join(self.column_names)
        exprs = ", ".join(c.select_expr() for c in self.columns)
        sql = f"INSERT INTO {self.name} ({cols}) SELECT {exprs} FROM {relation}"
        if self.on_conflict == "update":
            keep = set(self.key) | set(self.immutable)
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.column_names if c not in keep)
            sql += f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {sets}"
        elif self.on_conflict == "nothing":
            sql += f" ON CONFLICT ({', '.join(self.key)}) DO NOTHING"
        if returning:
            sql += f" RETURNING {returning}"
        return sql

    def insert_missing_sql(self, relation: str) -> str:
        """INSERT of the rows whose key is not taken yet (replaying what may be there)."""
        cols = ", ".join(self.column_names)
        exprs = ", ".join(c.select_expr() for c in self.columns)
        key = ", ".join(self.key)
        return (
            f"INSERT INTO {self.name} ({cols}) SELECT {exprs} FROM {relation} "
            f"ON CONFLICT ({key}) DO NOTHING"
        )

    def plain_insert_sql(self, relation: str, *, returning: str = "") -> str:
        """INSERT without a conflict clause: a duplicate key is an error, as it should be."""
        cols = ", ".join(self.column_names)
        exprs = ", ".join(c.select_expr() for c in self.columns)
        sql = f"INSERT INTO {self.name} ({cols}) SELECT {exprs} FROM {relation}"
        return f"{sql} RETURNING {returning}" if returning else sql

    def update_sql(self, relation: str, columns: Sequence[str] | None = None) -> str:
        """UPDATE existing rows from `relation` (half the cost of an upsert in DuckDB 2.0).

        `relation` is aliased `_v` (an Arrow table or a VALUES list); `columns`
        limits the SET list to what changed: less to convert, scan and log.
        """
        keep = set(self.key) | set(self.immutable)
        names = self.column_names if columns is None else list(columns)
        by_name = self._by_name
        sets = ", ".join(f"{c} = _v.{c}" for c in names if c not in keep)
        match = " AND ".join(
            f"{self.name}.{k} = {by_name[k].select_expr().replace(k, '_v.' + k, 1)}"
            for k in self.key
        )
        return f"UPDATE {self.name} SET {sets} FROM {relation} WHERE {match}"

    def select_sql(self) -> str:
        return f"SELECT {', '.join(self.column_names)} FROM {self.name}"


def _s(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# ---------------------------------------------------------------------------

REQUESTS = TableSpec(
    "priority_requests",
    key=("request_id",),
    columns=(
        Column("request_id", "string", "UUID"),
        Column("source_url", "string"),
        Column("data_type", "string"),
        Column("market_symbol", "string"),
        Column("requested_at", TS),
        Column("priority_score", "float64"),
        Column("priority_level", "string"),
        Column("estimated_processing_time", DUR),
        Column("metadata", "string", "JSON"),
        Column("source_id", "string", "UUID"),
        Column("deadline", TS),
        Column("origin", "string"),
        Column("explanation", "string", "JSON"),
    ),
    on_conflict="none",  # requests are written once (see schema.py); a repeated id is an error
)


request_row = REQUESTS.row


def request_from_row(row: Mapping[str, Any]) -> PriorityRequest:
    data = dict(row)
    data["metadata"] = _loads(data.get("metadata"))
    data["explanation"] = _loads(data.get("explanation"))
    return PriorityRequest.parse(data, context=READ_CONTEXT)


JOBS = TableSpec(
    "processing_jobs",
    key=("job_id",),
    columns=(
        Column("job_id", "string", "UUID"),
        Column("request_id", "string", "UUID"),
        Column("status", "string"),
        Column("priority_level", "string"),
        Column("requested_at", TS),
        Column("queued_at", TS),
        Column("started_at", TS),
        Column("completed_at", TS),
        Column("records_processed", "int64"),
        Column("data_size_bytes", "int64"),
        Column("error_message", "string"),
        Column("retry_count", "int32"),
        Column("deadline", TS),
        Column("sla_status", "string"),
        Column("at_risk", "bool"),
        Column("lease_owner", "string"),
        Column("lease_expires_at", TS),
        Column("dispatch_phase", "string"),
        Column("next_attempt_at", TS),
        Column("version", "int32"),
        Column("updated_at", TS),
    ),
    immutable=("request_id", "requested_at"),
)


job_row = JOBS.row


def job_delta(previous: ProcessingJob, job: ProcessingJob) -> dict[str, Any]:
    """The key and the columns that differ between two states of one job.

    Every column but the two ids holds the model's value as it is, so the delta
    compares the models' fields directly (a transition is on the hot path).
    """
    before, after = previous.__dict__, job.__dict__
    delta: dict[str, Any] = {"job_id": str(job.job_id)}
    for name in _JOB_VALUE_COLUMNS:
        value = after[name]
        if value != before[name]:
            delta[name] = value
    return delta


_JOB_VALUE_COLUMNS = tuple(c for c in JOBS.column_names if c not in ("job_id", "request_id"))


def job_from_row(row: Mapping[str, Any]) -> ProcessingJob:
    data = {k: v for k, v in row.items() if k in ProcessingJob.model_fields}
    return ProcessingJob.parse(data, context=READ_CONTEXT)


EVENTS = TableSpec(
    "job_events",
    key=(),
    columns=(
        Column("job_id", "string", "UUID"),
        Column("seq", "int32"),
        Column("occurred_at", TS),
        Column("from_status", "string"),
        Column("to_status", "string"),
        Column("reason", "string"),
    ),
    on_conflict="none",
)


event_row = EVENTS.row


def event_from_row(row: Mapping[str, Any]) -> JobEvent:
    return JobEvent.parse(dict(row), context=READ_CONTEXT)


SOURCES = TableSpec(
    "data_sources",
    key=("source_id",),
    columns=(
        Column("source_id", "string", "UUID"),
        Column("base_url", "string"),
        Column("name", "string"),
        Column("last_successful_fetch", TS),
        Column("total_requests", "int64"),
        Column("successful_requests", "int64"),
        Column("average_response_time", DUR),
        Column("is_active", "bool"),
        Column("consecutive_failures", "int32"),
        Column("circuit_state", "string"),
        Column("circuit_opened_at", TS),
        Column("manually_disabled", "bool"),
        Column("created_at", TS),
        Column("updated_at", TS),
    ),
    immutable=("base_url", "created_at"),
)


source_row = SOURCES.row


def source_from_row(row: Mapping[str, Any]) -> DataSource:
    data = {k: v for k, v in row.items() if k in DataSource.model_fields}
    return DataSource.parse(data, context=READ_CONTEXT)


RULES = TableSpec(
    "priority_rules",
    key=("rule_id",),
    columns=(
        Column("rule_id", "string", "UUID"),
        Column("name", "string"),
        Column("description", "string"),
        Column("condition", "string"),
        Column("priority_score", "float64"),
        Column("is_active", "bool"),
        Column("created_at", TS),
        Column("updated_at", TS),
        Column("version", "int32"),
    ),
    immutable=("created_at",),
)


rule_row = RULES.row


def rule_from_row(row: Mapping[str, Any]) -> PriorityRule:
    return PriorityRule.parse(dict(row), context=READ_CONTEXT)


def rows_as_dicts(columns: Iterable[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _loads(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        return msgspec.json.decode(value)
    return value


IDEMPOTENCY = TableSpec(
    "idempotency_keys",
    key=("idempotency_key",),
    columns=(
        Column("idempotency_key", "string"),
        Column("fingerprint", "string"),
        Column("request_id", "string", "UUID"),
        Column("job_id", "string", "UUID"),
        Column("created_at", TS),
    ),
    # A key past its 24 hours may be taken again: the new use replaces the old row.
    on_conflict="update",
)


SNAPSHOTS = TableSpec(
    "gex_snapshots",
    key=("snapshot_id",),
    columns=(
        Column("snapshot_id", "string", "UUID"),
        Column("job_id", "string", "UUID"),
        Column("market_symbol", "string"),
        Column("snapshot_date", "date32"),
        Column("snapshot_time", "time64_us"),
        Column("total_open_interest", "int64"),
        Column("total_volume", "int64"),
        Column("processed_at", TS),
        Column("data_quality_score", "float64"),
        Column("snapshot_at", TS),
        Column("spot_price", "float64"),
        Column("gex_unit", "string"),
        Column("sign_model", "string"),
        Column("gamma_source", "string"),
        Column("expiry_filter", "string"),
        Column("total_gex", "float64"),
        Column("zero_gamma", "float64"),
        Column("zero_gamma_crossings", "list_float64"),
        Column("call_wall", "float64"),
        Column("put_wall", "float64"),
        Column("abs_gamma_strike", "float64"),
        Column("lake_path", "string"),
        Column("source_format", "string"),
        Column("rows_read", "int64"),
        Column("excluded_rows", "string", "JSON"),
    ),
    on_conflict="nothing",  # processing a job twice never creates a second snapshot
)

STRIKES = TableSpec(
    "gex_strikes",
    key=(),
    columns=(
        Column("snapshot_id", "string", "UUID"),
        Column("snapshot_date", "date32"),
        Column("strike_price", "float64"),
        Column("call_open_interest", "int64"),
        Column("put_open_interest", "int64"),
        Column("call_volume", "int64"),
        Column("put_volume", "int64"),
        Column("call_bid", "float64"),
        Column("call_ask", "float64"),
        Column("put_bid", "float64"),
        Column("put_ask", "float64"),
        Column("gamma", "float64"),
        Column("delta", "float64"),
        Column("theta", "float64"),
        Column("vega", "float64"),
        Column("call_gex", "float64"),
        Column("put_gex", "float64"),
        Column("net_gex", "float64"),
    ),
    on_conflict="none",
)
