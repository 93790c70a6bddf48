"""Readers shared by the column-named formats: CSV, Parquet, JSON records and NDJSON to Arrow.

Each returns a `Sheet`: an Arrow table with lower-cased, snake_case column names,
the file's metadata (CSV `# key: value` lines at the top, Parquet schema
metadata, the JSON object's keys around its records, an NDJSON metadata line),
and a way to turn a row index into a place a person can find (`line 17`,
`strikes[3]`). Malformed CSV rows are skipped and counted, with their line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gexdaemon.core.chain import NUMBER_COLUMNS, ChainError
from gexdaemon.core.errors import Problem
from gexdaemon.core.jsontext import JsonTextError, decode_json
from gexdaemon.core.models import GEX_STRIKE_FIELDS
from gexdaemon.feeds.base import decode_text, parse_numbers


@dataclass
class Sheet:
    table: pa.Table
    meta: dict[str, Any]
    locate: Callable[[int], str]
    meta_where: str
    excluded: dict[str, int] = field(default_factory=dict)
    examples: list[Problem] = field(default_factory=list)


def column_key(name: str) -> str:
    """`Open Interest` -> `open_interest`: how column names are compared."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def find_column(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    keys = {column_key(c): c for c in columns}
    for alias in aliases:
        if alias in keys:
            return keys[alias]
    return None


