"""The Parquet lake: `<data_dir>/gex/symbol=SYM/date=YYYY-MM-DD/snapshot_<ts>.parquet`.

Files are written under a temporary dot-name in the final folder, fsynced, then
`os.replace`d, and the folder is fsynced: a crash leaves either the whole file
under its final name or nothing under it. A leftover `.tmp` from a killed process
is ours alone and is removed when the store next opens (the database lock makes
the store's process the only lake writer). Folder names use `key=value` so DuckDB
prunes partitions with `hive_partitioning = true`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gexdaemon.core.timeutil import as_utc

if TYPE_CHECKING:
    import pyarrow as pa  # the lake's writers load it; its paths and views do not need it

TMP_SUFFIX = ".tmp"

# String columns whose values are (nearly) all different: a dictionary only adds work.
UNIQUE_STRING_COLUMNS = frozenset({"occ_symbol"})


def snapshot_path(
    lake_dir: Path, symbol: str, day: date, at: datetime, snapshot_id: uuid.UUID
) -> Path:
    stamp = as_utc(at).strftime("%Y%m%dT%H%M%S%fZ")
    return (
        lake_dir
        / f"symbol={symbol}"
        / f"date={day.isoformat()}"
        / f"snapshot_{stamp}_{snapshot_id.hex[:12]}.parquet"
    )


def write_parquet_atomic(table: pa.Table, final: Path, *, compression: str = "zstd") -> int:
    """Write `table` to `final` atomically; returns the file size in bytes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        with tmp.open("wb") as fh:
            import pyarrow.parquet as pq  # noqa: PLC0415

            pq.write_table(
                table,
                fh,
                compression=compression,
                use_dictionary=dictionary_columns(table),
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)
    return final.stat().st_size


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: strings that repeat (root, right, stamps).

    pyarrow's default dictionary-encodes every column; for numbers and unique
    strings that costs time and, with zstd behind it, makes the file larger (the
    full SPX lake file: 40% less time to write, 18% smaller). Values read back
    the same either way.
    """
    import pyarrow as pa  # noqa: PLC0415

    return [
        f.name
        for f in table.schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and f.name not in UNIQUE_STRING_COLUMNS
    ]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_files(lake_dir: Path) -> Iterator[Path]:
    """The lake's snapshot files (`symbol=*/date=*/*.parquet`), not its archive."""
    if not lake_dir.exists():
        return iter(())
    return (p for p in lake_dir.glob("symbol=*/date=*/*.parquet") if not p.name.startswith("."))


def stale_temporaries(root: Path) -> list[Path]:
    """Temporary files left by processes other than this one (killed mid-write)."""
    if not root.exists():
        return []
    mine = f".{os.getpid()}."
    return [p for p in root.rglob(f".*{TMP_SUFFIX}") if p.is_file() and mine not in p.name]


def remove_stale_temporaries(root: Path) -> int:
    removed = 0
    for path in stale_temporaries(root):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def view_sql(
    name: str, glob: Path, empty_columns: dict[str, str], *, present: bool, hive: bool
) -> str:
    """A view over Parquet files, or an empty typed view while no file exists yet.

    DuckDB refuses a view over a glob that matches nothing, and a view must exist
    from the first start so queries and tools can rely on it.
    """
    if present:
        options = ", hive_partitioning = true" if hive else ""
        return (
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
            f"{sql_string(str(glob))}{options}, union_by_name = true)"
        )
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {col}" for col, typ in empty_columns.items())
    return f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} WHERE false"
