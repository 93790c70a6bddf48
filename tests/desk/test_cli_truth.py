"""CLI truth on a live daemon: every verb's human output, short ids, Ctrl-C, retries by hand,
numbers with units and zones, one "latest", one symbol rule."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gexdaemon.client import ApiError
from tests.conftest import REPO
from tests.daemon.harness import (
    SAMPLE_FEEDS,
    SHADOW_SPY_FIRST,
    FeedServer,
    RunningDaemon,
    wait_until,
)

SHORT = re.compile(r"^([0-9a-f]{8})\s", re.M)


def request(feeds: FeedServer, path: str = "_SPX.json", **fields: Any) -> dict[str, Any]:
    return {
        "source_url": f"{feeds.url}{path}",
        "data_type": "real_time",
        "market_symbol": "SPX",
    } | fields


def human(d: RunningDaemon, *args: str) -> str:
    """A verb's human output; the verb must succeed."""
    return d.cli(*args, check=True).stdout


def test_every_verb_speaks_to_a_person(
    daemon: RunningDaemon, feeds: FeedServer, tmp_path: Path
) -> None:
    """Item 7: each verb's human output against the live daemon, not only --json."""
    d = daemon
    out = human(
        d, "submit", "--url", f"{feeds.url}_SPX.json", "--symbol", "SPX", "--type", "real_time"
    )
    short = SHORT.search(out.split("\n", 1)[1])
    assert short, out
    job = short.group(1)
    d.wait_job(d.client().jobs(limit=1).jobs[0].job_id)
    assert "CRITICAL" in out and "ET" in out
    assert "queued" in human(d, "status") and "SLA met 1h" in human(d, "status")
    jobs = human(d, "jobs", "--limit", "5")
    assert job in jobs and "COMPLETED" in jobs
    assert "why this level:" in human(d, "job", job)
    assert "total GEX" in human(d, "gex", "SPX")
    snapshots = human(d, "snapshots", "--symbol", "SPX")
    assert "$ per 1% move" in snapshots and "ET" in snapshots
    assert "(1 row; times in UTC)" in human(d, "query", "SELECT count(*) AS n FROM gex_snapshots")
    assert "current-day index data" in human(d, "rules", "list")
    added = human(
        d,
        "rules",
        "add",
        "--name",
        "desk probe",
        "--condition",
        "market_symbol == 'QQQ'",
        "--score",
        "0.5",
    )
    assert "created rule 'desk probe'" in added
    assert "is now v2" in human(d, "rules", "update", "desk probe", "--score", "0.55")
    assert "disabled" in human(d, "rules", "disable", "desk probe")
    assert "enabled" in human(d, "rules", "enable", "desk probe")
    shadow = human(d, *SHADOW_SPY_FIRST)
    assert "would change level" in shadow
    assert "deleted rule 'desk probe'" in human(d, "rules", "delete", "desk probe")
    history = human(d, "rules", "history", "desk probe")  # item 12: a deleted rule's history
    assert "delete" in history and "create" in history
    sources = human(d, "sources")
    host = feeds.url.split("//")[1].rstrip("/")
    assert host in sources and "CLOSED" in sources
    assert "disabled" in human(d, "sources", "disable", host)
    assert "enabled" in human(d, "sources", "enable", host)
    chain = tmp_path / "SPY_quotedata.csv"
    shutil.copyfile(SAMPLE_FEEDS / "SPY_quotedata.csv", chain)
    assert "total GEX" in human(d, "ingest", str(chain))
    queued = human(d, "ingest", str(chain), "--no-wait")
    assert SHORT.search(queued.split("\n", 1)[1])
    analyzed = human(d, "analyze", str(chain))
    assert "SPY" in analyzed and "top 10 strikes by |net GEX|" in analyzed


