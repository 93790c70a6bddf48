"""A deterministic desk for snapshot tests and the benchmark, in the daemon's wire shapes.

Builds what `GET /v1/events` sends first (the state snapshot), a few events after
it, and the answers to the read calls the views make, as a `ReplayDaemon`
plays them. Every id and instant is fixed, so a screen drawn from it with the
clock pinned at `DESK_NOW` is the same on every run. The shapes are the ones
the real daemon sends (`test_live.py` checks the keys against a live daemon).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gexdaemon.client.aio import decode_message
from gexdaemon.protocol import shapes as s
from gextui.replay import ReplayDaemon, response_key

DESK_NOW = datetime(2026, 11, 26, 15, 0, 0, tzinfo=UTC)  # 10:00 in New York
NAMESPACE = uuid.UUID("6f1f1c55-6f0e-4c55-9d3b-0f5d2f3ad001")
FEED = "https://cdn.cboe.com"
SLOW_FEED = "http://feeds.example-broker.test:8080"
# The scheduler's words for why a job may miss its deadline (gexdaemon.core.scheduler).
NDX_RISK = "cdn.cboe.com runs at most 2 at once"
SPY_RISK = "source feeds.example-broker.test:8080 circuit open until 10:00:05 ET"
LEVEL_SLA = {"critical": 30.0, "high": 300.0, "medium": 1800.0, "low": None}
# Jobs that stand in the snapshot and again, a little later, in the events after it.
NDX_WAITING: dict[str, Any] = {
    "level": "critical",
    "symbol": "NDX",
    "data_type": "real_time",
    "at_risk": True,
    "at_risk_reason": NDX_RISK,
    "path": "/api/global/delayed_quotes/options/_NDX.json",
}
SPY_RETRYING: dict[str, Any] = {
    "level": "high",
    "status": "queued",
    "symbol": "SPY",
    "at_risk": True,
    "at_risk_reason": SPY_RISK,
    "retries": 1,
    "source": SLOW_FEED,
    "path": "/chains/SPY.csv",
    "phase": "urgent",
}


def ident(kind: str, n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}-{n}"))


def at(seconds_before_now: float) -> str:
    return (DESK_NOW - timedelta(seconds=seconds_before_now)).isoformat()


def job_summary(
    n: int,
    *,
    level: str,
    status: str,
    symbol: str = "SPX",
    data_type: str = "snapshot",
    age_s: float = 10.0,
    source: str = FEED,
    path: str = "/api/global/delayed_quotes/options/_SPX.json",
    retries: int = 0,
    at_risk: bool = False,
    at_risk_reason: str | None = None,
    sla_status: str | None = None,
    phase: str | None = None,
    score: float | None = None,
    error: str | None = None,
    ran_s: float | None = None,
) -> dict[str, Any]:
    sla = LEVEL_SLA[level]
    requested = DESK_NOW - timedelta(seconds=age_s)
    started = requested + timedelta(seconds=min(age_s, 2.0)) if status != "queued" else None
    completed = (
        started + timedelta(seconds=ran_s or 0.4)
        if status in ("completed", "failed", "cancelled") and started
        else None
    )
    default_score = {"critical": 0.9, "high": 0.7, "medium": 0.45, "low": 0.19}[level]
    return {
        "job_id": ident("job", n),
        "request_id": ident("request", n),
        "status": status,
        "priority_level": level,
        "priority_score": score if score is not None else default_score,
        "market_symbol": symbol,
        "data_type": data_type,
        "source_url": f"{source}{path}",
        "source": source,
        "origin": "api",
        "requested_at": requested.isoformat(),
        "queued_at": requested.isoformat(),
        "started_at": started.isoformat() if started else None,
        "completed_at": completed.isoformat() if completed else None,
        "deadline": (requested + timedelta(seconds=sla)).isoformat() if sla else None,
        "sla_status": sla_status or ("pending" if sla else "none"),
        "at_risk": at_risk,
        "at_risk_reason": at_risk_reason,
        "retry_count": retries,
        "error_message": error,
        "dispatch_phase": phase or ("critical" if level == "critical" else "floor"),
        "next_attempt_at": None,
        "estimated_processing_time_s": 0.45,
        "processing_duration_s": (completed - started).total_seconds()
        if completed and started
        else None,
        "records_processed": 0,
        "snapshot_id": None,
    }


def live_jobs() -> list[dict[str, Any]]:
    jobs = [
        job_summary(1, level="critical", status="processing", data_type="real_time", age_s=4.0),
        job_summary(2, status="queued", age_s=21.5, **NDX_WAITING),
        job_summary(
            3,
            level="high",
            status="processing",
            symbol="SPY",
            age_s=12.0,
            path="/api/global/delayed_quotes/options/SPY.json",
        ),
        job_summary(4, age_s=290.0, **SPY_RETRYING),
        job_summary(
            5,
            level="high",
            status="queued",
            symbol="SPX",
            age_s=340.0,
            sla_status="breached",
            retries=2,
            source=SLOW_FEED,
            path="/chains/SPX.csv",
            phase="fair",
        ),
    ]
    for i in range(6, 18):
        jobs.append(
            job_summary(
                i,
                level="medium",
                status="queued",
                symbol=("SPX", "NDX", "SPY")[i % 3],
                age_s=30.0 + 17.0 * i,
                path=f"/chains/{('SPX', 'NDX', 'SPY')[i % 3]}_quotedata.csv",
            )
        )
    for i in range(18, 30):
        jobs.append(
            job_summary(
                i,
                level="low",
                status="queued",
                symbol=("SPX", "SPY")[i % 2],
                data_type="historical",
                age_s=60.0 + 23.0 * i,
                path=f"/history/{('SPX', 'SPY')[i % 2]}_contracts.parquet",
            )
        )
    return jobs


def recent_jobs() -> list[dict[str, Any]]:
    return [
        job_summary(
            40,
            level="critical",
            status="completed",
            data_type="real_time",
            age_s=8.0,
            sla_status="met",
        ),
        job_summary(
            41,
            level="medium",
            status="failed",
            age_s=95.0,
            sla_status="breached",
            source=SLOW_FEED,
            path="/chains/missing.json",
            error="not_found: the source answered 404 Not Found for http://feeds.example-broker.test:8080/chains/missing.json; not retried: check the URL",
        ),
        job_summary(
            42, level="high", status="completed", symbol="SPY", age_s=120.0, sla_status="met"
        ),
        job_summary(
            43, level="low", status="cancelled", symbol="NDX", data_type="historical", age_s=200.0
        ),
        job_summary(
            44,
            level="medium",
            status="failed",
            symbol="NDX",
            age_s=400.0,
            retries=3,
            sla_status="breached",
            source=SLOW_FEED,
            path="/chains/NDX.csv",
            error="server_error: the source answered 503 Service Unavailable; gave up after 3 retries (the limit is 3)",
        ),
    ]


def level_rows() -> list[dict[str, Any]]:
    def row(
        level: str,
        depth: int,
        in_flight: int,
        at_risk: int,
        oldest: float | None,
        next_deadline: float | None,
        met: float | None,
        done: float,
        breaches: int,
    ) -> dict[str, Any]:
        return {
            "level": level,
            "depth": depth,
            "delayed": 0,
            "in_flight": in_flight,
            "at_risk": at_risk,
            "oldest_wait_s": oldest,
            "next_deadline_in_s": next_deadline,
            "sla_s": LEVEL_SLA[level],
            "sla_met_ratio": met,
            "finished_last_hour": int(done * 60),
            "breaches_last_hour": breaches,
            "throughput_per_min": done,
            "met_total": int(done * 60 * (met or 1.0)),
            "breached_total": breaches,
            "at_risk_precision": None,
        }

    return [
        row("critical", 1, 1, 1, 21.5, 8.5, 1.0, 6.2, 0),
        row("high", 2, 1, 1, 340.0, -40.0, 0.975, 2.4, 1),
        row("medium", 12, 0, 0, 234.0, 1566.0, 0.93, 11.8, 2),
        row("low", 12, 0, 0, 726.0, None, None, 8.1, 0),
    ]


def queues() -> dict[str, Any]:
    return {
        "levels": level_rows(),
        "workers": {"total": 4, "busy": 2},
        "phases": {"critical": 118, "critical_late": 0, "floor": 420, "urgent": 12, "fair": 305},
        "sources": [
            {
                "source": FEED,
                "queued": 24,
                "in_flight": 2,
                "cap": 2,
                "tokens": 38.5,
                "access": "allowed",
            },
            {
                "source": SLOW_FEED,
                "queued": 3,
                "in_flight": 0,
                "cap": 2,
                "tokens": 40.0,
                "access": "blocked",
            },
        ],
    }


def source(
    n: int,
    base_url: str,
    name: str,
    *,
    total: int,
    ok: int,
    ema: float | None,
    state: str = "closed",
    failures: int = 0,
    disabled: bool = False,
    last_ok_s: float | None = 2.0,
) -> dict[str, Any]:
    opened = at(25.0) if state != "closed" else None
    return {
        "source_id": ident("source", n),
        "base_url": base_url,
        "name": name,
        "total_requests": total,
        "successful_requests": ok,
        "last_successful_fetch": at(last_ok_s) if last_ok_s is not None else None,
        "average_response_time": ema,
        "consecutive_failures": failures,
        "circuit_state": state,
        "circuit_opened_at": opened,
        "manually_disabled": disabled,
        "created_at": at(3600.0),
        "updated_at": at(1.0),
        "is_active": not disabled and state != "open",
        "reliability_score": ok / total if total else 1.0,
        "average_response_time_s": ema,
        "access": "blocked" if disabled or state == "open" else "allowed",
    }


def sources() -> list[dict[str, Any]]:
    return [
        source(1, FEED, "cdn.cboe.com", total=1204, ok=1199, ema=0.184),
        source(
            2,
            SLOW_FEED,
            "feeds.example-broker.test:8080",
            total=88,
            ok=61,
            ema=2.75,
            state="open",
            failures=5,
            last_ok_s=410.0,
        ),
        source(3, "file://localhost", "local files", total=14, ok=14, ema=0.0004, last_ok_s=95.0),
        source(
            4,
            "https://backup-quotes.example.test",
            "backup-quotes.example.test",
            total=3,
            ok=3,
            ema=0.61,
            disabled=True,
            last_ok_s=3000.0,
        ),
    ]


def rules() -> list[dict[str, Any]]:
    def rule(
        n: int,
        name: str,
        condition: str,
        score: float,
        description: str,
        *,
        active: bool = True,
        version: int = 1,
    ) -> dict[str, Any]:
        return {
            "rule_id": ident("rule", n),
            "name": name,
            "description": description,
            "condition": condition,
            "priority_score": score,
            "is_active": active,
            "created_at": at(86400.0),
            "updated_at": at(5400.0 if version > 1 else 86400.0),
            "version": version,
        }

    return [
        rule(
            1,
            "current-day index data",
            "data_type == 'real_time' and market_symbol in ['NDX', 'SPX']",
            0.9,
            "High priority for current day data on the big index complexes",
        ),
        rule(
            2,
            "high volume strikes",
            "open_interest > 10000 and volume > 5000",
            0.7,
            "Medium priority for high volume strikes",
        ),
        rule(
            3,
            "opening half hour",
            "ny_hour >= 9.5 and ny_hour < 10",
            0.8,
            "The open moves fast",
            version=3,
        ),
        rule(
            4,
            "backup feed",
            "source_host == 'backup-quotes.example.test'",
            0.3,
            "Demote the backup",
            active=False,
        ),
    ]


SPOT = 6850.25
STRIKES = [6700.0 + 10.0 * i for i in range(31)]


def strikes() -> list[dict[str, Any]]:
    """A smooth, realistic-looking profile: puts dominate below spot, calls above."""
    out = []
    for k in STRIKES:
        gamma = math.exp(-(((k - SPOT) / 70.0) ** 2))
        call_oi = int(3000 + 9000 * (1 / (1 + math.exp(-(k - 6880) / 25.0))))
        put_oi = int(3000 + 14000 * (1 / (1 + math.exp((k - 6830) / 25.0))))
        call_gex = 2.1e5 * gamma * call_oi
        put_gex = -2.0e5 * gamma * put_oi
        out.append(
            {
                "strike_price": k,
                "call_open_interest": call_oi,
                "put_open_interest": put_oi,
                "call_volume": call_oi // 4,
                "put_volume": put_oi // 4,
                "call_bid": 0.0,
                "call_ask": 0.0,
                "put_bid": 0.0,
                "put_ask": 0.0,
                "gamma": gamma,
                "delta": 0.0,
                "theta": 0.0,
                "vega": 0.0,
                "call_gex": round(call_gex, 2),
                "put_gex": round(put_gex, 2),
                "net_gex": round(call_gex + put_gex, 2),
            }
        )
    return out


def snapshot_summary(
    symbol: str,
    n: int,
    *,
    spot: float,
    total: float,
    zero: float | None,
    call_wall: float,
    put_wall: float,
    age_s: float = 3.0,
) -> dict[str, Any]:
    return {
        "snapshot_id": ident(f"snapshot-{symbol}", n),
        "job_id": ident("job", 40),
        "market_symbol": symbol,
        "snapshot_date": "2026-11-26",
        "snapshot_time": "09:59:45",
        "snapshot_at": (DESK_NOW - timedelta(seconds=15)).isoformat(),
        "spot_price": spot,
        "gex_unit": "usd_per_1pct",
        "sign_model": "dealer_long_calls_short_puts",
        "gamma_source": "model",
        "expiry_filter": "all",
        "total_gex": total,
        "zero_gamma": zero,
        "zero_gamma_crossings": [zero] if zero is not None else [],
        "call_wall": call_wall,
        "put_wall": put_wall,
        "abs_gamma_strike": call_wall,
        "total_open_interest": 15073261,
        "total_volume": 1800140,
        "data_quality_score": 0.987,
        "processed_at": (DESK_NOW - timedelta(seconds=age_s)).isoformat(),
        "lake_path": None,
    }


def snapshots() -> list[dict[str, Any]]:
    profile = strikes()
    total = sum(s["net_gex"] for s in profile)
    walls = sorted(profile, key=lambda s: s["call_gex"])
    put_wall = min(profile, key=lambda s: s["put_gex"])["strike_price"]
    return [
        snapshot_summary(
            "SPX",
            7,
            spot=SPOT,
            total=total,
            zero=6866.4,
            call_wall=walls[-1]["strike_price"],
            put_wall=put_wall,
        ),
        snapshot_summary(
            "NDX",
            3,
            spot=24150.75,
            total=-2.39e9,
            zero=25284.52,
            call_wall=25000.0,
            put_wall=24000.0,
            age_s=9.0,
        ),
        snapshot_summary(
            "SPY",
            5,
            spot=684.57,
            total=1.86e9,
            zero=679.4,
            call_wall=690.0,
            put_wall=680.0,
            age_s=6.0,
        ),
    ]


def health() -> dict[str, Any]:
    return {
        "status": "ok",
        "version": "0.1.0",
        "uptime_s": 5400.0,
        "instance": "desk-7:4242:6b1e0a",
        "pid": 4242,
        "socket": "/run/gexd/gexd.sock",
        "data_dir": "/srv/gexd",
        "drop_dir": "/srv/gexd/drop",
        "workers": 4,
        "queued": 27,
        "in_flight": 2,
        "store": {"commits": 1200, "changes": 5100, "last_commit_ms": 3.2},
        "events": {"last_seq": 1000, "subscribers": 1},
    }


def state_snapshot(*, seq: int = 1000, jobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "seq": seq,
        "at": DESK_NOW.isoformat(),
        "state": {
            "health": health(),
            "queues": queues(),
            "jobs": live_jobs() if jobs is None else jobs,
            "recent": recent_jobs(),
            "sources": sources(),
            "rules": rules(),
            "snapshots": snapshots(),
        },
    }


def events_after(seq: int = 1000) -> list[dict[str, Any]]:
    """A few seconds of desk life after the snapshot."""
    breached = job_summary(4, age_s=301.0, sla_status="breached", **SPY_RETRYING)
    started = job_summary(2, status="processing", age_s=22.0, **NDX_WAITING)
    flaky = sources()[1] | {"message": "5 failures in a row: the circuit is open for 30 s"}
    out = [
        ("sla.breached", breached | {"late_by_s": 1.0}),
        ("job.started", started | {"waited_s": 21.9}),
        ("source.opened", flaky),
        (
            "drop.rejected",
            {
                "file": "spx_weird.txt",
                "error": {
                    "code": "unknown_format",
                    "message": "no chain format matches spx_weird.txt",
                    "details": [],
                    "request_id": "",
                },
            },
        ),
    ]
    return [
        {"seq": seq + i + 1, "type": kind, "at": DESK_NOW.isoformat(), "data": data}
        for i, (kind, data) in enumerate(out)
    ]


def job_detail(job: dict[str, Any]) -> dict[str, Any]:
    requested = job["requested_at"]
    history = [
        {
            "job_id": job["job_id"],
            "seq": 1,
            "occurred_at": requested,
            "from_status": None,
            "to_status": "queued",
            "reason": "submitted",
        }
    ]
    if job.get("started_at"):
        history.append(
            {
                "job_id": job["job_id"],
                "seq": 2,
                "occurred_at": job["started_at"],
                "from_status": "queued",
                "to_status": "processing",
                "reason": "",
            }
        )
    explanation = {
        "scored_at": requested,
        "matched": [
            {
                "rule_id": ident("rule", 1),
                "name": "current-day index data",
                "version": 1,
                "score": 0.9,
            }
        ]
        if job["priority_level"] == "critical"
        else [],
        "base": {
            "score": 0.9 if job["priority_level"] == "critical" else 0.45,
            "from": "rules" if job["priority_level"] == "critical" else "default_score",
            "data_type": job["data_type"],
            "combine": "max",
        },
        "reliability": {"score": 0.996, "weight": 0.1, "adjustment": -0.0004},
        "clamped": False,
        "score": job["priority_score"],
        "level": job["priority_level"],
        "thresholds": {"critical": 0.85, "high": 0.65, "medium": 0.4},
        "rules": {"active": 3, "fingerprint": "79251ac1dc5977f0"},
    }
    return {
        "job": {
            k: job[k]
            for k in (
                "job_id",
                "request_id",
                "status",
                "priority_level",
                "requested_at",
                "queued_at",
                "started_at",
                "completed_at",
                "records_processed",
                "error_message",
                "retry_count",
                "deadline",
                "sla_status",
                "at_risk",
                "dispatch_phase",
                "next_attempt_at",
            )
        }
        | {
            "data_size_bytes": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "version": len(history),
            "updated_at": history[-1]["occurred_at"],
            "processing_duration": job["processing_duration_s"],
        },
        "request": {
            "request_id": job["request_id"],
            "source_url": job["source_url"],
            "data_type": job["data_type"],
            "market_symbol": job["market_symbol"],
            "requested_at": requested,
            "priority_score": job["priority_score"],
            "priority_level": job["priority_level"],
            "estimated_processing_time": job["estimated_processing_time_s"],
            "metadata": {"desk": "index vol"},
            "source_id": None,
            "deadline": job["deadline"],
            "origin": "api",
            "explanation": explanation,
        },
        "history": history,
        "snapshot_id": None,
        "live": job,
    }


def cluster() -> dict[str, Any]:
    """Three nodes on one Redis; the third one's heartbeat is late."""
    nodes = [
        ("desk-a", "h-a", 8, 6, 0.4, True),
        ("desk-b", "h-b", 8, 8, 0.7, False),
        ("desk-c", "h-c", 4, 1, 3.6, False),
    ]
    return {
        "mode": "cluster",
        "cluster": "desk",
        "node_id": "desk-a",
        "leader": "desk-a",
        "epoch": 7,
        "nodes": [
            {
                "node_id": node,
                "host": host,
                "slots": slots,
                "busy": busy,
                "heartbeat_age_s": age,
                "leader": leads,
                "version": "0.1.0",
            }
            for node, host, slots, busy, age, leads in nodes
        ],
        "redis": {
            "url": "redis://10.0.0.5:6379/0",
            "version": "7.0.15",
            "appendonly": True,
            "appendfsync": "always",
            "durable": True,
            "used_memory": "2.1M",
            "ops_per_s": 410,
            "warning": "",
        },
    }


