"""`gexdaemon analyze FILE`: the ingest engine on a local file, printed for a trader, nothing stored.

`analyze_file` runs exactly what the daemon runs (`gexdaemon.ingest.compute_snapshot`);
`render_levels` prints the levels a desk reads first; `levels_json` gives the same
shape as the socket API's snapshot (surfaces.md "Snapshot fields"), plus what the
file taught us (`source_format`, `rows_read`, `excluded_rows`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gexdaemon.core.models import DomainContext, GexUnit, SignModel
from gexdaemon.core.settings import GexSettings
from gexdaemon.core.timeutil import NEW_YORK
from gexdaemon.ingest import SnapshotResult, compute_snapshot

ANALYZE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://gexdaemon.local/analyze")

_SIGN_TEXT = {
    SignModel.DEALER_LONG_CALLS_SHORT_PUTS: "dealers long calls / short puts",
    SignModel.DEALER_SHORT_CALLS_LONG_PUTS: "dealers short calls / long puts",
    SignModel.DEALER_SHORT_BOTH: "dealers short calls and puts",
}
_FILTER_TEXT = {
    "all": "all expiries",
    "0dte": "0DTE only",
    "ex_next": "excluding the next expiry",
    "ex_next_monthly": "excluding the next monthly",
}


def analyze_file(
    path: Path,
    *,
    symbol: str | None,
    settings: GexSettings,
    now: datetime | None = None,
    spot: float | None = None,
    snapshot_at: datetime | None = None,
) -> SnapshotResult:
    """Compute a file's snapshot without a daemon; raises ChainError for a bad file.

    The job id is derived from the file's path, size and modification time, so the
    printed snapshot id is stable for an unchanged file. Any well-formed ticker is
    accepted (a local file needs no optionable-symbol list).
    """
    path = Path(path)
    instant = now or datetime.now(UTC)
    try:
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        key = str(path)
    return compute_snapshot(
        path,
        job_id=uuid.uuid5(ANALYZE_NAMESPACE, key),
        symbol_hint=symbol,
        settings=settings,
        now=instant,
        context=DomainContext(now=instant, allow_any_symbol=True),
        spot_hint=spot,
        snapshot_at_hint=snapshot_at,
    )


def levels_json(result: SnapshotResult) -> dict[str, Any]:
    """The socket API's snapshot shape (JSON-ready), plus source_format, rows_read, excluded_rows."""
    snap = result.snapshot
    data = snap.model_dump(mode="json")
    out: dict[str, Any] = {
        "snapshot_id": data["snapshot_id"],
        "job_id": data["job_id"],
        "market_symbol": data["market_symbol"],
        "snapshot_date": data["snapshot_date"],
        "snapshot_time": data["snapshot_time"],
        "snapshot_at": snap.snapshot_at.isoformat(),
        "spot_price": data["spot_price"],
        "gex_unit": data["gex_unit"],
        "sign_model": data["sign_model"],
        "gamma_source": data["gamma_source"],
        "expiry_filter": data["expiry_filter"],
        "total_gex": data["total_gex"],
        "zero_gamma": data["zero_gamma"],
        "zero_gamma_crossings": data["zero_gamma_crossings"],
        "call_wall": data["call_wall"],
        "put_wall": data["put_wall"],
        "abs_gamma_strike": data["abs_gamma_strike"],
        "total_open_interest": data["total_open_interest"],
        "total_volume": data["total_volume"],
        "data_quality_score": data["data_quality_score"],
        "processed_at": data["processed_at"],
        "lake_path": None,
        "strikes": data["strikes"],
        "source_format": result.format_name,
        "rows_read": result.rows_read,
        "excluded_rows": dict(result.excluded),
    }
    return out


