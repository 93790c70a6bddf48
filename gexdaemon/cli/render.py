"""The CLI's human output: each wire shape as a trader reads it (levels first, units always).

Every figure is worded by `gexdaemon.readout`, the same words the dashboard
uses. `--json` bypasses all of this and prints the shapes as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from gexdaemon import readout as ro
from gexdaemon.cli.output import Col, key_values, table
from gexdaemon.core.vocab import GexUnit, PriorityLevel, SlaStatus
from gexdaemon.protocol import shapes as s

TOP_STRIKES = 10


def _now() -> datetime:
    return datetime.now(UTC)


# -- snapshots -------------------------------------------------------------------------


def snapshot_text(snap: s.SnapshotSummary, *, top: int = TOP_STRIKES) -> str:
    """A snapshot's levels, totals, provenance and (with strikes) the top strikes by |net GEX|."""
    unit = snap.gex_unit
    crossings = snap.zero_gamma_crossings
    zero = snap.zero_gamma
    if len(crossings) > 1:
        listed = ", ".join(ro.price(c) + (" *" if c == zero else "") for c in crossings)
        zero_note = f"  (crossings: {listed}; * nearest spot)"
    elif not crossings:
        zero_note = "  (the profile does not cross zero in range)"
    else:
        zero_note = ""
    lines = [
        f"{snap.market_symbol}  {ro.market_time(snap.snapshot_at)}  spot {ro.price(snap.spot_price)}"
        f"  (snapshot {ro.short_id(snap.snapshot_id)})",
        f"total GEX    {ro.gex(snap.total_gex, unit)} ({ro.unit_words(unit)})"
        f"  [{snap.sign_model}, gamma {snap.gamma_source}, expiries {snap.expiry_filter}]",
        f"zero gamma   {ro.price(zero)}{zero_note}",
        f"call wall    {ro.price(snap.call_wall)}    put wall {ro.price(snap.put_wall)}"
        f"    abs gamma strike {ro.price(snap.abs_gamma_strike)}",
        f"quality      {snap.data_quality_score:.3f}    open interest "
        f"{ro.count(snap.total_open_interest)}    volume {ro.count(snap.total_volume)}",
    ]
    if snap.rows_read is not None:
        excluded = snap.excluded_rows or {}
        dropped = sum(excluded.values())
        why = ", ".join(
            f"{reason} {n:,}" for reason, n in sorted(excluded.items(), key=lambda kv: -kv[1])[:6]
        )
        lines.append(
            f"rows         {snap.rows_read:,} read from {snap.source_format or 'the file'}"
            + (f"; {dropped:,} excluded ({why})" if dropped else "; none excluded")
        )
    strikes = getattr(snap, "strikes", None) or []
    if strikes and top > 0:
        ranked = sorted(strikes, key=lambda k: abs(k.net_gex or 0.0), reverse=True)[:top]
        lines += ["", f"top {len(ranked)} strikes by |net GEX| ({ro.unit_words(unit)}):"]
        lines.append(table(ranked, _strike_columns(unit)))
    return "\n".join(lines)


def _strike_columns(unit: GexUnit) -> list[Col[s.StrikeRow]]:
    return [
        Col("strike", lambda k: ro.price(k.strike_price), right=True),
        Col("net GEX", lambda k: ro.gex(k.net_gex, unit), right=True),
        Col("call GEX", lambda k: ro.gex(k.call_gex, unit), right=True),
        Col("put GEX", lambda k: ro.gex(k.put_gex, unit), right=True),
        Col("call OI", lambda k: ro.count(k.call_open_interest), right=True),
        Col("put OI", lambda k: ro.count(k.put_open_interest), right=True),
    ]


def snapshots_table(snaps: Sequence[s.SnapshotSummary]) -> str:
    unit = snaps[0].gex_unit if snaps else GexUnit.USD_PER_1PCT
    return table(
        snaps,
        [
            Col("snapshot", lambda x: ro.short_id(x.snapshot_id), keep=True),
            Col("symbol", lambda x: x.market_symbol),
            Col("market time", lambda x: ro.market_time(x.snapshot_at)),
            Col("spot", lambda x: ro.price(x.spot_price), right=True),
            Col(
                f"total GEX ({ro.unit_words(unit)})",
                lambda x: ro.gex(x.total_gex, x.gex_unit),
                right=True,
            ),
            Col("zero gamma", lambda x: ro.price(x.zero_gamma), right=True),
            Col("call wall", lambda x: ro.price(x.call_wall), right=True),
            Col("put wall", lambda x: ro.price(x.put_wall), right=True),
            Col("quality", lambda x: f"{x.data_quality_score:.3f}", right=True),
        ],
    )