def _rename(table: pa.Table) -> pa.Table:
    names = [column_key(c) or f"column_{i}" for i, c in enumerate(table.column_names)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return table.rename_columns(unique)


def csv_head(text: str) -> tuple[list[str], int]:
    """Leading `#` comment lines and the index of the header line (first other non-blank)."""
    comments: list[str] = []
    for i, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or not stripped.strip(","):
            continue
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        return comments, i
    return comments, -1


def csv_header_columns(text: str) -> tuple[str, ...]:
    _, at = csv_head(text)
    if at < 0:
        return ()
    line = text.splitlines()[at]
    return tuple(column_key(c) for c in line.split(","))


def read_csv(source: str, data: bytes) -> Sheet:
    text = decode_text(source, data)
    comments, header_at = csv_head(text)
    if header_at < 0:
        raise ChainError.at(source, "line 1", "the file has no header row")
    meta = _comment_meta(comments)
    # Hand pyarrow the bytes from the header line on; line numbers are restored below.
    lines = text.splitlines(keepends=True)
    body = "".join(lines[header_at:]).encode()
    table, skipped = _read_csv_body(source, body, header_at)
    nonblank: list[int] | None = None

    def line_of_record(record: int) -> int:
        nonlocal nonblank
        if nonblank is None:
            nonblank = [
                header_at + k + 1 for k, line in enumerate(lines[header_at:]) if line.strip()
            ]
        return nonblank[record - 1] if 0 < record <= len(nonblank) else record + header_at

    total = table.num_rows + len(skipped)
    records = np.arange(2, total + 2, dtype=np.int64)
    if skipped:
        records = records[~np.isin(records, np.array(skipped, dtype=np.int64))]
    table = table.append_column("source_row", pa.array(records))
    examples = [
        Problem(
            path=f"{source}: line {line_of_record(r)}",
            message="the row does not have the header's columns",
            rule="malformed_row",
        )
        for r in skipped[:3]
    ]
    return Sheet(
        table=table,
        meta=meta,
        locate=lambda record: f"line {line_of_record(record)}",
        meta_where="header",
        excluded={"malformed_row": len(skipped)} if skipped else {},
        examples=examples,
    )


def _read_csv_body(source: str, body: bytes, header_at: int) -> tuple[pa.Table, list[int]]:
    skipped: list[int] = []

    def on_bad_row(row: Any) -> str:
        skipped.append(int(row.number) if row.number is not None else -1)
        return "skip"

    def attempt(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )

    try:
        table = attempt(True)
        if skipped and min(skipped) < 0:
            skipped.clear()
            table = attempt(False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        message = str(exc).splitlines()[0]
        match = re.search(r"row (\d+)", message)
        where = f"line {header_at + int(match.group(1)) + 1}" if match else f"line {header_at + 1}"
        raise ChainError.at(source, where, f"is not a readable CSV table ({message})") from None
    return _rename(table), sorted(skipped)


def _comment_meta(lines: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in lines:
        body = line.lstrip("#").strip().rstrip(",").strip()
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_ ]*?)\s*[:=]\s*(.+)$", body)
        if match:
            out[column_key(match.group(1))] = match.group(2).strip().strip('"')
    return out


def read_parquet(source: str, data: bytes) -> Sheet:
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        table = pf.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ChainError.at(
            source,
            "(file)",
            f"is not a readable Parquet file ({str(exc).splitlines()[0][:200]}); it may be "
            "truncated: copy it again",
        ) from None
    meta: dict[str, Any] = {}
    raw_meta = table.schema.metadata or {}
    for key, value in raw_meta.items():
        name = key.decode(errors="replace")
        if name == "pandas" or name.startswith("ARROW:"):
            continue
        text = value.decode(errors="replace")
        if name == "gexdaemon":
            try:
                decoded = msgspec.json.decode(text)
            except msgspec.DecodeError:
                decoded = None
            if isinstance(decoded, dict):
                meta.update({column_key(str(k)): v for k, v in decoded.items()})
            continue
        meta[column_key(name)] = text
    table = _rename(table)
    table = table.append_column("source_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return Sheet(
        table=table,
        meta=meta,
        locate=lambda i: f"row {i}",
        meta_where="schema metadata",
    )


def records_to_table(
    records: Sequence[Any], source: str, locate: Callable[[int], str]
) -> tuple[pa.Table, dict[str, int], list[Problem]]:
    """JSON objects to columns; a value that is not a number where numbers are is flagged."""
    keys: dict[str, None] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ChainError.at(source, locate(i), "must be an object with named fields")
        for k in rec:
            keys.setdefault(k, None)
    columns: dict[str, pa.Array] = {}
    bad = np.zeros(len(records), dtype=bool)
    for key in keys:
        values = [rec.get(key) for rec in records]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        if pa.types.is_null(arr.type):
            arr = pa.array(values, type=pa.float64())
        if pa.types.is_string(arr.type) and column_key(key) in _NUMERIC_KEYS:
            numbers, unparseable = parse_numbers(arr)
            bad |= np.asarray(unparseable.to_numpy(zero_copy_only=False), dtype=bool)
            arr = numbers
        elif not (
            pa.types.is_string(arr.type)
            or pa.types.is_integer(arr.type)
            or pa.types.is_floating(arr.type)
            or pa.types.is_boolean(arr.type)
        ):
            arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        columns[key] = arr
    table = _rename(pa.table(columns)) if columns else pa.table({})
    table = table.append_column("source_row", pa.array(np.arange(len(records), dtype=np.int64)))
    excluded: dict[str, int] = {}
    examples: list[Problem] = []
    if bad.any():
        excluded["unparseable_number"] = int(bad.sum())
        for i in np.flatnonzero(bad)[:3].tolist():
            examples.append(
                Problem(
                    path=f"{source}: {locate(int(i))}",
                    message="a number does not parse",
                    rule="unparseable_number",
                )
            )
        table = table.filter(pa.array(~bad))
    return table, excluded, examples


# Columns read as numbers: the strike row's fields plus the long contract file's.
_NUMERIC_KEYS = frozenset(GEX_STRIKE_FIELDS) | {"strike", *NUMBER_COLUMNS}


def read_json_records(source: str, data: bytes, list_keys: Sequence[str]) -> Sheet:
    """A JSON array of records, or an object holding one under one of `list_keys`."""
    try:
        doc = decode_json(data)
    except JsonTextError as exc:
        found = exc.problem
        raise ChainError.at(source, found.where, found.message, rule=found.rule) from None
    meta: dict[str, Any] = {}
    prefix = ""
    if isinstance(doc, dict):
        key = next((k for k in list_keys if isinstance(doc.get(k), list)), None)
        if key is None:
            raise ChainError.at(
                source,
                "(root)",
                f"expected an array of rows or an object with one of {', '.join(list_keys)}",
            )
        records = doc[key]
        prefix = key
        extra = doc.get("metadata")
        if isinstance(extra, dict):
            meta.update({column_key(str(k)): v for k, v in extra.items()})
        meta.update({column_key(str(k)): v for k, v in doc.items() if k not in (key, "metadata")})
    elif isinstance(doc, list):
        records = doc
    else:
        raise ChainError.at(source, "(root)", "expected an array of rows or an object")

    def locate(i: int) -> str:
        return f"{prefix}[{i}]"

    table, excluded, examples = records_to_table(records, source, locate)
    return Sheet(
        table=table,
        meta=meta,
        locate=locate,
        meta_where="metadata" if prefix else "(root)",
        excluded=excluded,
        examples=examples,
    )


def read_ndjson(source: str, data: bytes, row_key: str) -> Sheet:
    """One JSON object per line; a line without `row_key` that holds metadata keys is metadata."""
    text = decode_text(source, data)
    records: list[Any] = []
    lines: list[int] = []
    meta: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = decode_json(line.encode())
        except JsonTextError as exc:
            raise ChainError.at(
                source,
                f"line {number}",
                f"{exc.problem.message}; the file may be truncated",
                rule=exc.problem.rule,
            ) from None
        if not isinstance(obj, dict):
            raise ChainError.at(source, f"line {number}", "must be a JSON object")
        if row_key not in obj:
            inner = obj.get("metadata")
            meta.update(
                {
                    column_key(str(k)): v
                    for k, v in (inner if isinstance(inner, dict) else obj).items()
                }
            )
            continue
        records.append(obj)
        lines.append(number)

    def locate(i: int) -> str:
        return f"line {lines[i]}" if 0 <= i < len(lines) else f"line {i}"

    table, excluded, examples = records_to_table(records, source, locate)
    return Sheet(
        table=table,
        meta=meta,
        locate=locate,
        meta_where="metadata line",
        excluded=excluded,
        examples=examples,
    )


def first_value(table: pa.Table, name: str | None) -> Any:
    """The first non-null value of a column (files repeat spot / timestamp on every row)."""
    if name is None or name not in table.column_names:
        return None
    col = table.column(name).drop_null()
    return col[0].as_py() if len(col) else None


def meta_items(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {column_key(str(k)): v for k, v in meta.items()}
