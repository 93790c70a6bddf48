"""A snapshot as a trader reads it: levels first, units always, top strikes last.

One renderer for the socket API's snapshot shape, used by `gex`, `ingest`,
`submit --wait` and `analyze` (which builds the same shape without a daemon).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gexdaemon.cli.output import table
from gexdaemon.core.timeutil import NEW_YORK

UNIT_TEXT = {
    "usd_per_1pct": "per 1% move",
    "usd_per_point": "per 1-point move",
    "shares_per_point": "shares per 1-point move",
}


def money(value: float | None, unit: str = "usd_per_1pct") -> str:
    if value is None:
        return "-"
    if unit == "shares_per_point":
        scale = next(
            ((d, s) for d, s in ((1e9, "bn"), (1e6, "mm"), (1e3, "k")) if abs(value) >= d),
            (1.0, ""),
        )
        return f"{value / scale[0]:,.2f}{scale[1]} shares"
    for div, suffix in ((1e9, "bn"), (1e6, "mm"), (1e3, "k")):
        if abs(value) >= div:
            return f"{'-' if value < 0 else ''}${abs(value) / div:,.2f}{suffix}"
    return f"{'-' if value < 0 else ''}${abs(value):,.0f}"


def level(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")


def _when(snap: dict[str, Any]) -> str:
    at = snap.get("snapshot_at")
    if isinstance(at, str):
        try:
            local = datetime.fromisoformat(at).astimezone(NEW_YORK)
            return local.strftime("%Y-%m-%d %H:%M:%S ET")
        except ValueError:
            return at
    return f"{snap.get('snapshot_date', '')} {snap.get('snapshot_time', '')} ET"


def render_snapshot(snap: dict[str, Any], *, top: int = 10) -> str:
    unit = str(snap.get("gex_unit", "usd_per_1pct"))
    crossings = snap.get("zero_gamma_crossings") or []
    zero = snap.get("zero_gamma")
    lines = [
        f"{snap.get('market_symbol')}  {_when(snap)}  spot {level(snap.get('spot_price'))}"
        f"  (snapshot {str(snap.get('snapshot_id', ''))[:8]})",
        f"total GEX    {money(snap.get('total_gex'), unit)} {UNIT_TEXT.get(unit, unit)}"
        f"  [{snap.get('sign_model')}, gamma {snap.get('gamma_source')}, expiries {snap.get('expiry_filter')}]",
        f"zero gamma   {level(zero)}"
        + (
            f"  (crossings: {', '.join(level(c) + (' *' if c == zero else '') for c in crossings)}; * nearest spot)"
            if len(crossings) > 1
            else ("" if crossings else "  (the profile does not cross zero in range)")
        ),
        f"call wall    {level(snap.get('call_wall'))}    put wall {level(snap.get('put_wall'))}"
        f"    abs gamma strike {level(snap.get('abs_gamma_strike'))}",
        f"quality      {float(snap.get('data_quality_score') or 0.0):.3f}    open interest {snap.get('total_open_interest', 0):,}"
        f"    volume {snap.get('total_volume', 0):,}",
    ]
    excluded = snap.get("excluded_rows") or {}
    if snap.get("rows_read") is not None:
        dropped = sum(excluded.values())
        why = ", ".join(
            f"{reason} {n:,}" for reason, n in sorted(excluded.items(), key=lambda kv: -kv[1])[:6]
        )
        lines.append(
            f"rows         {snap['rows_read']:,} read from {snap.get('source_format') or 'the file'}"
            + (f"; {dropped:,} excluded ({why})" if dropped else "; none excluded")
        )
    strikes = snap.get("strikes") or []
    if strikes and top > 0:
        ranked = sorted(strikes, key=lambda s: abs(s.get("net_gex") or 0.0), reverse=True)[:top]
        rows = [
            {
                "strike": level(s["strike_price"]),
                "call": money(s.get("call_gex"), unit),
                "put": money(s.get("put_gex"), unit),
                "net": money(s.get("net_gex"), unit),
                "call_oi": s.get("call_open_interest"),
                "put_oi": s.get("put_open_interest"),
            }
            for s in sorted(ranked, key=lambda s: s["strike_price"])
        ]
        lines.append("")
        lines.append(f"top {len(rows)} strikes by |net GEX|:")
        lines.append(
            table(
                rows,
                [
                    ("strike", "strike"),
                    ("call", "call GEX"),
                    ("put", "put GEX"),
                    ("net", "net GEX"),
                    ("call_oi", "call OI"),
                    ("put_oi", "put OI"),
                ],
            )
        )
    return "\n".join(lines)
