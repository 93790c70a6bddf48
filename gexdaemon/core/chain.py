"""The canonical contract table: its Arrow schema, column-wise validation and the quality score.

Every feed parser (gexdaemon.feeds) turns its file into a `RawChain`: an Arrow
table with whichever identity columns the format has (an OCC symbol, or root /
underlying + expiry + strike + right) and float64 numbers. `validate_contracts`
completes the identity from the symbol (or the symbol from the identity),
checks every row with NumPy / Arrow compute (no Python loop per row), drops the
rows that break a rule, counts them by reason and returns the table in
`CONTRACT_SCHEMA`. SPX and SPXW (every AM/PM pair) stay distinct contracts: the
contract key is (root, expiry, right, strike).

Exclusion reasons (the keys of `ValidatedChain.excluded`), checked in this
order, the first that applies is counted:

- `unparseable_symbol`: no usable OCC symbol and no complete root/expiry/strike/right;
- `other_underlying`: the contract belongs to another underlying than the snapshot's;
- `non_positive_strike`: strike <= 0 (the seed's GEXStrike rule);
- `non_finite`: NaN or infinite number in any numeric field;
- `implausible_value`: a number past the caps below (huge numbers are corrupt data);
- `negative_open_interest`, `negative_volume`, `negative_price`, `negative_iv`;
- `fractional_count`: open interest or volume that is not a whole number;
- `bid_above_ask`: a crossed quote (bid > ask);
- `impossible_delta`: call delta outside [0, 1] or put delta outside [-1, 0];
- `negative_gamma`: a vendor gamma below zero;
- `expired`: settlement instant at or before the snapshot instant;
- `duplicate_contract`: the same (root, expiry, right, strike) again; the first row is kept.

Parsers add their own (`unparseable_number`, `malformed_row`) before this.

Data quality score, in [0, 1] (also in docs/gex.md):

    score = coverage * (0.7 * completeness + 0.3 * consistency)

- coverage = kept / (rows read - rows excluded for a reason that is not a defect),
  the non-defects being `other_underlying`, `expired` and `expiry_filter`
  (a weekend download legitimately carries expired rows);
- completeness = mean over kept contracts of 0.35 * [open interest present]
  + 0.35 * [a gamma input present: IV > 0 or a vendor gamma]
  + 0.20 * [bid and ask present] + 0.10 * [volume present];
- consistency = share of kept contracts with a two-sided quote whose mid lies
  inside the static no-arbitrage bounds (call: intrinsic - tol <= mid <= spot,
  put: intrinsic - tol <= mid <= strike, intrinsic at spot, tol = half the spread
  + 0.5% of spot + 10% x strike x T in years for carry); 1.0 when no contract has a
  two-sided quote (completeness already charges for missing quotes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.occ import AM_SETTLED_ROOTS, char_column, format_occ_parts, parse_occ
from gexdaemon.core.symbols import normalize_symbol, underlying_of_root
from gexdaemon.core.timeutil import NEW_YORK, as_utc

TS = pa.timestamp("us", tz="UTC")

CONTRACT_SCHEMA = pa.schema(
    [
        pa.field("underlying", pa.string(), nullable=False),
        pa.field("root", pa.string(), nullable=False),
        pa.field("expiry", pa.date32(), nullable=False),
        pa.field("settlement", pa.string(), nullable=False),  # "AM" | "PM"
        pa.field("right", pa.string(), nullable=False),  # "C" | "P"
        pa.field("strike", pa.float64(), nullable=False),
        pa.field("occ_symbol", pa.string(), nullable=False),
        pa.field("bid", pa.float64()),
        pa.field("ask", pa.float64()),
        pa.field("last", pa.float64()),
        pa.field("volume", pa.int64(), nullable=False),
        pa.field("open_interest", pa.int64(), nullable=False),
        pa.field("iv", pa.float64()),  # a fraction: 0.2 = 20%
        pa.field("delta", pa.float64()),  # vendor greeks, per share
        pa.field("gamma", pa.float64()),
        pa.field("theta", pa.float64()),
        pa.field("vega", pa.float64()),
        pa.field("snapshot_at", TS, nullable=False),
        pa.field("spot", pa.float64(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),  # line or element index, for messages
    ]
)
"""One row per option contract: the table every format is turned into."""

IDENTITY_COLUMNS = ("occ_symbol", "underlying", "root", "expiry", "right", "strike", "settlement")
NUMBER_COLUMNS = (
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "iv",
    "delta",
    "gamma",
    "theta",
    "vega",
)

# Caps past which a number is corrupt rather than extreme (largest real single-series OI
# is in the low millions; no listed strike or premium is near a million).
MAX_STRIKE = 1_000_000.0
MAX_PRICE = 1_000_000.0
MAX_COUNT = 100_000_000.0
MAX_IV = 50.0  # 5,000% annualised
MAX_GREEK = 1_000_000.0
DELTA_TOLERANCE = 1e-3

AM_SETTLEMENT = time(9, 30)
PM_SETTLEMENT = time(16, 0)

NON_DEFECT_REASONS = frozenset({"other_underlying", "expired", "expiry_filter"})

REASON_TEXT: Mapping[str, str] = {
    "unparseable_symbol": "no usable OCC symbol or root/expiry/strike/right",
    "other_underlying": "belongs to another underlying",
    "non_positive_strike": "strike must be > 0",
    "non_finite": "a number is NaN or infinite",
    "implausible_value": "a number is past the plausible caps (corrupt data)",
    "negative_open_interest": "open interest must be >= 0",
    "negative_volume": "volume must be >= 0",
    "negative_price": "bid, ask and last must be >= 0",
    "negative_iv": "implied volatility must be >= 0",
    "fractional_count": "open interest and volume must be whole numbers",
    "bid_above_ask": "bid is above ask (crossed quote)",
    "impossible_delta": "call delta must be in [0, 1], put delta in [-1, 0]",
    "negative_gamma": "gamma must be >= 0",
    "expired": "settled at or before the snapshot instant",
    "duplicate_contract": "the same contract (root, expiry, right, strike) appears again",
    "unparseable_number": "a number does not parse",
    "malformed_row": "the row does not have the header's columns",
    "expiry_filter": "left out by the expiry filter",
}

EXAMPLES_PER_REASON = 3


class ChainError(InvalidInput):
    """An option-chain file that cannot become a snapshot; details name the file and line/field."""

    code = "chain_invalid"

    @classmethod
    def at(cls, source: str, where: str, message: str, *, rule: str = "") -> ChainError:
        """One problem at one place: `_SPX.json: data.options[12].option: ...`."""
        path = f"{source}: {where}" if where else source
        return cls(f"{path}: {message}", details=[Problem(path=path, message=message, rule=rule)])

    @classmethod
    def nothing_usable(
        cls, source: str, reason: str, examples: Sequence[Problem] = ()
    ) -> ChainError:
        shown = "; ".join(str(p) for p in list(examples)[:3])
        tail = f" (for example {shown})" if shown else ""
        return cls(f"{source}: nothing usable: {reason}{tail}", details=list(examples))


@dataclass
class ParsedTable:
    """What a parser read, before validation: the rows plus what the file says about itself."""

    table: pa.Table
    source: str
    format_name: str
    rows_read: int
    locate: Callable[[int], str]
    underlying: str | None = None
    spot: float | None = None
    snapshot_at: datetime | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    examples: list[Problem] = field(default_factory=list)


@dataclass
class RawChain(ParsedTable):
    """Contract rows (any subset of the contract columns), as a parser read them."""


@dataclass
class QualityScore:
    coverage: float
    completeness: float
    consistency: float

    @property
    def score(self) -> float:
        value = self.coverage * (0.7 * self.completeness + 0.3 * self.consistency)
        return float(min(1.0, max(0.0, value)))


@dataclass
class ValidatedChain:
    contracts: pa.Table  # CONTRACT_SCHEMA, invalid rows removed
    excluded: dict[str, int]
    examples: list[Problem]
    rows_read: int
    quality: QualityScore
    underlying: str


def add_exclusions(target: dict[str, int], more: Mapping[str, int]) -> None:
    for reason, count in more.items():
        if count:
            target[reason] = target.get(reason, 0) + int(count)


def defect_count(excluded: Mapping[str, int]) -> int:
    return sum(n for reason, n in excluded.items() if reason not in NON_DEFECT_REASONS)


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _tally_exclusions(
    reason: npt.NDArray[np.int8],
    codes: list[str],
    where: Callable[[int], str],
    excluded: dict[str, int],
    examples: list[Problem],
) -> None:
    """Count the rows each reason excluded (`reason` holds 1 + the code's index, 0 for kept),
    with a few examples of each defect (reasons that are not defects get none)."""
    counts = np.bincount(reason, minlength=len(codes) + 1)
    for i, name in enumerate(codes, start=1):
        if counts[i]:
            excluded[name] = excluded.get(name, 0) + int(counts[i])
            if name not in NON_DEFECT_REASONS:
                for row in np.flatnonzero(reason == i)[:EXAMPLES_PER_REASON].tolist():
                    examples.append(Problem(path=where(row), message=REASON_TEXT[name], rule=name))


def _floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    """A numeric column as float64 with NaN for missing (null) values."""
    col = _column(table, name)
    if col is None:
        return np.full(table.num_rows, np.nan)
    arr = col if pa.types.is_float64(col.type) else pc.cast(col, pa.float64())
    # to_numpy turns nulls of a float column into NaN in the same copy.
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def settlement_instants(
    expiry: pa.Array | pa.ChunkedArray, settlement: pa.Array | pa.ChunkedArray
) -> npt.NDArray[np.int64]:
    """Settlement instants (UTC microseconds): AM at 09:30, PM at 16:00 New York on the expiry date.

    Chains have a few hundred (expiry, style) pairs at most, so each pair's instant
    is computed once with zoneinfo (DST-correct) and broadcast back.
    """
    days = np.asarray(
        pc.fill_null(pc.cast(expiry, pa.date32()).cast(pa.int32()), 0).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.int64,
    )
    is_am = np.asarray(
        pc.fill_null(pc.equal(settlement, "AM"), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    return settlement_micros(days, is_am)


def settlement_micros(
    days: npt.NDArray[np.int64], is_am: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """`settlement_instants` for NumPy inputs: expiry as days since 1970 and an AM flag."""
    key = pc.dictionary_encode(pa.array(days.astype(np.int64) * 2 + is_am))
    uniq = key.dictionary.to_numpy()
    epoch = date(1970, 1, 1).toordinal()
    instants = np.empty(len(uniq), dtype=np.int64)
    for i, k in enumerate(uniq.tolist()):
        day = date.fromordinal(epoch + k // 2)
        at = AM_SETTLEMENT if k % 2 else PM_SETTLEMENT
        local = datetime.combine(day, at, tzinfo=NEW_YORK)
        instants[i] = int(local.astimezone(UTC).timestamp() * 1_000_000)
    codes = np.asarray(key.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(instants[codes], dtype=np.int64)


def to_micros(instant: datetime) -> int:
    return int(as_utc(instant).timestamp() * 1_000_000)


def chain_underlying(raw: RawChain) -> str | None:
    """The underlying a chain's contracts are on (their OCC symbols say it; failing that,
    what the file says); ChainError when they are on several."""
    if raw.table.num_rows == 0:
        return raw.underlying
    return _only_underlying(raw, _identity(raw.table))


def _only_underlying(raw: RawChain, identity: _Identity) -> str | None:
    seen = np.unique(identity.underlying.codes[identity.valid])
    names = sorted({str(identity.underlying.values[c]) for c in seen.tolist()} - {"None"})
    if len(names) > 1:
        raise ChainError.at(
            raw.source,
            "underlying",
            f"the file holds options on several underlyings ({', '.join(names[:10])}); "
            "name the one to snapshot (--symbol / market_symbol)",
        )
    return names[0] if names else raw.underlying


def validate_contracts(
    raw: RawChain, *, spot: float, snapshot_at: datetime, underlying: str | None
) -> ValidatedChain:
    """Complete, check and clean a parsed chain; raise ChainError when nothing usable is left.

    `underlying` is the snapshot's symbol (SPX for a file of SPX and SPXW contracts);
    None means "the file's only underlying" (a file with several is refused).
    """
    table = raw.table
    n = table.num_rows
    excluded: dict[str, int] = dict(raw.excluded)
    examples: list[Problem] = list(raw.examples)
    if not np.isfinite(spot) or spot <= 0 or spot > MAX_STRIKE:
        raise ChainError.at(
            raw.source, "spot", f"spot price {spot!r} is not a positive finite number"
        )
    if n == 0:
        raise ChainError.nothing_usable(raw.source, "the file holds no option contracts", examples)

    identity = _identity(table)
    reason = np.zeros(n, dtype=np.int8)
    codes: list[str] = []

    def flag(name: str, mask: npt.NDArray[np.bool_]) -> None:
        codes.append(name)
        reason[(reason == 0) & mask] = len(codes)

    flag("unparseable_symbol", ~identity.valid)
    chosen = underlying if underlying is not None else _only_underlying(raw, identity)
    if chosen is not None:
        same = identity.underlying.flags(lambda v: v == chosen)
        flag("other_underlying", identity.valid & ~same)
    strike = identity.strike
    flag("non_positive_strike", identity.valid & ~(strike > 0))

    numbers = {name: _floats(table, name) for name in NUMBER_COLUMNS}
    present = {name: ~np.isnan(values) for name, values in numbers.items()}
    non_finite = np.zeros(n, dtype=bool)
    for name in NUMBER_COLUMNS:
        col = _column(table, name)
        if col is not None:
            bad = ~np.isfinite(numbers[name])
            if col.null_count:
                bad &= ~np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
            non_finite |= bad
    non_finite |= ~np.isfinite(strike) & identity.valid
    flag("non_finite", non_finite)

    def over(name: str, cap: float) -> npt.NDArray[np.bool_]:
        with np.errstate(invalid="ignore"):
            return np.abs(numbers[name]) > cap

    implausible = strike > MAX_STRIKE
    for name in ("bid", "ask", "last"):
        implausible |= over(name, MAX_PRICE)
    implausible |= over("volume", MAX_COUNT) | over("open_interest", MAX_COUNT)
    implausible |= over("iv", MAX_IV)
    for name in ("delta", "gamma", "theta", "vega"):
        implausible |= over(name, MAX_GREEK)
    flag("implausible_value", implausible)

    with np.errstate(invalid="ignore"):
        flag("negative_open_interest", numbers["open_interest"] < 0)
        flag("negative_volume", numbers["volume"] < 0)
        flag(
            "negative_price",
            (numbers["bid"] < 0) | (numbers["ask"] < 0) | (numbers["last"] < 0),
        )
        flag("negative_iv", numbers["iv"] < 0)
        oi, vol = numbers["open_interest"], numbers["volume"]
        flag(
            "fractional_count",
            (present["open_interest"] & (oi != np.floor(oi)))
            | (present["volume"] & (vol != np.floor(vol))),
        )
        bid, ask = numbers["bid"], numbers["ask"]
        flag("bid_above_ask", present["bid"] & present["ask"] & (bid > ask))
        is_call = identity.is_call
        delta = numbers["delta"]
        bad_delta = np.where(
            is_call,
            (delta < -DELTA_TOLERANCE) | (delta > 1 + DELTA_TOLERANCE),
            (delta > DELTA_TOLERANCE) | (delta < -1 - DELTA_TOLERANCE),
        )
        flag("impossible_delta", present["delta"] & bad_delta)
        flag("negative_gamma", numbers["gamma"] < 0)

    settle = settlement_micros(identity.expiry_days, identity.settlement_am)
    snap_us = to_micros(snapshot_at)
    flag("expired", identity.valid & (settle <= snap_us))

    # Duplicates among the rows still standing: the first occurrence is kept.
    alive = np.flatnonzero(reason == 0)
    if alive.size:
        keys = _contract_keys(identity, strike, alive)
        dup_mask = np.zeros(n, dtype=bool)
        dup_mask[alive[repeated(keys)]] = True
        flag("duplicate_contract", dup_mask)

    source_row = _floats(table, "source_row").astype(np.int64)
    _tally_exclusions(
        reason,
        codes,
        lambda row: f"{raw.source}: {raw.locate(int(source_row[row]))}",
        excluded,
        examples,
    )
    keep = reason == 0
    kept = int(keep.sum())
    if kept == 0:
        raise ChainError.nothing_usable(raw.source, _why_empty(excluded, chosen), examples)

    # Usually every row stands: then the columns go through as they are, no filtered copies.
    rows: npt.NDArray[np.bool_] | slice = slice(None) if kept == n else keep

    def kept_arrow(col: pa.Array) -> pa.Array:
        return col if kept == n else pc.filter(col, pa.array(keep))

    columns: dict[str, pa.Array] = {
        "underlying": identity.underlying.strings(rows),
        "root": identity.root.strings(rows),
        "expiry": pa.array(identity.expiry_days[rows].astype(np.int32)).cast(pa.date32()),
        "settlement": char_column(identity.settlement_am[rows], "AM", "PM"),
        "right": char_column(identity.is_call[rows], "C", "P"),
        "strike": pa.array(strike[rows], type=pa.float64()),
        "occ_symbol": identity.occ_symbols(rows),
    }
    for name in ("bid", "ask", "last", "iv", "delta", "gamma", "theta", "vega"):
        col = _column(table, name)
        columns[name] = (
            pa.nulls(kept, pa.float64()) if col is None else kept_arrow(pc.cast(col, pa.float64()))
        )
    for name in ("volume", "open_interest"):
        values = np.nan_to_num(numbers[name][rows], nan=0.0)
        columns[name] = pa.array(values.astype(np.int64), type=pa.int64())
    columns["snapshot_at"] = pa.array(np.full(kept, snap_us, dtype=np.int64)).cast(TS)
    columns["spot"] = pa.array(np.full(kept, float(spot)), type=pa.float64())
    columns["source_row"] = pa.array(source_row[rows], type=pa.int64())
    contracts = pa.table([columns[f.name] for f in CONTRACT_SCHEMA], schema=CONTRACT_SCHEMA)

    quality = _quality(
        raw.rows_read,
        excluded,
        kept,
        numbers={k: v[rows] for k, v in numbers.items()},
        strike=strike[rows],
        is_call=identity.is_call[rows],
        years=(settle[rows] - snap_us) / (365 * 86400 * 1e6),
        spot=spot,
    )
    return ValidatedChain(
        contracts=contracts,
        excluded=excluded,
        examples=examples,
        rows_read=raw.rows_read,
        quality=quality,
        underlying=chosen or str(columns["underlying"][0].as_py()),
    )


def _floats_from(arr: pa.Array) -> npt.NDArray[np.float64]:
    return np.asarray(
        pc.fill_null(pc.cast(arr, pa.float64()), np.nan).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )


def _has_nan_or_inf(table: pa.Table, name: str) -> npt.NDArray[np.bool_]:
    values = _floats(table, name)
    col = _column(table, name)
    nulls = (
        np.zeros(len(values), dtype=bool)
        if col is None
        else np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
    )
    return np.asarray(~np.isfinite(values) & ~nulls, dtype=bool)


class _Coded:
    """A string column as codes into its distinct values: transforms run once per value.

    Roots, underlyings, rights and settlement styles have a handful of distinct
    values in a chain of any size, so normalising, mapping and validating them per
    distinct value and broadcasting by code replaces a string kernel per row.
    """

    def __init__(self, values: pa.Array | pa.ChunkedArray) -> None:
        arr = _as_array(values)
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(pc.cast(arr, pa.string()))
        names = arr.dictionary.to_pylist()
        self.values: list[str | None] = [None if v is None else str(v) for v in names] + [None]
        self.codes = np.asarray(
            pc.fill_null(arr.indices, len(names)).to_numpy(zero_copy_only=False), dtype=np.int64
        )

    @classmethod
    def from_parts(cls, values: list[str | None], codes: npt.NDArray[np.int64]) -> _Coded:
        out = cls.__new__(cls)
        out.values = values
        out.codes = codes
        return out

    def map(self, fn: Callable[[str | None], str | None]) -> _Coded:
        """Apply `fn` to each distinct value; codes are kept (values may then repeat)."""
        return _Coded.from_parts([fn(v) for v in self.values], self.codes)

    def flags(self, fn: Callable[[str | None], bool]) -> npt.NDArray[np.bool_]:
        table = np.array([fn(v) for v in self.values], dtype=bool)
        return np.asarray(table[self.codes], dtype=bool)

    def coalesce(self, other: _Coded) -> _Coded:
        """Our value where present, else `other`'s (row by row)."""
        mine = np.array([v is not None for v in self.values], dtype=bool)[self.codes]
        width = len(other.values)
        pairs = np.where(
            mine, self.codes * width + width - 1, (len(self.values) - 1) * width + other.codes
        )
        key = pc.dictionary_encode(pa.array(pairs))
        uniq = key.dictionary.to_numpy()
        values = [
            self.values[k // width]
            if self.values[k // width] is not None
            else other.values[k % width]
            for k in uniq.tolist()
        ] + [None]
        codes = np.asarray(key.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return _Coded.from_parts(values, codes)

    def strings(self, rows: npt.NDArray[np.bool_] | slice | None = None) -> pa.Array:
        codes = self.codes if rows is None else self.codes[rows]
        return pc.take(pa.array(self.values, type=pa.string()), pa.array(codes))


@dataclass
class _Identity:
    underlying: _Coded
    root: _Coded
    settlement_am: npt.NDArray[np.bool_]
    expiry_days: npt.NDArray[np.int64]
    strike: npt.NDArray[np.float64]
    is_call: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_]
    symbol: pa.Array | None  # the input symbols when they were already canonical

    def occ_symbols(self, rows: npt.NDArray[np.bool_] | slice) -> pa.Array:
        if self.symbol is not None:
            symbols = pc.cast(self.symbol, pa.string())
            return symbols if isinstance(rows, slice) else pc.filter(symbols, pa.array(rows))
        return format_occ_parts(
            self.root.values,
            root_codes=self.root.codes[rows],
            expiry_days=self.expiry_days[rows],
            is_call=self.is_call[rows],
            strike=self.strike[rows],
        )


_ROOT_RE = re.compile(r"^[A-Z0-9]{1,6}$")
_RIGHTS = {"C": "C", "CALL": "C", "CALLS": "C", "P": "P", "PUT": "P", "PUTS": "P"}


def _clean(value: str | None) -> str | None:
    return None if value is None else value.strip().upper()


def _identity(table: pa.Table) -> _Identity:
    """Root, expiry, right, strike, underlying and settlement for every row.

    Explicit columns win; the OCC symbol fills what they lack; the symbol is rebuilt
    in the unpadded OSI spelling from the completed fields (or kept as given when it
    already is).
    """
    n = table.num_rows
    symbol = _column(table, "occ_symbol")
    explicit = {name: _column(table, name) for name in ("root", "expiry", "right", "strike")}
    occ = parse_occ(symbol) if symbol is not None else None

    def completed(name: str, from_occ: pa.Array | None) -> pa.Array | None:
        mine = explicit[name]
        if mine is None:
            return from_occ
        if from_occ is None:
            return mine
        return pc.coalesce(mine, from_occ)

    underlying_col = _column(table, "underlying")
    root_col = explicit["root"]
    if root_col is None and underlying_col is not None and occ is None:
        root_col = underlying_col
    root = _Coded(root_col).map(_clean) if root_col is not None else None
    if occ is not None:
        from_occ = _Coded(occ.root)
        root = from_occ if root is None else root.coalesce(from_occ)
    if root is None:
        root = _Coded.from_parts([None], np.zeros(n, dtype=np.int64))
    if underlying_col is not None:
        named = _Coded(underlying_col).map(lambda v: None if v is None else normalize_symbol(v))
        underlying = named.coalesce(
            root.map(lambda v: None if v is None else underlying_of_root(v))
        )
    else:
        underlying = root.map(lambda v: None if v is None else underlying_of_root(v))

    expiry = completed("expiry", occ.expiry if occ else None)
    expiry_valid = (
        np.zeros(n, dtype=bool)
        if expiry is None
        else np.asarray(pc.is_valid(expiry).to_numpy(zero_copy_only=False), dtype=bool)
    )
    expiry_days = (
        np.zeros(n, dtype=np.int64)
        if expiry is None
        else np.asarray(
            pc.fill_null(pc.cast(expiry, pa.date32()).cast(pa.int32()), 0).to_numpy(
                zero_copy_only=False
            ),
            dtype=np.int64,
        )
    )
    strike_arr = completed("strike", occ.strike if occ else None)
    strike = (
        np.full(n, np.nan)
        if strike_arr is None
        else _floats_from(pc.cast(strike_arr, pa.float64()))
    )
    right_col = explicit["right"]
    right = (
        _Coded(right_col).map(lambda v: _RIGHTS.get(_clean(v) or ""))
        if right_col is not None
        else None
    )
    if occ is not None:
        from_occ_right = _Coded(occ.right)
        right = from_occ_right if right is None else right.coalesce(from_occ_right)
    if right is None:
        right = _Coded.from_parts([None], np.zeros(n, dtype=np.int64))
    is_call = right.flags(lambda v: v == "C")
    has_right = right.flags(lambda v: v in ("C", "P"))

    settlement_col = _column(table, "settlement")
    derived_am = root.flags(lambda v: v in AM_SETTLED_ROOTS)
    if settlement_col is not None:
        given = _Coded(settlement_col).map(_clean)
        stated = given.flags(lambda v: v in ("AM", "PM"))
        stated_am = given.flags(lambda v: v == "AM")
        settlement_am = np.where(stated, stated_am, derived_am)
    else:
        settlement_am = derived_am

    valid = root.flags(lambda v: v is not None and _ROOT_RE.match(v) is not None)
    valid &= expiry_valid & has_right & ~np.isnan(strike)
    valid &= underlying.flags(lambda v: v is not None)
    if occ is not None and all(explicit[k] is None for k in explicit):
        valid &= occ.valid
    canonical = (
        symbol
        if occ is not None and occ.canonical and all(explicit[k] is None for k in explicit)
        else None
    )
    return _Identity(
        underlying=underlying,
        root=root,
        settlement_am=np.asarray(settlement_am, dtype=bool),
        expiry_days=expiry_days,
        strike=strike,
        is_call=is_call,
        valid=np.asarray(valid, dtype=bool),
        symbol=canonical,
    )


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def repeated(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """True for every occurrence of a key after its first.

    Most chains hold no duplicate, and a sorted copy proves it in a few
    milliseconds (NumPy's vectorised sort), where hashing a million distinct keys
    takes over 100 ms. When there are duplicates, Arrow numbers distinct keys in
    order of first appearance, so a row repeats an earlier key exactly when its
    code is not larger than every code before it.
    """
    if keys.size < 2:
        return np.zeros(keys.size, dtype=bool)
    ordered = np.sort(keys)
    if not (ordered[1:] == ordered[:-1]).any():
        return np.zeros(keys.size, dtype=bool)
    codes = np.asarray(
        pc.dictionary_encode(pa.array(keys)).indices.to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    seen_max = np.maximum.accumulate(codes)
    before = np.empty_like(seen_max)
    before[0] = -1
    before[1:] = seen_max[:-1]
    return np.asarray(codes <= before, dtype=bool)


def _contract_keys(
    identity: _Identity, strike: npt.NDArray[np.float64], rows: npt.NDArray[np.intp]
) -> npt.NDArray[np.int64]:
    """One int64 per contract: root code, expiry day, right and strike in thousandths."""
    root_code = identity.root.codes[rows]
    days = identity.expiry_days[rows]
    units = np.rint(strike[rows] * 1000).astype(np.int64)
    call = identity.is_call[rows].astype(np.int64)
    # strike < 2^30 thousandths (MAX_STRIKE), days < 2^17, roots < 2^12: fits in 63 bits.
    return (((root_code << 17) | (days & 0x1FFFF)) << 31 | units) << 1 | call


def _why_empty(excluded: Mapping[str, int], underlying: str | None) -> str:
    if not excluded:
        return "no option contracts were found"
    worst = sorted(excluded.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{count} {reason}" for reason, count in worst)
    hint = ""
    if worst[0][0] == "expired":
        hint = " (every contract had settled before the file's timestamp: is the timestamp right?)"
    elif worst[0][0] == "other_underlying":
        hint = f" (no contract is on {underlying}: check --symbol)"
    return f"every row was excluded: {listed}{hint}"


QUALITY_BLOCK = 1 << 16


def _quality(
    rows_read: int,
    excluded: Mapping[str, int],
    kept: int,
    *,
    numbers: Mapping[str, npt.NDArray[np.float64]],
    strike: npt.NDArray[np.float64],
    is_call: npt.NDArray[np.bool_],
    years: npt.NDArray[np.float64],
    spot: float,
) -> QualityScore:
    live = rows_read - sum(n for r, n in excluded.items() if r in NON_DEFECT_REASONS)
    coverage = kept / live if live > 0 else 0.0
    has = {name: ~np.isnan(numbers[name]) for name in ("open_interest", "iv", "gamma", "volume")}
    bid, ask = numbers["bid"], numbers["ask"]
    has_quote = ~np.isnan(bid) & ~np.isnan(ask)
    with np.errstate(invalid="ignore"):
        gamma_input = (has["iv"] & (numbers["iv"] > 0)) | has["gamma"]
    # Each row's completeness is one of 16 values (four flags): look it up instead of four
    # passes of float arithmetic. The table holds the very same float sums, and the mean
    # runs over the same array, so the score is the same to the last bit.
    flags = np.array([[(i >> bit) & 1 for bit in range(4)] for i in range(16)], dtype=bool)
    weights = 0.35 * flags[:, 0] + 0.35 * flags[:, 1] + 0.20 * flags[:, 2] + 0.10 * flags[:, 3]
    code = has["open_interest"].view(np.uint8) | (gamma_input.view(np.uint8) << 1)
    code |= has_quote.view(np.uint8) << 2
    code |= has["volume"].view(np.uint8) << 3
    completeness = float(np.mean(weights[code]))
    with np.errstate(invalid="ignore"):
        two_sided = np.flatnonzero(has_quote & (ask > 0))
    if two_sided.size:
        # In blocks that stay in cache; each row's test is the same arithmetic as before.
        ok = 0
        for start in range(0, two_sided.size, QUALITY_BLOCK):
            at = two_sided[start : start + QUALITY_BLOCK]
            b, a, k = bid[at], ask[at], strike[at]
            call = is_call[at]
            mid = (b + a) / 2
            intrinsic = np.where(call, np.maximum(spot - k, 0), np.maximum(k - spot, 0))
            tol = (a - b) / 2 + 0.005 * spot + 0.10 * k * np.maximum(years[at], 0)
            upper = np.where(call, spot, k) + tol
            ok += int(np.count_nonzero((mid >= intrinsic - tol) & (mid <= upper)))
        consistency = ok / two_sided.size
    else:
        consistency = 1.0
    return QualityScore(
        coverage=float(min(1.0, max(0.0, coverage))),
        completeness=completeness,
        consistency=consistency,
    )


STRIKE_COUNT_FIELDS = ("call_open_interest", "put_open_interest", "call_volume", "put_volume")
STRIKE_PRICE_FIELDS = ("call_bid", "call_ask", "put_bid", "put_ask")
STRIKE_EXPOSURE_FIELDS = ("gamma", "delta", "theta", "vega", "call_gex", "put_gex", "net_gex")
MAX_EXPOSURE = 1e16  # $10 quadrillion: past any real book


@dataclass
class ValidatedStrikes:
    """Strike-level rows that pass the seed's GEXStrike rules; NaN where a field is absent."""

    columns: dict[str, npt.NDArray[np.float64]]
    excluded: dict[str, int]
    examples: list[Problem]
    quality: QualityScore


def validate_strikes(
    table: pa.Table,
    *,
    source: str,
    locate: Callable[[int], str],
    rows_read: int,
    excluded: Mapping[str, int],
    examples: Sequence[Problem],
) -> ValidatedStrikes:
    """The seed's GEXStrike rules, column-wise, plus the structural ones that apply per strike.

    strike_price > 0; counts >= 0 and whole; bid/ask >= 0 and bid <= ask on each
    side; every greek/exposure finite and under the caps; a strike listed twice
    keeps its first row.
    """
    n = table.num_rows
    out_excluded = dict(excluded)
    out_examples = list(examples)
    if "strike_price" not in table.column_names:
        raise ChainError.at(
            source, "strike_price", "the strike-level file has no strike_price column"
        )
    if not any(c in table.column_names for c in ("gamma", "call_gex", "put_gex", "net_gex")):
        raise ChainError.at(
            source,
            "gamma",
            "a strike-level file needs gamma (shares per point) or call_gex/put_gex/net_gex",
        )
    cols = {name: _floats(table, name) for name in table.column_names if name != "source_row"}
    reason = np.zeros(n, dtype=np.int8)
    codes: list[str] = []

    def flag(name: str, mask: npt.NDArray[np.bool_]) -> None:
        codes.append(name)
        reason[(reason == 0) & mask] = len(codes)

    strike = cols["strike_price"]
    with np.errstate(invalid="ignore"):
        flag("non_positive_strike", ~(strike > 0))
        non_finite = np.zeros(n, dtype=bool)
        for name in table.column_names:
            if name != "source_row":
                non_finite |= _has_nan_or_inf(table, name)
        flag("non_finite", non_finite)
        implausible = strike > MAX_STRIKE
        for name in STRIKE_COUNT_FIELDS:
            if name in cols:
                implausible |= np.abs(cols[name]) > MAX_COUNT
        for name in STRIKE_PRICE_FIELDS:
            if name in cols:
                implausible |= np.abs(cols[name]) > MAX_PRICE
        for name in STRIKE_EXPOSURE_FIELDS:
            if name in cols:
                implausible |= np.abs(cols[name]) > MAX_EXPOSURE
        flag("implausible_value", implausible)
        for name, rule in (
            ("call_open_interest", "negative_open_interest"),
            ("put_open_interest", "negative_open_interest"),
            ("call_volume", "negative_volume"),
            ("put_volume", "negative_volume"),
        ):
            if name in cols:
                flag(rule, cols[name] < 0)
        for name in STRIKE_PRICE_FIELDS:
            if name in cols:
                flag("negative_price", cols[name] < 0)
        fractional = np.zeros(n, dtype=bool)
        for name in STRIKE_COUNT_FIELDS:
            if name in cols:
                v = cols[name]
                fractional |= ~np.isnan(v) & (v != np.floor(v))
        flag("fractional_count", fractional)
        for side in ("call", "put"):
            b, a = cols.get(f"{side}_bid"), cols.get(f"{side}_ask")
            if b is not None and a is not None:
                flag("bid_above_ask", (b > a) & (a > 0))
    alive = np.flatnonzero(reason == 0)
    if alive.size:
        _, first = np.unique(strike[alive], return_index=True)
        dup = np.ones(alive.size, dtype=bool)
        dup[first] = False
        mask = np.zeros(n, dtype=bool)
        mask[alive[dup]] = True
        flag("duplicate_contract", mask)
    src = _floats(table, "source_row").astype(np.int64)
    _tally_exclusions(
        reason,
        codes,
        lambda row: f"{source}: {locate(int(src[row]))}",
        out_excluded,
        out_examples,
    )
    keep = reason == 0
    if not keep.any():
        raise ChainError.nothing_usable(source, _why_empty(out_excluded, None), out_examples)
    kept_cols = {name: values[keep] for name, values in cols.items()}
    k = int(keep.sum())

    def has(name: str) -> npt.NDArray[np.bool_]:
        values = kept_cols.get(name)
        return np.zeros(k, dtype=bool) if values is None else ~np.isnan(values)

    exposure = has("gamma") | has("call_gex") | has("net_gex")
    completeness = float(
        np.mean(
            0.35 * (has("call_open_interest") | has("put_open_interest"))
            + 0.35 * exposure
            + 0.20 * (has("call_bid") & has("call_ask") & has("put_bid") & has("put_ask"))
            + 0.10 * (has("call_volume") | has("put_volume"))
        )
    )
    live = rows_read
    quality = QualityScore(
        coverage=min(1.0, k / live) if live > 0 else 0.0,
        completeness=completeness,
        consistency=1.0,
    )
    order = np.argsort(kept_cols["strike_price"], kind="stable")
    return ValidatedStrikes(
        columns={name: values[order] for name, values in kept_cols.items()},
        excluded=out_excluded,
        examples=out_examples,
        quality=quality,
    )
