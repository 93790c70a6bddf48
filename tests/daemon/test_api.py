"""The socket API against a real daemon: every endpoint, its error model, and durability of a 201."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from typing import Any

import pytest

from gexdaemon.client import ApiError, Client
from tests.daemon.harness import SAMPLE_FEEDS, FeedServer, RunningDaemon
from tests.reliability.fuzzing import send


def raw(
    daemon: RunningDaemon,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A request with no client library in the way (to send what a buggy script would)."""
    answer = send(daemon, method, path, body, headers)
    return answer.status, (answer.json() if answer.body else {}), answer.headers


def request_body(feeds: FeedServer, path: str = "_SPX.json", **overrides: Any) -> dict[str, Any]:
    body = {"source_url": f"{feeds.url}{path}", "data_type": "snapshot", "market_symbol": "SPX"}
    body.update(overrides)
    return body


def test_health_and_openapi(daemon: RunningDaemon) -> None:
    c = daemon.client()
    health = c.health()
    assert health["status"] == "ok" and health["version"] and health["uptime_s"] >= 0
    doc = c.openapi()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v1/requests",
        "/v1/jobs/{id}/cancel",
        "/v1/rules/test",
        "/v1/events",
        "/metrics",
    ):
        assert path in doc["paths"], path
    assert "RequestSubmission" in doc["components"]["schemas"]