def format_exposure(value: float, unit: GexUnit) -> str:
    """-$19.16bn, +$412.5mm, -1.23mm shares: the scale a trader expects for the unit."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else "+"
    size = abs(value)
    if unit is GexUnit.SHARES_PER_POINT:
        if size >= 1e6:
            return f"{sign}{size / 1e6:,.2f}mm sh"
        return f"{sign}{size / 1e3:,.1f}k sh"
    if size >= 1e9:
        return f"{sign}${size / 1e9:,.2f}bn"
    if size >= 1e6:
        return f"{sign}${size / 1e6:,.1f}mm"
    return f"{sign}${size / 1e3:,.1f}k"


def _unit_text(unit: GexUnit) -> str:
    return {
        GexUnit.USD_PER_1PCT: "per 1% move",
        GexUnit.USD_PER_POINT: "per 1-point move",
        GexUnit.SHARES_PER_POINT: "per 1-point move",
    }[unit]


def _price(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if value % 1 else f"{value:,.0f}"


def render_levels(result: SnapshotResult, *, top: int = 10) -> str:
    """A compact text block: what a trader reads before the open."""
    snap = result.snapshot
    unit = snap.gex_unit
    spot = snap.spot_price
    local = snap.snapshot_at.astimezone(NEW_YORK)
    lines = [
        f"{snap.market_symbol}  GEX snapshot {local:%Y-%m-%d %H:%M} New York  "
        f"({result.format_name}, {result.source})",
        f"  spot          {_price(spot)}",
        f"  total GEX     {format_exposure(snap.total_gex, unit)} {_unit_text(unit)}   "
        f"[{snap.gamma_source.value} gamma, {_SIGN_TEXT[snap.sign_model]}, "
        f"{_FILTER_TEXT.get(snap.expiry_filter.value, snap.expiry_filter.value)}]",
    ]
    if snap.zero_gamma is not None:
        away = (snap.zero_gamma / spot - 1) * 100
        crossings = snap.zero_gamma_crossings
        text = f"  zero gamma    {_price(snap.zero_gamma)} ({away:+.2f}% from spot)"
        if len(crossings) > 1:
            text += f"   nearest of {len(crossings)} crossings: " + ", ".join(
                _price(c) for c in crossings
            )
        lines.append(text)
    elif result.format_name.startswith("strike_"):
        lines.append(
            "  zero gamma    n/a (a strike-level file has no IV or expiries to build a profile)"
        )
    else:
        lines.append("  zero gamma    none: the profile does not cross zero in the range searched")
    lines.append(
        f"  call wall     {_price(snap.call_wall)}    put wall {_price(snap.put_wall)}    "
        f"abs gamma strike {_price(snap.abs_gamma_strike)}"
    )
    excluded = dict(result.excluded)
    dropped = sum(excluded.values())
    lines.append(
        f"  quality       {snap.data_quality_score:.3f}   rows read {result.rows_read:,}, "
        f"excluded {dropped:,}   OI {snap.total_open_interest:,}   volume {snap.total_volume:,}"
    )
    if excluded:
        lines.append(
            "  excluded      "
            + ", ".join(f"{reason} {count:,}" for reason, count in sorted(excluded.items()))
        )
    ranked = sorted(snap.strikes, key=lambda s: abs(s.net_gex or 0.0), reverse=True)[:top]
    if ranked:
        lines.append(f"  top {len(ranked)} strikes by |net GEX|")
        lines.append(
            f"    {'strike':>10} {'net GEX':>12} {'call GEX':>12} {'put GEX':>12} "
            f"{'call OI':>10} {'put OI':>10}"
        )
        for s in ranked:
            call = "n/a" if s.call_gex is None else format_exposure(s.call_gex, unit)
            put = "n/a" if s.put_gex is None else format_exposure(s.put_gex, unit)
            lines.append(
                f"    {_price(s.strike_price):>10} {format_exposure(s.net_gex or 0.0, unit):>12} "
                f"{call:>12} {put:>12} {s.call_open_interest:>10,} {s.put_open_interest:>10,}"
            )
    return "\n".join(lines)
