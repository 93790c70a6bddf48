"""The event stream (snapshot first, numbered events, resync) and the CLI with its exit codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gexdaemon.client import AsyncClient
from tests.daemon.harness import SAMPLE_FEEDS, SHADOW_SPY_FIRST, FeedServer, RunningDaemon


def test_event_stream_starts_with_a_snapshot_then_numbered_events(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with AsyncClient(daemon.socket) as c:
            stream = c.events()
            first = await anext(stream)
            accepted = await c.submit(
                {
                    "source_url": f"{feeds.url}_SPX.json",
                    "data_type": "real_time",
                    "market_symbol": "SPX",
                }
            )
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(60):
                async for event in stream:
                    if event.get("data", {}).get("job_id") == accepted["job_id"]:
                        seen.append(event)
                    if (
                        event["type"] == "job.completed"
                        and event["data"]["job_id"] == accepted["job_id"]
                    ):
                        break
            await stream.aclose()
            return first, seen

    first, seen = asyncio.run(run())
    assert first["type"] == "snapshot"
    state = first["state"]
    assert {"health", "queues", "jobs", "sources", "rules", "snapshots"} <= set(state)
    types = [e["type"] for e in seen]
    assert types[0] == "job.queued" and types[-1] == "job.completed"
    assert "job.started" in types and "snapshot.created" in types
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and all(s > first["seq"] for s in seqs)


def test_a_client_can_ask_for_a_resync(daemon: RunningDaemon) -> None:
    async def run() -> list[str]:
        async with AsyncClient(daemon.socket) as c:
            stream = c.events()
            kinds = [(await anext(stream))["type"]]
            await stream.resync()
            async with asyncio.timeout(10):
                async for msg in stream:
                    if msg["type"] in ("resync", "snapshot"):
                        kinds.append(msg["type"])
                    if len(kinds) == 3:
                        break
            await stream.aclose()
            return kinds

    assert asyncio.run(run()) == ["snapshot", "resync", "snapshot"]


def test_cli_verbs_json_and_exit_codes(daemon: RunningDaemon, feeds: FeedServer) -> None:
    status = daemon.cli("--json", "status", check=True)
    assert json.loads(status.stdout)["health"]["status"] == "ok"
    human = daemon.cli("status", check=True)
    assert "CRITICAL" in human.stdout and "queued" in human.stdout

    sub = daemon.cli(
        "--json",
        "submit",
        "--url",
        f"{feeds.url}SPY.json",
        "--symbol",
        "SPY",
        "--type",
        "snapshot",
        "--meta",
        "open_interest=25000",
        "--meta",
        "volume=8000",
        "--wait",
        check=True,
    )
    out = json.loads(sub.stdout)
    assert out["accepted"][0]["priority_level"] == "high"
    assert out["jobs"][0]["status"] == "completed" and out["snapshots"][0]["market_symbol"] == "SPY"
    assert sub.stderr == ""  # --json: nothing extra, no progress

    jobs = json.loads(
        daemon.cli("jobs", "--json", "--symbol", "SPY", "--limit", "5", check=True).stdout
    )
    job_id = jobs["jobs"][0]["job_id"]
    one = daemon.cli("job", job_id, check=True)
    assert "why this level" in one.stdout and "high volume strikes" in one.stdout

    gex = daemon.cli("gex", "SPY", check=True)
    assert "total GEX" in gex.stdout and "zero gamma" in gex.stdout and "call wall" in gex.stdout

    ingest = daemon.cli("--json", "ingest", str(SAMPLE_FEEDS / "SPX_strikes.json"), check=True)
    assert json.loads(ingest.stdout)["market_symbol"] == "SPX"

    query = daemon.cli("query", "SELECT count(*) AS n FROM gex_snapshots", check=True)
    assert "n" in query.stdout

    rules = daemon.cli("rules", "list", check=True)
    assert "current-day index data" in rules.stdout

    # The shadow test read `before`/`after` while the API sent `levels_before`/`levels_after`
    # and crashed with a KeyError; both sides now read one shape.
    shadow = daemon.cli(*SHADOW_SPY_FIRST, check=True)
    assert "would change level" in shadow.stdout and "CRITICAL" in shadow.stdout

    bad = daemon.cli(
        "--json", "submit", "--url", "https://evil.example.com/x.json", "--symbol", "SPX"
    )
    assert bad.returncode == 1
    err = json.loads(bad.stderr)["error"]
    assert err["code"] == "validation_failed" and err["details"][0]["path"] == "source_url"

    usage = daemon.cli("submit", "--symbol", "SPX")
    assert usage.returncode == 2 and "--url" in usage.stderr
    assert daemon.cli("jobs", "--level", "urgent").returncode == 2
    missing = daemon.cli("job", "01a21797-0000-7000-8000-000000000000")
    assert missing.returncode == 1 and "no job" in missing.stderr


def test_cli_says_when_no_daemon_answers(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run(
        [sys.executable, "-m", "gexdaemon", "--socket", str(tmp_path / "no.sock"), "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3 and "no daemon answers" in result.stderr
