"""Verbs that talk to a running daemon through the client library."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from gexdaemon.cli.invocation import Invocation, UsageError
from gexdaemon.cli.output import EXIT_FAILED, EXIT_OK, key_values, table
from gexdaemon.cli.render import render_snapshot
from gexdaemon.client import Client
from gexdaemon.core.errors import GexError


def register(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "submit", parents=[common], help="submit one request, or the requests in a file"
    )
    p.add_argument("--url", help="source URL (http or https)")
    p.add_argument("--symbol", help="underlying symbol, e.g. SPX")
    p.add_argument(
        "--type",
        dest="data_type",
        choices=["historical", "real_time", "snapshot"],
        default="snapshot",
    )
    p.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for the rules (numbers are read as numbers); repeatable",
    )
    p.add_argument(
        "--file", type=Path, help="a JSON or TOML file: one request, a list, or {requests = [...]}"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait until the job finishes and show the snapshot"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )
    p.set_defaults(handler=submit_verb)

    p = verbs.add_parser(
        "status", parents=[common], help="daemon health, queues per level, workers, SLA"
    )
    p.set_defaults(handler=status_verb)

    p = verbs.add_parser("jobs", parents=[common], help="list jobs, newest first")
    p.add_argument("--status", choices=["queued", "processing", "completed", "failed", "cancelled"])
    p.add_argument("--level", choices=["critical", "high", "medium", "low"])
    p.add_argument("--symbol")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--cursor", help="continue after this job id (the previous page's next_cursor)")
    p.set_defaults(handler=jobs_verb)

    p = verbs.add_parser("job", parents=[common], help="one job with its request and state history")
    p.add_argument("id")
    p.set_defaults(handler=job_verb)

    for name, text in (
        ("cancel", "cancel a queued or running job"),
        ("retry", "retry a failed job"),
    ):
        p = verbs.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=action_verb, action=name)

    p = verbs.add_parser("bump", parents=[common], help="move a queued job to another level")
    p.add_argument("id")
    p.add_argument("level", choices=["critical", "high", "medium", "low"])
    p.set_defaults(handler=bump_verb)

    p = verbs.add_parser("rules", parents=[common], help="manage priority rules")
    rv = p.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    rv.add_parser("list", parents=[common], help="list rules").set_defaults(handler=rules_verb)
    a = rv.add_parser("add", parents=[common], help="add a rule")
    a.add_argument("--name", required=True)
    a.add_argument("--condition", required=True)
    a.add_argument("--score", type=float, required=True)
    a.add_argument("--description", default="")
    a.add_argument("--inactive", action="store_true", help="create it disabled")
    a.set_defaults(handler=rules_verb)
    u = rv.add_parser("update", parents=[common], help="change a rule (by id or name)")
    u.add_argument("ref")
    u.add_argument("--name")
    u.add_argument("--condition")
    u.add_argument("--score", type=float)
    u.add_argument("--description")
    u.set_defaults(handler=rules_verb)
    for action in ("enable", "disable", "delete", "history"):
        x = rv.add_parser(action, parents=[common], help=f"{action} a rule (by id or name)")
        x.add_argument("ref")
        x.set_defaults(handler=rules_verb)
    t = rv.add_parser(
        "test",
        parents=[common],
        help="score recent requests with candidate rules and show how levels would change",
    )
    t.add_argument(
        "--file",
        type=Path,
        help="JSON or TOML file with candidate rules (a list, or {rules = [...]})",
    )
    t.add_argument(
        "--name", help="a single candidate rule: its name (an existing name replaces that rule)"
    )
    t.add_argument("--condition")
    t.add_argument("--score", type=float)
    t.add_argument(
        "--replace", action="store_true", help="test exactly these rules instead of merging them in"
    )
    t.add_argument("--limit", type=int, default=500, help="how many recent requests (default 500)")
    t.set_defaults(handler=rules_verb)

    p = verbs.add_parser("sources", parents=[common], help="data source health")
    sv = p.add_subparsers(dest="sources_action", metavar="ACTION")
    sv.add_parser("list", parents=[common]).set_defaults(handler=sources_verb)
    for action in ("enable", "disable"):
        x = sv.add_parser(
            action, parents=[common], help=f"{action} a source (id, base URL or host)"
        )
        x.add_argument("ref")
        x.set_defaults(handler=sources_verb)
    p.set_defaults(handler=sources_verb, sources_action="list")

    p = verbs.add_parser("snapshots", parents=[common], help="list snapshots")
    p.add_argument("--symbol")
    p.add_argument("--date", help="market date YYYY-MM-DD (New York)")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(handler=snapshots_verb)

    p = verbs.add_parser(
        "gex", parents=[common], help="the latest (or a given) snapshot of a symbol"
    )
    p.add_argument("symbol")
    p.add_argument("--snapshot", help="a snapshot id instead of the latest")
    p.add_argument("--expiry-filter", choices=["all", "0dte", "ex_next", "ex_next_monthly"])
    p.add_argument("--top", type=int, default=10, help="strikes to list by |net GEX| (default 10)")
    p.set_defaults(handler=gex_verb)

    p = verbs.add_parser(
        "ingest", parents=[common], help="ingest a local chain file through the daemon"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--symbol")
    p.add_argument(
        "--level", choices=["critical", "high", "medium", "low"], help="override the rules' level"
    )
    p.add_argument("--no-wait", action="store_true", help="return once queued")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(handler=ingest_verb)

    p = verbs.add_parser("query", parents=[common], help="read-only SQL over the daemon's DuckDB")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(handler=query_verb)


def client(inv: Invocation) -> Client:
    return Client(inv.config.socket_path)


def _meta(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {pair!r}: use KEY=VALUE, e.g. --meta open_interest=12000")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def read_structured(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(data.decode())
        return msgspec.json.decode(data)
    except (tomllib.TOMLDecodeError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
        ) from None


def _accepted_rows(items: list[dict[str, Any]]) -> str:
    return table(
        items,
        [
            ("request_id", "request"),
            ("job_id", "job"),
            ("market_symbol", "symbol"),
            ("priority_level", "level"),
            ("priority_score", "score"),
            ("deadline", "deadline"),
            ("estimated_processing_time_s", "est s"),
            ("at_risk", "at risk"),
        ],
    )


def submit_verb(inv: Invocation) -> int:
    args = inv.args
    if args.file is not None:
        if args.url or args.symbol:
            raise UsageError("give either --file or --url/--symbol, not both")
        payload = read_structured(args.file)
    else:
        if not args.url or not args.symbol:
            raise UsageError("submit needs --url and --symbol (or --file)")
        payload = {
            "source_url": args.url,
            "market_symbol": args.symbol,
            "data_type": args.data_type,
            "metadata": _meta(args.meta),
        }
    with client(inv) as gexd:
        result = gexd.submit(payload, origin="cli")
        items = result.get("requests", [result])
        if not args.wait:
            inv.output.result(result, lambda _: _accepted_rows(items))
            return EXIT_OK
        inv.output.progress(f"submitted {len(items)} request(s); waiting ...")
        finals = []
        for item in items:
            finals.append(
                gexd.wait(
                    item["job_id"],
                    timeout=args.timeout,
                    on_update=lambda j: inv.output.progress(
                        f"job {j['job']['job_id'][:8]}: {j['job']['status'].upper()}"
                    ),
                )
            )
        inv.output.progress_done()
        snaps = [gexd.snapshot(f["snapshot_id"]) if f.get("snapshot_id") else None for f in finals]
    failed = [f for f in finals if f["job"]["status"] != "completed"]
    out = {
        "accepted": items,
        "jobs": [f["job"] for f in finals],
        "snapshots": [s for s in snaps if s],
    }
    inv.output.result(
        out,
        lambda _: "\n\n".join(
            [_accepted_rows(items)]
            + [render_snapshot(s) for s in snaps if s]
            + [
                f"job {f['job']['job_id']} {f['job']['status'].upper()}: {f['job'].get('error_message') or ''}"
                for f in failed
            ]
        ),
    )
    return EXIT_FAILED if failed else EXIT_OK


def status_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        health = gexd.health()
        queues = gexd.queues()
    out = {"health": health, "queues": queues}

    def human(_: Any) -> str:
        head = key_values(
            [
                ("status", health["status"]),
                ("version", health["version"]),
                ("uptime", f"{health['uptime_s']:.0f} s"),
                ("socket", health["socket"]),
                ("data dir", health["data_dir"]),
                ("workers", f"{queues['workers']['busy']} busy of {queues['workers']['total']}"),
            ]
        )
        levels = table(
            queues["levels"],
            [
                ("level", "level"),
                ("depth", "queued"),
                ("in_flight", "running"),
                ("at_risk", "at risk"),
                ("oldest_wait_s", "oldest wait s"),
                ("next_deadline_in_s", "next deadline in s"),
                ("sla_met_ratio", "SLA met"),
                ("breaches_last_hour", "breaches 1h"),
                ("throughput_per_min", "per min"),
            ],
        )
        return f"{head}\n\n{levels}"

    inv.output.result(out, human)
    return EXIT_OK


JOB_COLUMNS = [
    ("job_id", "job"),
    ("priority_level", "level"),
    ("market_symbol", "symbol"),
    ("status", "status"),
    ("queued_at", "queued"),
    ("deadline", "deadline"),
    ("sla_status", "sla"),
    ("retry_count", "retries"),
    ("processing_duration", "took s"),
    ("error_message", "error"),
]


def jobs_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        result = gexd.jobs(
            status=a.status, level=a.level, symbol=a.symbol, limit=a.limit, cursor=a.cursor
        )
    inv.output.result(
        result,
        lambda r: (
            table(r["jobs"], JOB_COLUMNS)
            + (
                f"\nmore: gexdaemon jobs --cursor {r['next_cursor']}"
                if r.get("next_cursor")
                else ""
            )
        ),
    )
    return EXIT_OK


def job_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        found = gexd.job(inv.args.id)

    def human(f: dict[str, Any]) -> str:
        j, r = f["job"], f["request"] or {}
        head = key_values(
            [
                ("job", j["job_id"]),
                ("request", j["request_id"]),
                ("status", j["status"].upper()),
                ("level", j["priority_level"]),
                ("score", r.get("priority_score")),
                ("symbol", r.get("market_symbol")),
                ("type", r.get("data_type")),
                ("source", r.get("source_url")),
                ("requested", r.get("requested_at")),
                ("deadline", j.get("deadline")),
                ("sla", j.get("sla_status")),
                ("at risk", j.get("at_risk")),
                ("phase", j.get("dispatch_phase")),
                ("retries", j.get("retry_count")),
                ("took", j.get("processing_duration")),
                ("records", j.get("records_processed")),
                ("error", j.get("error_message")),
                ("snapshot", f.get("snapshot_id")),
            ]
        )
        why = _explain(r.get("explanation") or {})
        history = table(
            f["history"],
            [
                ("seq", "#"),
                ("occurred_at", "at"),
                ("from_status", "from"),
                ("to_status", "to"),
                ("reason", "reason"),
            ],
        )
        return f"{head}\n\nwhy this level: {why}\n\n{history}"

    inv.output.result(found, human)
    return EXIT_OK


def _explain(expl: dict[str, Any]) -> str:
    if not expl:
        return "-"
    matched = expl.get("matched") or []
    parts = [f"{m.get('name')} ({m.get('score')})" for m in matched if isinstance(m, dict)]
    base = expl.get("base", {})
    rel = expl.get("reliability", {})
    text = (
        ("rules " + ", ".join(parts))
        if parts
        else f"no rule matched; default for {base.get('data_type')}"
    )
    return (
        f"{text}; base {base.get('score')}, reliability adjustment {rel.get('adjustment')} -> "
        f"{expl.get('score')} = {str(expl.get('level', '')).upper()}"
    )


def action_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        result = getattr(gexd, inv.args.action)(inv.args.id)
    inv.output.result(result, lambda r: f"job {r['job_id']} is now {r['status'].upper()}")
    return EXIT_OK


def bump_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        result = gexd.set_level(inv.args.id, inv.args.level)
    inv.output.result(
        result,
        lambda r: (
            f"job {r['job_id']} is now {r['priority_level'].upper()}, deadline {r['deadline']}"
        ),
    )
    return EXIT_OK


RULE_COLUMNS = [
    ("name", "name"),
    ("priority_score", "score"),
    ("is_active", "active"),
    ("version", "v"),
    ("condition", "condition"),
    ("rule_id", "id"),
]


def rules_verb(inv: Invocation) -> int:
    a = inv.args
    action = a.rules_action
    with client(inv) as gexd:
        if action == "list":
            result = gexd.rules()
            inv.output.result(result, lambda r: table(r["rules"], RULE_COLUMNS))
        elif action == "add":
            result = gexd.create_rule(
                {
                    "name": a.name,
                    "condition": a.condition,
                    "priority_score": a.score,
                    "description": a.description,
                    "is_active": not a.inactive,
                }
            )
            inv.output.result(
                result,
                lambda r: (
                    f"created rule {r['name']!r} (v{r['version']}, {r['rule_id']})" + _notes(r)
                ),
            )
        elif action == "update":
            changes = {
                k: v
                for k, v in (
                    ("name", a.name),
                    ("condition", a.condition),
                    ("priority_score", a.score),
                    ("description", a.description),
                )
                if v is not None
            }
            if not changes:
                raise UsageError(
                    "say what to change: --name, --condition, --score or --description"
                )
            result = gexd.update_rule(a.ref, changes)
            inv.output.result(
                result, lambda r: f"rule {r['name']!r} is now v{r['version']}" + _notes(r)
            )
        elif action in ("enable", "disable"):
            result = gexd.update_rule(a.ref, {"is_active": action == "enable"})
            inv.output.result(
                result,
                lambda r: (
                    f"rule {r['name']!r} {'enabled' if r['is_active'] else 'disabled'} (v{r['version']})"
                ),
            )
        elif action == "delete":
            result = gexd.delete_rule(a.ref)
            inv.output.result(result, lambda r: f"deleted rule {r['name']!r} (its history is kept)")
        elif action == "history":
            result = gexd.rule_history(a.ref)
            inv.output.result(
                result,
                lambda r: table(
                    r["history"],
                    [
                        ("version", "v"),
                        ("change", "change"),
                        ("changed_at", "at"),
                        ("priority_score", "score"),
                        ("is_active", "active"),
                        ("condition", "condition"),
                    ],
                ),
            )
        else:
            result = gexd.test_rules(
                _candidates(a), mode="replace" if a.replace else "merge", limit=a.limit
            )
            inv.output.result(result, _shadow_text)
    return EXIT_OK


def _notes(r: dict[str, Any]) -> str:
    lines = []
    if r.get("metadata_names"):
        lines.append("reads metadata: " + ", ".join(r["metadata_names"]))
    lines += [f"note: {n}" for n in r.get("notes", [])]
    return "".join(f"\n  {line}" for line in lines)


def _candidates(a: argparse.Namespace) -> list[dict[str, Any]]:
    if a.file is not None:
        data = read_structured(a.file)
        rules = data.get("rules", data) if isinstance(data, dict) else data
        if not isinstance(rules, list):
            raise UsageError(f"{a.file}: expected a list of rules or {{rules = [...]}}")
        return rules
    if a.name and a.condition is not None and a.score is not None:
        return [{"name": a.name, "condition": a.condition, "priority_score": a.score}]
    raise UsageError(
        "give candidate rules with --file, or one with --name, --condition and --score"
    )


def _shadow_text(r: dict[str, Any]) -> str:
    levels = ["critical", "high", "medium", "low"]
    dist = table(
        [
            {"level": lv, "before": r["before"].get(lv, 0), "after": r["after"].get(lv, 0)}
            for lv in levels
        ],
        [("level", "level"), ("before", "now"), ("after", "candidate")],
    )
    changes = table(
        [
            {
                "request": c["request_id"][:8],
                "symbol": c["market_symbol"],
                "from": f"{c['before']['level']} {c['before']['score']}",
                "to": f"{c['after']['level']} {c['after']['score']}",
                "why": c["after"].get("summary", ""),
            }
            for c in r["changes"][:40]
        ],
        [
            ("request", "request"),
            ("symbol", "symbol"),
            ("from", "now"),
            ("to", "candidate"),
            ("why", "why"),
        ],
    )
    return (
        f"{r['requests']} recent requests scored; {r['changed']} would change level "
        f"({r['promoted']} up, {r['demoted']} down)\n\n{dist}\n\n{changes}"
    )


SOURCE_COLUMNS = [
    ("name", "source"),
    ("reliability_score", "reliability"),
    ("total_requests", "fetches"),
    ("average_response_time_s", "ema s"),
    ("last_successful_fetch", "last success"),
    ("circuit_state", "circuit"),
    ("is_active", "active"),
]


def sources_verb(inv: Invocation) -> int:
    action = inv.args.sources_action or "list"
    with client(inv) as gexd:
        if action == "list":
            result = gexd.sources()
            inv.output.result(result, lambda r: table(r["sources"], SOURCE_COLUMNS))
        else:
            result = gexd.set_source_active(inv.args.ref, action == "enable")
            inv.output.result(
                result,
                lambda r: (
                    f"source {r['base_url']} is now {'enabled' if r['is_active'] else 'disabled'}"
                ),
            )
    return EXIT_OK


def snapshots_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        result = gexd.snapshots(symbol=a.symbol, date=a.date, limit=a.limit)
    inv.output.result(
        result,
        lambda r: table(
            r["snapshots"],
            [
                ("snapshot_id", "snapshot"),
                ("market_symbol", "symbol"),
                ("snapshot_at", "at"),
                ("spot_price", "spot"),
                ("total_gex", "total GEX"),
                ("gex_unit", "unit"),
                ("zero_gamma", "zero gamma"),
                ("call_wall", "call wall"),
                ("put_wall", "put wall"),
                ("data_quality_score", "quality"),
            ],
        ),
    )
    return EXIT_OK


def gex_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        snap = (
            gexd.snapshot(a.snapshot)
            if a.snapshot
            else gexd.latest_snapshot(a.symbol, expiry_filter=a.expiry_filter)
        )
    inv.output.result(snap, lambda s: render_snapshot(s, top=a.top))
    return EXIT_OK


def ingest_verb(inv: Invocation) -> int:
    a = inv.args
    if not a.file.is_file():
        raise UsageError(f"{a.file} is not a file")
    with client(inv) as gexd:
        inv.output.progress(f"uploading {a.file.name} ({a.file.stat().st_size:,} bytes) ...")
        accepted = gexd.ingest(a.file, symbol=a.symbol, level=a.level)
        if a.no_wait:
            inv.output.progress_done()
            inv.output.result(accepted, lambda r: _accepted_rows([r]))
            return EXIT_OK
        final = gexd.wait(
            accepted["job_id"],
            timeout=a.timeout,
            on_update=lambda j: inv.output.progress(f"{a.file.name}: {j['job']['status'].upper()}"),
        )
        inv.output.progress_done()
        if final["job"]["status"] != "completed":
            raise GexError(
                f"{a.file.name}: job {final['job']['job_id']} {final['job']['status'].upper()}: "
                f"{final['job'].get('error_message') or ''}"
            )
        snap = gexd.snapshot(final["snapshot_id"])
    inv.output.result(snap, render_snapshot)
    return EXIT_OK


def query_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        result = gexd.query(inv.args.sql, limit=inv.args.limit)

    def human(r: dict[str, Any]) -> str:
        rows = [dict(zip(r["columns"], row, strict=True)) for row in r["rows"]]
        tail = f"\n({r['row_count']} rows{', truncated' if r['truncated'] else ''})"
        return table(rows, [(c, c) for c in r["columns"]]) + tail

    inv.output.result(result, human)
    return EXIT_OK