def responses() -> dict[str, Any]:
    spx = snapshots()[0] | {"strikes": strikes()}
    out: dict[str, Any] = {
        "queues": queues(),
        "sla": {
            "breaches": [
                recent_jobs()[1] | {"late_by_s": -1705.0},
                recent_jobs()[4] | {"late_by_s": -1400.0},
            ],
            "at_risk": [],
            "levels": [],
        },
        "cluster": cluster(),
        response_key("snapshot", spx["snapshot_id"]): spx,
        response_key("latest_snapshot", "SPX", None): spx,
        response_key("gex_history", "SPX"): {
            "symbol": "SPX",
            "points": [
                {
                    "snapshot_at": at(15.0 * (40 - i)),
                    "total_gex": -6.0e9 + 4.5e8 * i + 1.5e9 * math.sin(i / 3.0),
                }
                for i in range(40)
            ],
        },
    }
    for job in live_jobs() + recent_jobs():
        out[response_key("job", job["job_id"])] = job_detail(job)
    return out


def replay_daemon(**snapshot_options: Any) -> ReplayDaemon:
    return ReplayDaemon(
        [state_snapshot(**snapshot_options), *events_after()],
        responses(),
        label="/run/gexd/gexd.sock",
    )


def wire(message: dict[str, Any]) -> s.StateMessage | s.EventMessage:
    """A message as the client hands it over: decoded from the socket's JSON into its shapes."""
    return decode_message(msgspec.json.encode(message))


def state(**snapshot_options: Any) -> s.StateMessage:
    decoded = wire(state_snapshot(**snapshot_options))
    assert isinstance(decoded, s.StateMessage)
    return decoded


def event(seq: int, kind: str, data: Any) -> s.EventMessage:
    """One numbered event; `data` a dict in the wire's spelling or a shape."""
    if isinstance(data, msgspec.Struct):
        data = msgspec.to_builtins(data)
    decoded = wire({"seq": seq, "type": kind, "at": DESK_NOW.isoformat(), "data": data})
    assert isinstance(decoded, s.EventMessage)
    return decoded
