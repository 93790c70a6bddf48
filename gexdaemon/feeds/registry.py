"""The one list of supported formats, and detection by content (the file name is never consulted).

Adding a vendor format: write one module with a `FeedFormat` and add it to
`FORMATS` here. Order matters only where two formats could both claim a file:
the more specific test comes first (CBOE's quote table before a generic CSV).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
import pyarrow as pa

from gexdaemon.core.chain import ChainError
from gexdaemon.feeds import cboe_csv, cboe_json, long_contracts, strike_level
from gexdaemon.feeds.base import HEAD_BYTES, FeedFile, FeedFormat, ParsedFeed, Sniffed
from gexdaemon.feeds.tabular import column_key, csv_header_columns

T = TypeVar("T")

FORMATS: tuple[FeedFormat, ...] = (
    cboe_json.FORMAT,
    cboe_csv.FORMAT,
    strike_level.JSON_FORMAT,
    strike_level.NDJSON_FORMAT,
    strike_level.CSV_FORMAT,
    strike_level.PARQUET_FORMAT,
    long_contracts.CSV_FORMAT,
    long_contracts.PARQUET_FORMAT,
)

PARQUET_MAGIC = b"PAR1"


def sniff(name: str, data: bytes) -> Sniffed:
    """Look at the bytes once: Parquet, JSON, NDJSON, text (CSV) or binary."""
    if not data.strip():
        return Sniffed(kind="empty", head_text="")
    if data[:4] == PARQUET_MAGIC:
        columns: tuple[str, ...] = ()
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415 - only for Parquet, ~30 ms to import

            schema = pq.read_schema(pa.BufferReader(data))
            columns = tuple(column_key(n) for n in schema.names)
        except (pa.ArrowException, OSError, ValueError):
            columns = ()
        return Sniffed(kind="parquet", head_text="", columns=columns)
    head = data[:HEAD_BYTES]
    if b"\x00" in head:
        return Sniffed(kind="binary", head_text="")
    text = head.decode("utf-8-sig", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        return Sniffed(kind="binary", head_text="")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        first_line = stripped.split("\n", 1)[0].strip()
        rest = stripped.split("\n", 1)[1].lstrip() if "\n" in stripped else ""
        if stripped[:1] == "{" and rest.startswith("{") and _is_json_object(first_line):
            return Sniffed(kind="ndjson", head_text=text)
        return Sniffed(kind="json", head_text=text)
    return Sniffed(kind="text", head_text=text, columns=csv_header_columns(text))


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(msgspec.json.decode(line), dict)
    except msgspec.DecodeError:
        return False


def detect(feed: FeedFile) -> tuple[FeedFormat, Sniffed]:
    """The format that claims the file's content; ChainError naming what was seen otherwise."""
    return _guarded(_detect, feed)


def parse(feed: FeedFile) -> tuple[FeedFormat, ParsedFeed]:
    """Detect and parse; whatever is wrong with the bytes comes out as a ChainError."""
    fmt, seen = detect(feed)
    return fmt, _guarded(lambda f: fmt.parse(f, seen), feed)


def _guarded(read: Callable[[FeedFile], T], feed: FeedFile) -> T:
    """Every caller (the drop folder, jobs, uploads) gets a ChainError for bad bytes, even
    when a parser fails in a way it did not foresee (a file odd enough to find a bug):
    the file is refused with what went wrong, and the log keeps the traceback."""
    try:
        return read(feed)
    except ChainError:
        raise
    except Exception as exc:
        # structlog is imported here, not at the top: `gexdaemon analyze` never logs and
        # pays ~50 ms for the import (it pulls in rich for its console renderer).
        import structlog  # noqa: PLC0415

        structlog.get_logger("gexdaemon.feeds").exception("chain parser failed", file=feed.name)
        raise ChainError.at(
            feed.name,
            "(file)",
            f"could not be decoded ({type(exc).__name__}: {str(exc)[:200]}); check that it is "
            "a complete, unedited chain file",
        ) from None


def _detect(feed: FeedFile) -> tuple[FeedFormat, Sniffed]:
    seen = sniff(feed.name, feed.data)
    if seen.kind == "empty":
        raise ChainError.at(feed.name, "(file)", "is empty; nothing to ingest", rule="empty")
    if seen.kind == "binary":
        raise ChainError.at(
            feed.name,
            "(file)",
            "is binary and not Parquet: not an option chain (supported: "
            + ", ".join(f.name for f in FORMATS)
            + ")",
            rule="format",
        )
    for fmt in FORMATS:
        if fmt.sniff(seen):
            return fmt, seen
    what = {
        "json": "JSON without CBOE's data.options or strike rows (strike_price)",
        "ndjson": "NDJSON without strike_price rows",
        "parquet": f"Parquet with columns {', '.join(seen.columns[:12]) or '(unreadable)'}",
        "text": f"text whose first row has columns {', '.join(seen.columns[:12]) or '(none)'}",
    }.get(seen.kind, seen.kind)
    raise ChainError.at(
        feed.name,
        "(file)",
        f"is not a supported option-chain format: found {what}. Supported: "
        + "; ".join(f.description for f in FORMATS),
        rule="format",
    )