# -- requests and jobs -------------------------------------------------------------------


def accepted_table(items: Sequence[s.Accepted]) -> str:
    now = _now()
    body = table(
        items,
        [
            Col("job", lambda a: ro.short_id(a.job_id), keep=True),
            Col("symbol", lambda a: a.market_symbol),
            Col("level", lambda a: ro.words(a.priority_level)),
            Col("score", lambda a: f"{a.priority_score:.3f}", right=True),
            Col("deadline", lambda a: _deadline(a.deadline, now)),
            Col("est", lambda a: ro.span(a.estimated_processing_time_s), right=True),
            Col("at risk", lambda a: (a.at_risk_reason or "yes") if a.at_risk else "no"),
        ],
    )
    replayed = [a for a in items if a.replayed]
    if not replayed:
        return body
    if len(replayed) == len(items):
        note = "nothing new: the idempotency key was used before; this is the first job"
    else:
        note = (
            f"{len(replayed)} of {len(items)} were made before under their idempotency keys "
            f"(jobs {', '.join(ro.short_id(a.job_id) for a in replayed[:5])}"
            f"{', ...' if len(replayed) > 5 else ''}); the others are new"
        )
    return f"{body}\n{note}"


def _deadline(deadline: datetime | None, now: datetime) -> str:
    if deadline is None:
        return "none (best effort)"
    return f"{ro.clock_time(deadline)} ({ro.countdown(now, deadline)})"


def _status(job: s.JobRow) -> str:
    text = ro.words(job.status)
    if job.sla_status is SlaStatus.BREACHED:
        return text + " BREACHED"
    return text + " AT RISK" if job.at_risk and job.status.is_live else text


def jobs_table(jobs: Sequence[s.JobRow]) -> str:
    now = _now()
    return table(
        jobs,
        [
            Col("job", lambda j: ro.short_id(j.job_id), keep=True),
            Col("level", lambda j: ro.words(j.priority_level)),
            Col("symbol", lambda j: j.market_symbol),
            Col("status", _status),
            Col("queued", lambda j: ro.day_time(j.queued_at, now)),
            Col("deadline", lambda j: ro.day_time(j.deadline, now) if j.deadline else "-"),
            Col("retries", lambda j: str(j.retry_count), right=True),
            Col("took", lambda j: ro.span(j.processing_duration_s), right=True),
            Col("error / why", lambda j: j.error_message or j.at_risk_reason or ""),
        ],
    )


def job_text(found: s.JobDetail, explanation: str) -> str:
    j, r = found.job, found.request
    now = _now()
    deadline = "none (LOW is best effort)" if j.deadline is None else _deadline(j.deadline, now)
    pairs = [
        ("job", f"{ro.short_id(j.job_id)}  ({j.job_id})"),
        ("request", str(j.request_id)),
        ("status", ro.words(j.status)),
        ("level", ro.words(j.priority_level)),
        ("score", f"{r.priority_score:.3f}" if r else "-"),
        ("symbol", r.market_symbol if r else "-"),
        ("type", r.data_type.value if r else "-"),
        ("source", r.source_url if r else "-"),
        ("requested", ro.market_time(j.requested_at)),
        ("queued", ro.market_time(j.queued_at)),
        ("deadline", deadline),
        ("sla", ro.words(j.sla_status)),
        (
            "at risk",
            ("yes: " + (found.live.at_risk_reason or "forecast past the deadline"))
            if j.at_risk and found.live is not None
            else ("yes" if j.at_risk else "no"),
        ),
        ("phase", ro.words(j.dispatch_phase) if j.dispatch_phase else "-"),
        ("retries", str(j.retry_count)),
        ("started", ro.market_time(j.started_at)),
        ("finished", ro.market_time(j.completed_at)),
        ("took", ro.span(j.processing_duration)),
        ("records", ro.count(j.records_processed)),
        ("error", j.error_message or "-"),
        ("snapshot", found.snapshot_id or "-"),
    ]
    history = table(
        found.history,
        [
            Col("#", lambda e: str(e.seq), right=True),
            Col("at", lambda e: ro.market_time(e.occurred_at)),
            Col("from", lambda e: ro.words(e.from_status) if e.from_status else "-"),
            Col("to", lambda e: ro.words(e.to_status)),
            Col("reason", lambda e: e.reason),
        ],
    )
    return f"{key_values(pairs)}\n\nwhy this level: {explanation}\n\n{history}"