def test_one_short_id_everywhere_and_a_unique_start_of_it_will_do(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    """Item 8: `submit`, `jobs` and `job` show one short id; any verb takes it, or a unique
    start of it, like git; an ambiguous start lists what it matches."""
    d, c = daemon, daemon.client()
    out = human(
        d, "submit", "--url", f"{feeds.url}_NDX.json", "--symbol", "NDX", "--type", "real_time"
    )
    short = SHORT.search(out.split("\n", 1)[1]).group(1)  # type: ignore[union-attr]
    full = next(
        j.job_id for j in c.jobs(limit=20).jobs if j.job_id.replace("-", "").endswith(short)
    )
    assert short in human(d, "jobs", "--symbol", "NDX")
    assert full in human(d, "job", short)
    assert full in human(d, "job", short[:5])
    assert c.job(short).job.job_id == full  # the API resolves it too
    # Submit until two jobs share the first four characters of their short ids.
    seen: dict[str, str] = {}
    clash = None
    for _ in range(40):
        batch = c.submit([request(feeds, "SPX_strikes.csv", data_type="historical")] * 100)
        for accepted in batch.requests:
            key = accepted.job_id.replace("-", "")[-8:][:4]
            if key in seen and seen[key] != accepted.job_id:
                clash = key
                break
            seen[key] = accepted.job_id
        if clash:
            break
    assert clash is not None
    ambiguous = d.cli("job", clash)
    assert ambiguous.returncode == 1
    assert "matches" in ambiguous.stderr and "give more of the id" in ambiguous.stderr
    assert ambiguous.stderr.count("  - ") >= 2  # each match listed


def test_ctrl_c_while_waiting_leaves_the_job_running_and_says_how_to_follow_it(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    """Item 9: Ctrl-C during `submit --wait` prints the job id and how to follow it; the job
    keeps running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gexdaemon", "submit", "--url", f"{feeds.url}_SPX.json?delay=4",
         "--symbol", "SPX", "--type", "real_time", "--wait"],
        cwd=REPO, env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in iter(proc.stdout.readline, ""):
        lines.append(line)
        if SHORT.search(line):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    short = SHORT.search("".join(lines)).group(1)  # type: ignore[union-attr]
    assert "stopped waiting" in err and f"gexdaemon job {short}" in err and "keeps running" in err
    c = daemon.client()
    wait_until(
        lambda: c.job(short).job.status.value == "completed",
        timeout=30,
        what="the job to finish after Ctrl-C",
    )


def test_a_failed_job_can_be_retried_by_hand_and_a_finished_one_says_when_it_ended(
    feeds: FeedServer,
) -> None:
    """Item 10: a job FAILED after its automatic retries starts a new cycle by hand (in its
    history); cancelling a finished job says it already completed, and when."""
    from tests.daemon.harness import running_daemon

    config = "[retry]\nmax_retries = 1\n"
    with running_daemon(config) as d:
        c = d.client()
        failed = c.submit(request(feeds, "_SPX.json?status=503"))
        final = d.wait_job(failed.job_id)
        assert final.job.status.value == "failed" and final.job.retry_count == 1
        short = failed.job_id.replace("-", "")[-8:]
        assert "QUEUED" in human(d, "retry", short)
        history = [e.reason for e in c.job(failed.job_id).history]
        assert any(r.startswith("retried by uid") and "a new cycle" in r for r in history)
        done = c.submit(request(feeds))
        d.wait_job(done.job_id)
        refused = d.cli("cancel", done.job_id.replace("-", "")[-8:])
        assert refused.returncode == 1
        assert re.search(r"already completed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ET", refused.stderr)


def test_numbers_read_in_full_with_units_and_times_with_their_zone(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    """Item 11: GEX in $ per 1% move with suffixes and the unit in the header, prices to the
    cent with separators (never 6966 for 6,966.42 or 1.9e+04), instants in ET; --json raw."""
    d = daemon
    d.wait_job(d.client().submit(request(feeds)).job_id)
    gex = human(d, "gex", "SPX")
    assert re.search(r"total GEX +-?\$[\d,]+\.\d\d[KMBT] \(\$ per 1% move\)", gex), gex
    assert re.search(r"spot [\d,]+\.\d\d", gex) and " ET" in gex
    assert "e+" not in gex
    table = human(d, "snapshots", "--symbol", "SPX")
    assert "total GEX ($ per 1% move)" in table
    query = human(d, "query", "SELECT spot_price, total_gex FROM gex_snapshots LIMIT 1")
    raw = json.loads(
        d.cli(
            "--json", "query", "SELECT spot_price, total_gex FROM gex_snapshots LIMIT 1", check=True
        ).stdout
    )
    spot, total = raw["rows"][0]
    assert f"{spot:,}" in query and f"{total:,}" in query  # full precision, separators
    assert isinstance(total, float)  # --json keeps raw numbers


def test_latest_is_the_newest_market_time_and_one_rule_names_a_files_symbol(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    """Item 12: "latest" GEX is the chain's market time in CLI and API alike (an older file
    ingested later does not replace it); `quotedata.csv` gets one symbol from analyze,
    ingest and the drop folder; analyze's top strikes are sorted as it says; expiry-filter
    errors read; breach log lines carry the job and its level."""
    d = daemon
    newer = tmp_path / "SPX_new.csv"
    older = tmp_path / "SPX_old.csv"
    body = (SAMPLE_FEEDS / "SPX_strikes.csv").read_text()
    newer.write_text(
        re.sub(r"(?m)^# snapshot_at: .*$", "# snapshot_at: 2026-11-25T15:45:00-05:00", body)
    )
    older.write_text(
        re.sub(r"(?m)^# snapshot_at: .*$", "# snapshot_at: 2026-11-20T15:45:00-05:00", body)
    )
    human(d, "ingest", str(newer))
    human(d, "ingest", str(older))
    latest = human(d, "gex", "SPX")
    assert "2026-11-25 15:45:00 ET" in latest, latest
    api = d.client().latest_snapshot("SPX")
    assert api.snapshot_at.isoformat().startswith("2026-11-25T20:45")
    # quotedata.csv names its underlying on its first line, not in its name.
    plain = tmp_path / "quotedata.csv"
    shutil.copyfile(SAMPLE_FEEDS / "NDX_quotedata.csv", plain)
    assert human(d, "analyze", str(plain)).startswith("NDX")
    assert human(d, "ingest", str(plain)).startswith("NDX")
    dropped = d.drop / "quotedata.csv"
    shutil.copyfile(plain, d.drop / ".quotedata.csv.part")
    (d.drop / ".quotedata.csv.part").rename(dropped)
    receipt = wait_until(
        lambda: next(iter((d.drop / "processed").glob("*/quotedata.csv.receipt.json")), None),
        what="the drop receipt",
    )
    assert json.loads(receipt.read_text())["requests"][0]["market_symbol"] == "NDX"
    # analyze's top strikes: sorted by |net GEX| as the header says
    lines = human(d, "analyze", str(SAMPLE_FEEDS / "SPX_strikes.csv")).splitlines()
    head = lines.index(next(line for line in lines if line.startswith("top ")))
    nets = [line.split()[1] for line in lines[head + 2 :] if line.strip()]
    amounts = [
        float(re.sub(r"[^\d.]", "", n)) * {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(n[-1], 1)
        for n in nets
    ]
    assert amounts == sorted(amounts, reverse=True)
    with pytest.raises(ApiError) as info:
        d.client().latest_snapshot("SPX", expiry_filter="weekly")
    assert info.value.status == 422
    assert "must be one of all, 0dte, ex_next, ex_next_monthly (got 'weekly')" in str(info.value)


def test_a_breach_log_line_names_the_job_and_its_level(feeds: FeedServer) -> None:
    """Item 12: the daemon's breach line says which job and which level."""
    from tests.daemon.harness import running_daemon

    with running_daemon("[daemon]\nworkers = 1\n[sla]\ncritical_s = 2\n") as d:
        c = d.client()
        late = c.submit(request(feeds, "_SPX.json?delay=4"))
        d.wait_job(late.job_id)
        wait_until(
            lambda: any(e.get("event") == "sla breached" for e in d.log_events()),
            what="the breach log line",
        )
        line = next(e for e in d.log_events() if e.get("event") == "sla breached")
        assert line["job_id"] == late.job_id and line["priority_level"] == "critical"
