"""Verbs that talk to a running daemon through the client library."""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from gexdaemon import readout as ro
from gexdaemon.cli import render
from gexdaemon.cli.invocation import Invocation, UsageError, Verbs
from gexdaemon.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from gexdaemon.client import Client
from gexdaemon.core.errors import GexError
from gexdaemon.core.explain import describe
from gexdaemon.core.vocab import JobStatus
from gexdaemon.protocol import shapes as s


def register(verb: Verbs) -> None:
    p = verb.add("submit", submit_verb, "submit one request, or the requests in a file")
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
        "--idempotency-key",
        metavar="KEY",
        help="a repeat with the same key within 24 h returns the first job instead of a new one "
        "(safe retries from scripts); in a file of several requests, request i gets KEY#i",
    )
    p.add_argument(
        "--wait", action="store_true", help="wait until the job finishes and show the snapshot"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )

    p = verb.add("status", status_verb, "daemon health, queues per level, workers, SLA")

    p = verb.add(
        "cluster",
        cluster_verb,
        "cluster mode: nodes, slots, heartbeats, the leader and Redis (embedded: one node)",
    )
    p.add_argument("action", choices=["status"], nargs="?", default="status")

    p = verb.add("jobs", jobs_verb, "list jobs, newest first")
    p.add_argument("--status", choices=["queued", "processing", "completed", "failed", "cancelled"])
    p.add_argument("--level", choices=["critical", "high", "medium", "low"])
    p.add_argument("--symbol")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--cursor", help="continue after this job id (the previous page's next_cursor)")

    p = verb.add("job", job_verb, "one job with its request and state history")
    p.add_argument("id")

    for name, text in (
        ("cancel", "cancel a queued or running job"),
        ("retry", "retry a failed job"),
    ):
        p = verb.add(name, action_verb, text, action=name)
        p.add_argument("id")

    p = verb.add("bump", bump_verb, "move a queued job to another level")
    p.add_argument("id")
    p.add_argument("level", choices=["critical", "high", "medium", "low"])

    p = verb.add("rules", rules_verb, "manage priority rules")
    rule = Verbs(
        p.add_subparsers(dest="rules_action", metavar="ACTION", required=True), verb.common
    )
    rule.add("list", rules_verb, "list rules")
    a = rule.add("add", rules_verb, "add a rule")
    a.add_argument("--name", required=True)
    a.add_argument("--condition", required=True)
    a.add_argument("--score", type=float, required=True)
    a.add_argument("--description", default="")
    a.add_argument("--inactive", action="store_true", help="create it disabled")
    u = rule.add("update", rules_verb, "change a rule (by id or name)")
    u.add_argument("ref")
    u.add_argument("--name")
    u.add_argument("--condition")
    u.add_argument("--score", type=float)
    u.add_argument("--description")
    for action in ("enable", "disable", "delete", "history"):
        rule.add(action, rules_verb, f"{action} a rule (by id or name)").add_argument("ref")
    t = rule.add(
        "test",
        rules_verb,
        "score recent requests with candidate rules and show how levels would change",
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

    p = verb.add("sources", sources_verb, "data source health")
    source = Verbs(p.add_subparsers(dest="sources_action", metavar="ACTION"), verb.common)
    source.add("list", sources_verb)
    for action in ("enable", "disable"):
        source.add(action, sources_verb, f"{action} a source (id, base URL or host)").add_argument(
            "ref"
        )
    p.set_defaults(sources_action="list")  # after add_subparsers, whose own default is None

    p = verb.add("snapshots", snapshots_verb, "list snapshots")
    p.add_argument("--symbol")
    p.add_argument("--date", help="market date YYYY-MM-DD (New York)")
    p.add_argument("--limit", type=int, default=30)

    p = verb.add("gex", gex_verb, "the latest (or a given) snapshot of a symbol")
    p.add_argument("symbol")
    p.add_argument("--snapshot", help="a snapshot id instead of the latest")
    p.add_argument("--expiry-filter", choices=["all", "0dte", "ex_next", "ex_next_monthly"])
    p.add_argument("--top", type=int, default=10, help="strikes to list by |net GEX| (default 10)")

    p = verb.add("ingest", ingest_verb, "ingest a local chain file through the daemon")
    p.add_argument("file", type=Path)
    p.add_argument("--symbol")
    p.add_argument(
        "--level", choices=["critical", "high", "medium", "low"], help="override the rules' level"
    )
    p.add_argument("--no-wait", action="store_true", help="return once queued")
    p.add_argument("--timeout", type=float, default=600.0)

    p = verb.add("query", query_verb, "read-only SQL over the daemon's DuckDB")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=1000)


def client(inv: Invocation) -> Client:
    return Client(inv.config.socket_path, origin="cli")


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
        result: s.Accepted | s.AcceptedBatch = gexd.submit(
            payload, idempotency_key=args.idempotency_key
        )
        items = result.requests if isinstance(result, s.AcceptedBatch) else [result]
        if not args.wait:
            inv.output.result(result, lambda _: render.accepted_table(items))
            return EXIT_OK
        job_ids = [a.job_id for a in items]

        def show_ids() -> None:  # the job ids first: the wait may be long, or cut short
            if not inv.output.json:
                inv.output.result(result, lambda _: render.accepted_table(items) + "\n")
            inv.output.progress(f"submitted {len(items)} request(s); waiting ...")

        finals = _wait_all(inv, gexd, job_ids, args.timeout, first=show_ids)
        inv.output.progress_done()
        snaps = [gexd.snapshot(f.snapshot_id) for f in finals if f.snapshot_id]
    failed = [f.job for f in finals if f.job.status is not JobStatus.COMPLETED]
    out = {"accepted": items, "jobs": [f.job for f in finals], "snapshots": snaps}
    inv.output.result(
        out,
        lambda _: "\n\n".join(
            [render.snapshot_text(snap) for snap in snaps]
            + [
                f"job {ro.short_id(j.job_id)} {ro.words(j.status)}: {j.error_message or ''}"
                for j in failed
            ]
        ),
    )
    return EXIT_FAILED if failed else EXIT_OK


def _wait_all(
    inv: Invocation,
    gexd: Client,
    job_ids: Sequence[str],
    timeout: float,
    *,
    first: Callable[[], None] = lambda: None,
) -> list[s.JobDetail]:
    """Wait for each job; Ctrl-C stops waiting, not the jobs, and says how to follow them.

    `first` (showing the ids) runs inside the same guard: from the moment an id may be on
    screen, an interrupt answers with how to follow the job, never a bare "interrupted".
    """
    finals: list[s.JobDetail] = []
    try:
        first()
        for job_id in job_ids:
            finals.append(
                gexd.wait(
                    job_id,
                    timeout=timeout,
                    on_update=lambda j: inv.output.progress(
                        f"job {ro.short_id(j.job.job_id)}: {ro.words(j.job.status)}"
                    ),
                )
            )
    except KeyboardInterrupt:
        _stopped_waiting(inv, job_ids[len(finals) :])
    return finals


def _stopped_waiting(inv: Invocation, job_ids: Sequence[str]) -> NoReturn:
    inv.output.progress_done()
    waiting = [ro.short_id(j) for j in job_ids]
    inv.output.note(
        f"stopped waiting; the job{'s' if len(waiting) > 1 else ''} "
        f"{', '.join(waiting)} keep{'' if len(waiting) > 1 else 's'} running. Follow with "
        + " or ".join(f"`gexdaemon job {j}`" for j in waiting[:3])
    )
    raise SystemExit(EXIT_INTERRUPTED) from None


def status_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        health: s.Health = gexd.health()
        queues: s.Queues = gexd.queues()
    inv.output.result(
        {"health": health, "queues": queues}, lambda _: render.status_text(health, queues)
    )
    return EXIT_OK


def cluster_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        found: s.ClusterStatus = gexd.cluster()
    inv.output.result(found, render.cluster_text)
    return EXIT_OK


def jobs_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        page: s.JobPage = gexd.jobs(
            status=a.status, level=a.level, symbol=a.symbol, limit=a.limit, cursor=a.cursor
        )
    inv.output.result(
        page,
        lambda p: (
            render.jobs_table(p.jobs)
            + (f"\nmore: gexdaemon jobs --cursor {p.next_cursor}" if p.next_cursor else "")
        ),
    )
    return EXIT_OK


def job_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        found: s.JobDetail = gexd.job(inv.args.id)
    explanation = describe(found.request.explanation) if found.request else "-"
    inv.output.result(found, lambda f: render.job_text(f, explanation))
    return EXIT_OK


def action_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        row: s.JobRow = getattr(gexd, inv.args.action)(inv.args.id)
    inv.output.result(row, lambda r: f"job {ro.short_id(r.job_id)} is now {ro.words(r.status)}")
    return EXIT_OK


def bump_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        row: s.JobRow = gexd.set_level(inv.args.id, inv.args.level)

    def human(r: s.JobRow) -> str:
        deadline = (
            f"deadline {ro.clock_time(r.deadline)}" if r.deadline else "no deadline (best effort)"
        )
        return f"job {ro.short_id(r.job_id)} is now {ro.words(r.priority_level)}, {deadline}"

    inv.output.result(row, human)
    return EXIT_OK


def rules_verb(inv: Invocation) -> int:
    a = inv.args
    action = a.rules_action
    with client(inv) as gexd:
        if action == "list":
            listed: s.RuleList = gexd.rules()
            inv.output.result(listed, lambda r: render.rules_table(r.rules))
        elif action == "add":
            saved: s.SavedRule = gexd.create_rule(
                {
                    "name": a.name,
                    "condition": a.condition,
                    "priority_score": a.score,
                    "description": a.description,
                    "is_active": not a.inactive,
                }
            )
            inv.output.result(
                saved,
                lambda r: (
                    f"created rule {r.name!r} (v{r.version}, {r.rule_id})" + render.rule_notes(r)
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
            saved = gexd.update_rule(a.ref, changes)
            inv.output.result(
                saved, lambda r: f"rule {r.name!r} is now v{r.version}" + render.rule_notes(r)
            )
        elif action in ("enable", "disable"):
            saved = gexd.update_rule(a.ref, {"is_active": action == "enable"})
            inv.output.result(
                saved,
                lambda r: (
                    f"rule {r.name!r} {'enabled' if r.is_active else 'disabled'} (v{r.version})"
                ),
            )
        elif action == "delete":
            deleted: s.RuleView = gexd.delete_rule(a.ref)
            inv.output.result(deleted, lambda r: f"deleted rule {r.name!r} (its history is kept)")
        elif action == "history":
            history: s.RuleHistory = gexd.rule_history(a.ref)
            inv.output.result(history, lambda r: render.rule_history_table(r.history))
        else:
            report: s.ShadowReport = gexd.test_rules(
                _candidates(a), mode="replace" if a.replace else "merge", limit=a.limit
            )
            inv.output.result(report, render.shadow_text)
    return EXIT_OK


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


def sources_verb(inv: Invocation) -> int:
    action = inv.args.sources_action or "list"
    with client(inv) as gexd:
        if action == "list":
            listed: s.SourceList = gexd.sources()
            inv.output.result(listed, lambda r: render.sources_table(r.sources))
        else:
            source: s.SourceView = gexd.set_source_active(inv.args.ref, action == "enable")
            inv.output.result(
                source,
                lambda r: f"source {r.base_url} is now {'enabled' if r.is_active else 'disabled'}",
            )
    return EXIT_OK


def snapshots_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        listed: s.SnapshotList = gexd.snapshots(symbol=a.symbol, date=a.date, limit=a.limit)
    inv.output.result(listed, lambda r: render.snapshots_table(r.snapshots))
    return EXIT_OK


def gex_verb(inv: Invocation) -> int:
    a = inv.args
    with client(inv) as gexd:
        snap: s.SnapshotView = (
            gexd.snapshot(a.snapshot)
            if a.snapshot
            else gexd.latest_snapshot(a.symbol, expiry_filter=a.expiry_filter)
        )
    inv.output.result(snap, lambda x: render.snapshot_text(x, top=a.top))
    return EXIT_OK


def ingest_verb(inv: Invocation) -> int:
    a = inv.args
    if not a.file.is_file():
        raise UsageError(f"{a.file} is not a file")
    with client(inv) as gexd:
        inv.output.progress(f"uploading {a.file.name} ({a.file.stat().st_size:,} bytes) ...")
        accepted: s.IngestAccepted = gexd.ingest(a.file, symbol=a.symbol, level=a.level)
        if a.no_wait:
            inv.output.progress_done()
            inv.output.result(accepted, lambda r: render.accepted_table([r]))
            return EXIT_OK
        (final,) = _wait_all(inv, gexd, [accepted.job_id], a.timeout)
        inv.output.progress_done()
        if final.job.status is not JobStatus.COMPLETED or final.snapshot_id is None:
            raise GexError(
                f"{a.file.name}: job {ro.short_id(final.job.job_id)} {ro.words(final.job.status)}: "
                f"{final.job.error_message or ''}"
            )
        snap: s.SnapshotView = gexd.snapshot(final.snapshot_id)
    inv.output.result(snap, render.snapshot_text)
    return EXIT_OK


def query_verb(inv: Invocation) -> int:
    with client(inv) as gexd:
        result: s.QueryResult = gexd.query(inv.args.sql, limit=inv.args.limit)
    inv.output.result(result, render.query_text)
    return EXIT_OK