# -- the daemon --------------------------------------------------------------------------


def status_text(health: s.Health, queues: s.Queues) -> str:
    head = key_values(
        [
            ("status", health.status),
            ("version", health.version),
            ("uptime", ro.span(health.uptime_s)),
            ("socket", health.socket),
            ("data dir", health.data_dir),
            ("workers", f"{queues.workers.busy} busy of {queues.workers.total}"),
        ]
    )
    levels = table(
        queues.levels,
        [
            Col("level", lambda q: ro.words(q.level)),
            Col("queued", lambda q: ro.count(q.depth), right=True),
            Col("running", lambda q: ro.count(q.in_flight), right=True),
            Col("at risk", lambda q: ro.count(q.at_risk), right=True),
            Col("oldest wait", lambda q: ro.span(q.oldest_wait_s), right=True),
            Col("next deadline", _next_deadline, right=True),
            Col("SLA met 1h", _met, right=True),
            Col("breaches 1h", lambda q: ro.count(q.breaches_last_hour), right=True),
            Col("done/min 5m", lambda q: f"{q.throughput_per_min:.1f}", right=True),
        ],
    )
    return f"{head}\n\n{levels}"


def cluster_text(found: s.ClusterStatus) -> str:
    if found.mode == "embedded":
        head = key_values(
            [
                ("mode", "embedded (one daemon, DuckDB only; no Redis)"),
                ("node", found.node_id),
                ("workers", f"{found.nodes[0].busy} busy of {found.nodes[0].slots}"),
            ]
        )
        return head + "\nset [cluster] redis_url to share work with other daemons (docs/cluster.md)"
    redis = found.redis
    lines = [
        ("mode", f"cluster {found.cluster!r}"),
        ("this node", found.node_id),
        ("leader", f"{found.leader or 'none (an election is under way)'} (epoch {found.epoch})"),
    ]
    if redis is not None:
        durability = (
            "durable (appendonly, appendfsync always)"
            if redis.durable
            else f"VOLATILE: {redis.warning}"
        )
        lines += [
            (
                "redis",
                f"{redis.url} (version {redis.version}, {redis.used_memory}, {ro.count(redis.ops_per_s)} ops/s)",
            ),
            ("durability", durability),
        ]
    nodes = table(
        found.nodes,
        [
            Col("node", lambda n: n.node_id + (" *" if n.leader else "")),
            Col("host", lambda n: n.host),
            Col("slots", lambda n: ro.count(n.slots), right=True),
            Col("busy", lambda n: ro.count(n.busy), right=True),
            Col("heartbeat", lambda n: f"{n.heartbeat_age_s:.1f} s ago", right=True),
            Col("version", lambda n: n.version or "-"),
        ],
    )
    total = sum(n.slots for n in found.nodes)
    busy = sum(n.busy for n in found.nodes)
    return (
        f"{key_values(lines)}\n\n{nodes}\n"
        f"{len(found.nodes)} node(s), {busy} of {total} slots busy; * leads"
    )


def _next_deadline(q: s.LevelFigures) -> str:
    if q.next_deadline_in_s is None:
        return "-"
    left = q.next_deadline_in_s
    return f"LATE {ro.span(-left)}" if left < 0 else f"in {ro.span(left)}"


def _met(q: s.LevelFigures) -> str:
    if q.level is PriorityLevel.LOW:
        return "no SLA"
    return ro.percent(q.sla_met_ratio)


def sources_table(sources: Sequence[s.SourceView]) -> str:
    now = _now()
    return table(
        sources,
        [
            Col("source", lambda x: x.name),
            Col("reliability", lambda x: ro.percent(x.reliability_score), right=True),
            Col("fetches", lambda x: ro.count(x.total_requests), right=True),
            Col("avg response", lambda x: ro.span(x.average_response_time_s), right=True),
            Col("last success", lambda x: ro.ago(now, x.last_successful_fetch)),
            Col("circuit", lambda x: ro.words(x.circuit_state)),
            Col("active", lambda x: "yes" if x.is_active else "no"),
        ],
    )