def test_socket_is_private(daemon: RunningDaemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    run_dir = daemon.socket.parent
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700


def test_submit_is_durable_and_runs_to_a_snapshot(daemon: RunningDaemon, feeds: FeedServer) -> None:
    c = daemon.client()
    accepted = c.submit(request_body(feeds, data_type="real_time"))
    assert accepted["priority_level"] == "critical"  # the seed rule: real-time SPX
    assert accepted["priority_score"] == pytest.approx(0.9)
    assert accepted["deadline"] is not None and accepted["estimated_processing_time_s"] > 0
    assert accepted["explanation"]["matched"][0]["name"] == "current-day index data"
    # Durable: the request is in the database the moment 201 is answered.
    found = c.query(
        f"SELECT count(*) FROM priority_requests WHERE request_id = '{accepted['request_id']}'"
    )
    assert found["rows"] == [[1]]
    done = daemon.wait_job(accepted["job_id"])
    assert done["job"]["status"] == "completed", done
    assert done["job"]["sla_status"] == "met"
    assert [e["to_status"] for e in done["history"]] == ["queued", "processing", "completed"]
    snap = c.snapshot(done["snapshot_id"])
    assert snap["market_symbol"] == "SPX" and snap["strikes"] and snap["gex_unit"] == "usd_per_1pct"
    assert snap["call_wall"] > 0 and snap["put_wall"] > 0
    latest = c.latest_snapshot("SPX")
    assert latest["snapshot_id"] in {
        s["snapshot_id"] for s in c.snapshots(symbol="SPX")["snapshots"]
    }
    req = c.request(accepted["request_id"])
    assert req["jobs"][0]["job_id"] == accepted["job_id"]
    history = c.gex_history("SPX")
    assert history["points"]


def test_batch_is_all_or_nothing_and_names_each_bad_field(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    c = daemon.client()
    before = c.query("SELECT count(*) FROM priority_requests")["rows"][0][0]
    good = request_body(feeds)
    with pytest.raises(ApiError) as exc:
        c.submit([good, good | {"market_symbol": "NOTREAL1"}, good | {"data_type": "weekly"}, good])
    err = exc.value
    assert err.status == 422 and err.code == "validation_failed"
    paths = {d.path for d in err.details}
    assert {"requests.1.market_symbol", "requests.2.data_type"} <= paths
    assert "2 of 4 requests are invalid" in err.message
    assert c.query("SELECT count(*) FROM priority_requests")["rows"][0][0] == before
    ok = c.submit([good, good])
    assert ok["accepted"] == 2 and len(ok["requests"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed"),
        (b"", 400, "malformed"),
        (b"42", 400, "malformed"),
        (
            b'{"source_url": "http://127.0.0.1:1/x.json", "data_type": "snapshot", "market_symbol": "SPX", "colour": 1}',
            422,
            "validation_failed",
        ),
        (
            b'{"source_url": "ftp://x/y", "data_type": "snapshot", "market_symbol": "SPX"}',
            422,
            "validation_failed",
        ),
        (
            b'{"source_url": "https://evil.example.com/x.json", "data_type": "snapshot", "market_symbol": "SPX"}',
            422,
            "validation_failed",
        ),
        (
            b'{"source_url": "file:///etc/passwd", "data_type": "snapshot", "market_symbol": "SPX"}',
            422,
            "validation_failed",
        ),
        (
            b'{"source_url": "http://127.0.0.1:1/x.json", "data_type": "snapshot", "market_symbol": "SPX",'
            b' "requested_at": "2099-01-01T00:00:00Z"}',
            422,
            "validation_failed",
        ),
    ],
)
def test_bad_bodies_get_precise_errors(
    daemon: RunningDaemon, body: bytes, status: int, code: str
) -> None:
    got, payload, headers = raw(
        daemon, "POST", "/v1/requests", body, {"Content-Type": "application/json"}
    )
    assert got == status, payload
    assert payload["error"]["code"] == code
    assert payload["error"]["request_id"] == headers["X-Request-Id"]
    assert payload["error"]["message"]


def test_field_errors_carry_paths(daemon: RunningDaemon) -> None:
    _, payload, _ = raw(
        daemon,
        "POST",
        "/v1/requests",
        b'{"source_url": "https://evil.example.com/x", "data_type": "snapshot", "market_symbol": "SPX"}',
    )
    detail = payload["error"]["details"][0]
    assert detail["path"] == "source_url" and "allowed_hosts" in detail["message"]


def test_oversized_body_is_refused_with_413(daemon: RunningDaemon) -> None:
    status, payload, _ = raw(daemon, "POST", "/v1/requests", b"[" + b" " * 70_000 + b"]")
    assert status == 413 and payload["error"]["code"] == "too_large"


def test_unknown_ids_and_endpoints_are_404(daemon: RunningDaemon) -> None:
    c = daemon.client()
    for call in (
        lambda: c.job("01a21797-0000-7000-8000-000000000000"),
        lambda: c.job("not-a-uuid"),
        lambda: c.request("01a21797-0000-7000-8000-000000000000"),
        lambda: c.snapshot("01a21797-0000-7000-8000-000000000000"),
        lambda: c.rule("no such rule"),
    ):
        with pytest.raises(ApiError) as exc:
            call()
        assert exc.value.status == 404
    status, payload, _ = raw(daemon, "GET", "/v1/nothing-here")
    assert status == 404 and "no such endpoint" in payload["error"]["message"]


def test_a_405_names_what_the_path_takes_concrete_paths_first(daemon: RunningDaemon) -> None:
    """As OpenAPI reads a path table: /v1/rules/test is the shadow test, not a rule's id."""
    for method, path, allowed in (
        ("GET", "/v1/rules/test", "POST"),
        ("DELETE", "/v1/rules/test", "POST"),
        ("OPTIONS", "/v1/rules/test", "POST"),
        ("PUT", "/v1/snapshots/latest", "GET"),
        ("PUT", "/v1/rules/some-rule", "DELETE, GET, PATCH"),
    ):
        status, payload, headers = raw(daemon, method, path)
        assert (status, headers.get("Allow")) == (405, allowed), (method, path, payload)
        assert payload["error"]["code"] == "method_not_allowed"


def test_illegal_transitions_are_409_naming_both_states(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    c = daemon.client()
    accepted = c.submit(request_body(feeds, "SPX_strikes.csv"))
    daemon.wait_job(accepted["job_id"])
    with pytest.raises(ApiError) as exc:
        c.retry(accepted["job_id"])
    assert (
        exc.value.status == 409
        and "COMPLETED" in exc.value.message
        and "QUEUED" in exc.value.message
    )
    with pytest.raises(ApiError) as exc:
        c.cancel(accepted["job_id"])
    assert exc.value.status == 409


def test_a_404_source_fails_clearly_and_a_trader_can_retry(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    c = daemon.client()
    accepted = c.submit(request_body(feeds, "no-such-file.json"))
    failed = daemon.wait_job(accepted["job_id"])
    assert failed["job"]["status"] == "failed"
    assert failed["job"]["retry_count"] == 0  # a 404 is not retried
    assert "not_found" in failed["job"]["error_message"]
    retried = c.retry(accepted["job_id"])
    assert retried["status"] == "queued" and retried["retry_count"] == 1
    again = daemon.wait_job(accepted["job_id"])
    assert again["job"]["status"] == "failed" and again["job"]["retry_count"] == 1


def test_cancel_a_queued_job_and_bump_another(daemon: RunningDaemon, feeds: FeedServer) -> None:
    c = daemon.client()
    slow = [
        c.submit(request_body(feeds, "SPY.json?delay=2", market_symbol="SPY")) for _ in range(3)
    ]
    waiting = c.submit(request_body(feeds, "SPY.json", market_symbol="SPY", data_type="historical"))
    bump = c.submit(request_body(feeds, "SPY.json", market_symbol="SPY", data_type="historical"))
    cancelled = c.cancel(waiting["job_id"])
    assert cancelled["status"] == "cancelled"
    moved = c.set_level(bump["job_id"], "critical")
    assert moved["priority_level"] == "critical" and moved["deadline"] is not None
    with pytest.raises(ApiError) as exc:
        c.set_level(bump["job_id"], "urgent")
    assert exc.value.status == 422
    for a in slow:
        daemon.wait_job(a["job_id"])
    assert daemon.wait_job(bump["job_id"])["job"]["status"] == "completed"
    history = c.job(waiting["job_id"])["history"]
    assert history[-1]["to_status"] == "cancelled"


def test_queues_sla_and_metrics(daemon: RunningDaemon) -> None:
    c = daemon.client()
    queues = c.queues()
    assert [lv["level"] for lv in queues["levels"]] == ["critical", "high", "medium", "low"]
    for lv in queues["levels"]:
        assert {
            "depth",
            "in_flight",
            "oldest_wait_s",
            "next_deadline_in_s",
            "sla_met_ratio",
            "throughput_per_min",
        } <= set(lv)
    assert queues["workers"]["total"] == 2
    sla = c.sla()
    assert {"breaches", "at_risk", "levels"} <= set(sla)
    text = c.metrics()
    for family in (
        'gexd_queue_depth{level="critical"}',
        "gexd_sla_met_ratio",
        "gexd_source_reliability",
        "gexd_store_commits_total",
        "# TYPE gexd_dispatch_total counter",
    ):
        assert family in text


def test_rules_crud_test_and_errors_at_the_right_position(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    c = daemon.client()
    names = {r["name"] for r in c.rules()["rules"]}
    assert {"current-day index data", "high volume strikes"} <= names
    with pytest.raises(ApiError) as exc:
        c.create_rule(
            {
                "name": "bad",
                "condition": "market_symbol == 'SPY' and len(x) > 1",
                "priority_score": 0.5,
            }
        )
    assert exc.value.status == 422 and "column" in exc.value.message and "call" in exc.value.message
    rule = c.create_rule(
        {"name": "spy desk", "condition": "market_symbol == 'SPY'", "priority_score": 0.7}
    )
    assert rule["version"] == 1
    accepted = c.submit(request_body(feeds, "SPY.json", market_symbol="SPY"))
    assert accepted["priority_level"] == "high"
    assert any(m["name"] == "spy desk" for m in accepted["explanation"]["matched"])
    changed = c.update_rule("spy desk", {"priority_score": 0.95})
    assert changed["version"] == 2
    report = c.test_rules(
        [{"name": "spy desk", "condition": "market_symbol == 'SPY'", "priority_score": 0.2}]
    )
    assert report["requests"] >= 1 and report["changed"] >= 1
    assert any(ch["market_symbol"] == "SPY" for ch in report["changes"])
    disabled = c.update_rule("spy desk", {"is_active": False})
    assert disabled["is_active"] is False
    history = c.rule_history("spy desk")["history"]
    assert [h["change"] for h in history][:2] == ["create", "update"]
    c.delete_rule("spy desk")
    with pytest.raises(ApiError):
        c.rule("spy desk")
    daemon.wait_job(accepted["job_id"])


def test_sources_are_tracked_and_can_be_disabled(daemon: RunningDaemon, feeds: FeedServer) -> None:
    c = daemon.client()
    accepted = c.submit(request_body(feeds, "SPX_strikes.json"))
    daemon.wait_job(accepted["job_id"])
    sources = {s["base_url"]: s for s in c.sources()["sources"]}
    base = feeds.url.rstrip("/")
    assert sources[base]["total_requests"] >= 1
    assert 0.0 <= sources[base]["reliability_score"] <= 1.0
    off = c.set_source_active(base, False)
    assert off["is_active"] is False and off["access"] == "blocked"
    queued = c.submit(request_body(feeds, "SPX_strikes.json"))
    assert c.job(queued["job_id"])["job"]["status"] == "queued"
    on = c.set_source_active(base, True)
    assert on["is_active"] is True
    assert daemon.wait_job(queued["job_id"])["job"]["status"] == "completed"


def test_query_is_read_only_and_sandboxed(daemon: RunningDaemon) -> None:
    c = daemon.client()
    result = c.query("SELECT status, count(*) AS n FROM processing_jobs GROUP BY ALL ORDER BY 1")
    assert result["columns"] == ["status", "n"]
    for sql, needle in (
        ("DELETE FROM processing_jobs", "read-only SELECT"),
        ("SELECT 1; DROP TABLE processing_jobs", "read-only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission"),
        ("COPY (SELECT 1) TO '/tmp/gexd-escape.csv'", "read-only SELECT"),
        ("SELECT * FROM nope", "nope"),
    ):
        with pytest.raises(ApiError) as exc:
            c.query(sql)
        assert exc.value.status == 422 and needle in str(exc.value), (sql, exc.value)
    assert c.query("SELECT count(*) FROM processing_jobs")["rows"][0][0] >= 1


def test_ingest_uploads_a_file_without_naming_a_path(daemon: RunningDaemon) -> None:
    c = daemon.client()
    data = (SAMPLE_FEEDS / "SPX_strikes.parquet").read_bytes()
    accepted = c.ingest_bytes(data, filename="../../../tmp/gexd_evil_SPX.parquet")
    stored = daemon.data_dir / "ingest" / accepted["stored_as"]
    assert "/" not in accepted["stored_as"] and stored.is_file()  # kept inside the data directory
    assert not os.path.exists("/tmp/gexd_evil_SPX.parquet")
    assert accepted["market_symbol"] == "SPX" and accepted["format"]
    done = daemon.wait_job(accepted["job_id"])
    assert done["job"]["status"] == "completed"
    with pytest.raises(ApiError) as exc:
        c.ingest_bytes(b"\x00\x01 not a chain", filename="junk.csv")
    assert (
        exc.value.status == 422 and "not a supported" in exc.value.message
    ) or "binary" in exc.value.message


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_works_as_documented(daemon: RunningDaemon) -> None:
    out = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(daemon.socket), "http://localhost/v1/health"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(out.stdout)["status"] == "ok"


def test_client_reports_an_unreachable_daemon(tmp_path: Any) -> None:
    from gexdaemon.client import DaemonUnreachable

    with Client(tmp_path / "none.sock") as c, pytest.raises(DaemonUnreachable):
        c.health()
