"""CBOE quote-table CSV (`quotedata.csv`): one row per strike and expiry, call and put side by side.

Found and read by content, never by line number, because real downloads drift:
- the header row is the line that starts `Expiration Date,Calls,`; columns are
  mapped by their names on each side of `Calls` / `Puts`, so extra or reordered
  columns are fine;
- spot is the number after `Last:` on the name line (its wording changes by
  year; thousands separators are allowed);
- the date line appears as `Date: February 5 2022, 8:09 PM EST`,
  `Date: June 11, 2022, 8:47 PM EDT`, `Date: December 12, 2022 at 8:30 PM EST`
  and `Date: 11 September 2024 at 12:37 GMT-4` (EST/EDT/GMT+-N/UTC zones; no zone
  means New York time);
- spreadsheet re-saves drop the leading blank line and pad lines with trailing
  commas; some copies carry an extra banner line first;
- cells may carry thousands separators; rows already expired are kept here and
  excluded (and counted) by validation.

Each data row yields two contracts; both point back to the row's line number.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gexdaemon.core.chain import ChainError, RawChain
from gexdaemon.core.errors import Problem
from gexdaemon.core.timeutil import NEW_YORK
from gexdaemon.feeds.base import FeedFile, FeedFormat, Sniffed, decode_text, parse_numbers

HEADER_PATTERN = re.compile(r'^\ufeff?"?Expiration Date"?\s*,\s*"?Calls"?\s*,', re.IGNORECASE)

_SIDE_COLUMNS = {
    "last sale": "last",
    "last": "last",
    "bid": "bid",
    "ask": "ask",
    "volume": "volume",
    "iv": "iv",
    "delta": "delta",
    "gamma": "gamma",
    "theta": "theta",
    "vega": "vega",
    "open interest": "open_interest",
    "open int": "open_interest",
}

_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ZONES = {"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "PST": -8, "PDT": -7, "UTC": 0, "GMT": 0}


def sniff(seen: Sniffed) -> bool:
    if seen.kind != "text":
        return False
    return any(HEADER_PATTERN.match(line) for line in seen.head_text.splitlines()[:50])


def parse_date_line(line: str) -> datetime | None:
    """The instant on a quote-table date line, in UTC; None when the line has no date."""
    body = line.replace('"', " ")
    body = body[body.lower().find("date:") + 5 :] if "date:" in body.lower() else body
    month = re.search(rf"\b({_MONTH_RE})\b", body, re.IGNORECASE)
    year = re.search(r"\b((?:19|20)\d{2})\b", body)
    if month is None or year is None:
        return None
    after = re.match(r"\s*(\d{1,2})\b", body[month.end() :])
    before = re.search(r"\b(\d{1,2})\s*$", body[: month.start()])
    day_text = after.group(1) if after else (before.group(1) if before else None)
    if day_text is None:
        return None
    hour = minute = second = 0
    clock = re.search(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp]\.?[Mm]\.?)?", body)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        second = int(clock.group(3) or 0)
        meridiem = (clock.group(4) or "").lower().replace(".", "")
        if meridiem == "pm" and hour < 12:
            hour += 12
        elif meridiem == "am" and hour == 12:
            hour = 0
    zone = re.search(
        r"\b(EST|EDT|CST|CDT|PST|PDT|UTC|GMT|ET)\b\s*([+-]\d{1,2}(?::?(\d{2}))?)?", body
    )
    try:
        naive = datetime(
            int(year.group(1)), _MONTHS[month.group(1).lower()], int(day_text), hour, minute, second
        )
    except ValueError:
        return None
    if zone is None or zone.group(1) == "ET":
        return naive.replace(tzinfo=NEW_YORK).astimezone(UTC)
    offset_hours = _ZONES[zone.group(1)]
    if zone.group(2):
        text = zone.group(2)
        sign = -1 if text.startswith("-") else 1
        hours = int(re.match(r"[+-](\d{1,2})", text).group(1))  # type: ignore[union-attr]
        minutes = int(zone.group(3) or 0)
        offset = timedelta(hours=offset_hours) + sign * timedelta(hours=hours, minutes=minutes)
    else:
        offset = timedelta(hours=offset_hours)
    return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)


def _spot(lines: list[str]) -> float | None:
    for line in lines:
        match = re.search(r'Last:\s*"?\s*([0-9][0-9,]*(?:\.[0-9]+)?)', line)
        if match:
            return float(match.group(1).replace(",", ""))
    return None


def parse(feed: FeedFile, seen: Sniffed) -> RawChain:
    text = decode_text(feed.name, feed.data)
    lines = text.splitlines()
    header_at = next((i for i, line in enumerate(lines) if HEADER_PATTERN.match(line)), None)
    if header_at is None:
        raise ChainError.at(
            feed.name, "line 1", "no header row starting 'Expiration Date,Calls,' was found"
        )
    preamble = lines[:header_at]
    date_line = next((line for line in preamble if "date:" in line.lower()), None)
    snapshot_at = parse_date_line(date_line) if date_line else None
    if date_line is not None and snapshot_at is None:
        raise ChainError.at(
            feed.name,
            f"line {lines.index(date_line) + 1}",
            f"cannot read the date in {date_line.strip()[:80]!r}",
        )
    try:
        header = [h.strip().lower() for h in next(csv.reader([lines[header_at]]))]
    except csv.Error as exc:
        raise ChainError.at(
            feed.name, f"line {header_at + 1}", f"the header row cannot be read ({exc})"
        ) from None
    while header and not header[-1]:
        header.pop()
    width = len(header)
    try:
        calls_at = header.index("calls")
        puts_at = header.index("puts")
    except ValueError:
        raise ChainError.at(
            feed.name, f"line {header_at + 1}", "the header has no 'Calls' or no 'Puts' column"
        ) from None
    call_cols = {
        _SIDE_COLUMNS[name]: i
        for i, name in enumerate(header)
        if calls_at < i < puts_at and name in _SIDE_COLUMNS
    }
    put_cols = {
        _SIDE_COLUMNS[name]: i
        for i, name in enumerate(header)
        if i > puts_at and name in _SIDE_COLUMNS
    }

    first_data = header_at + 1
    fast = _columns_fast(lines, first_data, width)
    columns, lines_arr, malformed = (
        fast if fast is not None else _columns_slow(lines, first_data, width)
    )
    examples = [
        Problem(
            path=f"{feed.name}: line {line}",
            message=f"the row does not have the header's {width} columns",
            rule="malformed_row",
        )
        for line in malformed[:3]
    ]
    excluded = {"malformed_row": 2 * len(malformed)} if malformed else {}
    sides = []
    for symbol_at, cols in ((calls_at, call_cols), (puts_at, put_cols)):
        part: dict[str, pa.Array] = {"occ_symbol": pc.cast(columns[symbol_at], pa.string())}
        for name, idx in cols.items():
            part[name] = columns[idx]
        part["source_row"] = pa.array(lines_arr)
        sides.append(part)
    rows_count = len(lines_arr)
    names = sorted(set(sides[0]) | set(sides[1]))
    table = pa.table(
        {
            name: pa.concat_arrays(
                [
                    _as_text(side.get(name, pa.nulls(rows_count, pa.string())))
                    if name != "source_row"
                    else side[name]
                    for side in sides
                ]
            )
            for name in names
        }
    )
    table, bad_rows = _numbers(table)
    if bad_rows.size:
        excluded["unparseable_number"] = int(bad_rows.size)
        src = table.column("source_row").to_numpy()
        for row in bad_rows[:3].tolist():
            examples.append(
                Problem(
                    path=f"{feed.name}: line {int(src[row])}",
                    message="a number does not parse",
                    rule="unparseable_number",
                )
            )
        keep = np.ones(table.num_rows, dtype=bool)
        keep[bad_rows] = False
        table = table.filter(pa.array(keep))
    return RawChain(
        table=table,
        source=feed.name,
        format_name=FORMAT.name,
        rows_read=2 * (rows_count + len(malformed)),
        locate=lambda line: f"line {line}",
        spot=_spot(preamble),
        snapshot_at=snapshot_at,
        excluded=excluded,
        examples=examples,
    )


def _as_text(arr: pa.Array) -> pa.Array:
    return pc.cast(arr, pa.string())


def _columns_fast(
    lines: list[str], first_data: int, width: int
) -> tuple[list[pa.Array], np.ndarray, list[int]] | None:
    """pyarrow's CSV reader over the data rows; None when a row is ragged (then the slow path)."""
    body = "\n".join(lines[first_data:]).encode()
    ragged: list[int] = []

    def on_bad_row(row: object) -> str:
        ragged.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(width)]),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True,
                column_types={f"c{i}": pa.string() for i in range(width)},
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if ragged:
        return None
    numbers = [first_data + k + 1 for k, line in enumerate(lines[first_data:]) if line]
    if len(numbers) != table.num_rows:
        return None
    present = np.zeros(table.num_rows, dtype=bool)
    for col in table.columns:
        present |= np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    table = table.filter(pa.array(present))
    lines_arr = np.asarray(numbers, dtype=np.int64)[present]
    return [c.combine_chunks() for c in table.columns], lines_arr, []