def archive_text(r: s.ArchiveResult) -> str:
    return (
        f"archived {r.jobs:,} jobs, {r.events:,} history events and {r.requests:,} requests "
        f"finished before {ro.market_time(r.cutoff)}" + "".join(f"\n  {f}" for f in r.files)
    )


def lake_rebuild_text(r: s.LakeRebuildResult) -> str:
    lines = [
        f"lake {r.lake}: {r.files:,} snapshot file(s); {r.added:,} added to this database, "
        f"{r.present:,} already in it"
    ]
    if r.without_record:
        lines.append(
            f"{len(r.without_record):,} file(s) written before lake files carried their "
            "snapshot: left as they are (`gexdaemon query` reads them through gex_lake)"
        )
        lines += [f"  {p}" for p in r.without_record[:20]]
    if r.unreadable:
        lines.append(f"{len(r.unreadable):,} file(s) could not be read (left where they are):")
        lines += [f"  {p}" for p in r.unreadable[:20]]
    return "\n".join(lines)


# -- rules -------------------------------------------------------------------------------


def rules_table(rules: Sequence[s.RuleView]) -> str:
    return table(
        rules,
        [
            Col("name", lambda r: r.name),
            Col("score", lambda r: f"{r.priority_score:.2f}", right=True),
            Col("active", lambda r: "yes" if r.is_active else "no"),
            Col("v", lambda r: str(r.version), right=True),
            Col("condition", lambda r: r.condition),
            Col("id", lambda r: r.rule_id, keep=True),
        ],
    )


def rule_notes(rule: s.SavedRule) -> str:
    lines = []
    if rule.metadata_names:
        lines.append("reads metadata: " + ", ".join(rule.metadata_names))
    lines += [f"note: {n}" for n in rule.notes]
    return "".join(f"\n  {line}" for line in lines)


def rule_history_table(history: Sequence[s.RuleVersionView]) -> str:
    return table(
        history,
        [
            Col("v", lambda v: str(v.version), right=True),
            Col("change", lambda v: v.change),
            Col("at", lambda v: ro.market_time(v.changed_at)),
            Col("name", lambda v: v.name),
            Col("score", lambda v: f"{v.priority_score:.2f}", right=True),
            Col("active", lambda v: "yes" if v.is_active else "no"),
            Col("condition", lambda v: v.condition),
        ],
    )


def shadow_text(r: s.ShadowReport) -> str:
    levels: list[PriorityLevel] = list(PriorityLevel)
    dist = table(
        levels,
        [
            Col[PriorityLevel]("level", ro.words),
            Col("now", lambda lv: ro.count(r.levels_before.get(lv, 0)), right=True),
            Col("candidate", lambda lv: ro.count(r.levels_after.get(lv, 0)), right=True),
        ],
    )
    changes = table(
        r.changes[:40],
        [
            Col("request", lambda c: ro.short_id(c.request_id), keep=True),
            Col("symbol", lambda c: c.market_symbol),
            Col("now", lambda c: f"{ro.words(c.before.level)} {c.before.score:.3f}"),
            Col("candidate", lambda c: f"{ro.words(c.after.level)} {c.after.score:.3f}"),
            Col("why", lambda c: c.after.summary),
        ],
    )
    more = f"\n(and {len(r.changes) - 40} more)" if len(r.changes) > 40 else ""
    return (
        f"{r.requests:,} recent requests scored ({r.mode} mode); {r.changed:,} would change "
        f"level ({r.promoted:,} up, {r.demoted:,} down)\n\n{dist}\n\n{changes}{more}"
    )


# -- SQL ---------------------------------------------------------------------------------


def query_text(r: s.QueryResult) -> str:
    """A query's rows with every number at full precision (and separators), instants in UTC."""
    cols = [Col(name, _sql_cell(i), right=_numeric(r.rows, i)) for i, name in enumerate(r.columns)]
    body = table(r.rows, cols)
    rows = f"{r.row_count:,} row{'' if r.row_count == 1 else 's'}"
    return body + f"\n({rows}{', truncated' if r.truncated else ''}; times in UTC)"


def _sql_cell(i: int) -> Callable[[Sequence[Any]], str]:
    return lambda row: _sql_value(row[i])


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    values = [row[i] for row in rows if row[i] is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _sql_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if abs(value) >= 1e-4 or value == 0 else repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_sql_value(v) for v in value) + "]"
    return str(value)