def _columns_slow(
    lines: list[str], first_data: int, width: int
) -> tuple[list[pa.Array], np.ndarray, list[int]]:
    """The csv module, row by row: tolerates spreadsheet padding (trailing empty cells)."""
    rows: list[list[str]] = []
    row_lines: list[int] = []
    malformed: list[int] = []
    for offset, line in enumerate(lines[first_data:]):
        line_no = first_data + offset + 1
        # One line at a time: a quote table has no multi-line cells, so a stray double
        # quote spoils its own row (malformed) instead of swallowing the rest of the file.
        try:
            row = next(csv.reader([line]), [])
        except csv.Error:
            malformed.append(line_no)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width and (len(row) < width or any(cell.strip() for cell in row[width:])):
            malformed.append(line_no)
            continue
        rows.append(row[:width])
        row_lines.append(line_no)
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    columns = [pa.array(list(col), type=pa.string()) for col in by_column]
    return columns, np.asarray(row_lines, dtype=np.int64), malformed


def _numbers(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    bad = np.zeros(table.num_rows, dtype=bool)
    out = table
    for name in table.column_names:
        if name in ("occ_symbol", "source_row"):
            continue
        values, unparseable = parse_numbers(table.column(name))
        bad |= np.asarray(unparseable.to_numpy(zero_copy_only=False), dtype=bool)
        out = out.set_column(out.schema.get_field_index(name), name, values)
    return out, np.flatnonzero(bad)


FORMAT = FeedFormat(
    name="cboe_csv",
    description="CBOE quote-table CSV (quotedata.csv)",
    sniff=sniff,
    parse=parse,
)
