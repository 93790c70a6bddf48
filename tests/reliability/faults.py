"""Faults a feed can throw at the daemon, what each must end in, and how to check it.

Shared by tests/reliability/test_faults.py (each fault once) and bench/faults.py
(each fault many times, with the tally). Every fault runs against a feed server of
its own (a port, hence a data source, of its own), so the reliability figures of a
source are exactly the fetches of that fault's jobs.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.daemon.harness import SAMPLE_FEEDS

FAULT_TIMEOUT_S = 1.5
MAX_BODY_BYTES = 1 << 20
MAX_REDIRECTS = 3
MAX_RETRIES = 3
BASE_DELAY_S = 0.05
MAX_DELAY_S = 0.2

# Short level timeouts, a 1 MiB body limit and a fast breaker, layered on the harness's
# base configuration.
FAULT_CONFIG = f"""
[daemon]
workers = 4

[retry]
max_retries = {MAX_RETRIES}
base_delay_s = {BASE_DELAY_S}
max_delay_s = {MAX_DELAY_S}

[sources]
# A network, not a host name: intake and the fetcher must read the allowlist alike
# (the fetcher once compared names only and refused what intake had accepted).
allowed_hosts = ["127.0.0.0/8"]
max_body_bytes = {MAX_BODY_BYTES}
max_redirects = {MAX_REDIRECTS}
breaker_failures = 3
breaker_cooldown_s = 1.5
max_concurrency = 4

[sources.timeouts]
critical = {FAULT_TIMEOUT_S}
high = {FAULT_TIMEOUT_S}
medium = {FAULT_TIMEOUT_S}
low = {FAULT_TIMEOUT_S}
"""

LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><form action="/login"><input name="user"><input name="password" type="password"></form></body>
</html>
"""


@dataclass(frozen=True)
class Fault:
    name: str
    path: str  # on the feed server, with the fault's query
    status: str  # the job's final status
    code: str | None  # the failure code the error message starts with
    retried: bool  # transient: retried up to the limit
    phrases: tuple[str, ...] = ()  # what the trader's message must say
    per_fetch: int = 1  # HTTP requests the server sees per fetch (redirect hops + 1)
    retry_after_s: float = 0.0

    def successes(self, fetches: int) -> int:
        # Only a chain that arrives and computes is a successful request of its source: a
        # body that is no chain, or does not parse, counts against it (the seed's
        # successful / total), like a failed fetch.
        return fetches if self.status == "completed" else 0


FAULTS = (
    Fault(
        "http 500",
        "SPX_strikes.csv?status=500",
        "failed",
        "server_error",
        True,
        ("500 Internal Server Error", f"gave up after {MAX_RETRIES} retries"),
    ),
    Fault(
        "http 503 with Retry-After",
        "SPX_strikes.csv?status=503&retry_after=1",
        "failed",
        "server_error",
        True,
        ("503 Service Unavailable", "asks to wait 1 s", f"gave up after {MAX_RETRIES} retries"),
        retry_after_s=1.0,
    ),
    Fault(
        "timeout (no answer)",
        "SPX_strikes.csv?delay=4",
        "failed",
        "fetch_timeout",
        True,
        (f"within {FAULT_TIMEOUT_S:g} s", f"gave up after {MAX_RETRIES} retries"),
    ),
    Fault(
        "very slow body",
        "SPX_strikes.csv?drip=4000",
        "failed",
        "fetch_timeout",
        True,
        (f"within {FAULT_TIMEOUT_S:g} s",),
    ),
    Fault(
        "truncated body",
        "SPX_strikes.csv?truncate=1000",
        "failed",
        "truncated_body",
        True,
        ("closed after 1000 bytes of the 43.3 KiB", "cut short"),
    ),
    Fault(
        "wrong content type, right bytes",
        "SPX_strikes.csv?ctype=text/html",
        "completed",
        None,
        False,
    ),
    Fault(
        "a web page instead of data",
        "login.html",
        "failed",
        "wrong_content",
        False,
        ("web page", "not retried"),
    ),
    Fault(
        "bytes of no chain format",
        "SPX_strikes.csv?junk=1",
        "failed",
        "invalid_file",
        False,
        ("not an option chain",),
    ),
    Fault(
        "invalid JSON",
        "broken/truncated_SPX.json",
        "failed",
        "invalid_file",
        False,
        ("truncated_SPX.json", "not valid JSON"),
    ),
    Fault(
        "gzip bomb",
        "SPX_strikes.csv?bomb=64",
        "failed",
        "body_too_large",
        False,
        ("once decompressed", "max_body_bytes"),
    ),
    Fault(
        "oversized body",
        "_SPX.json",
        "failed",
        "body_too_large",
        False,
        ("announced 12.0 MiB", "max_body_bytes"),
    ),
    Fault(
        "redirect loop",
        "SPX_strikes.csv?loop=1",
        "failed",
        "too_many_redirects",
        False,
        (f"more than {MAX_REDIRECTS} redirects",),
        per_fetch=MAX_REDIRECTS + 1,
    ),
    Fault(
        "redirects within the limit",
        "SPX_strikes.csv?redirect=2",
        "completed",
        None,
        False,
        per_fetch=3,
    ),
    Fault("gzip body", "SPX_strikes.csv?gzip=1", "completed", None, False),
    Fault(
        "404",
        "no_such_chain.csv",
        "failed",
        "not_found",
        False,
        ("404 Not Found", "check the URL"),
    ),
)


def feed_folder(root: Path) -> Path:
    """The files the faults serve: a few sample chains, a broken one and a login page."""
    folder = root / "feeds"
    (folder / "broken").mkdir(parents=True, exist_ok=True)
    for name in ("SPX_strikes.csv", "_SPX.json", "broken/truncated_SPX.json"):
        shutil.copyfile(SAMPLE_FEEDS / name, folder / name)
    (folder / "login.html").write_bytes(LOGIN_PAGE)
    return folder


def request_for(base_url: str, fault: Fault) -> dict[str, Any]:
    return {
        "source_url": base_url + fault.path,
        "data_type": "historical",  # LOW: no deadline, so retries are never cut short by one
        "market_symbol": "SPX",
    }


_DELAY = re.compile(r"retry (\d+) of \d+ in ([0-9.]+) s")


def _instant(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def check_outcome(fault: Fault, found: dict[str, Any]) -> list[str]:
    """What is wrong with a finished job of this fault (empty: it behaved)."""
    job, history = found["job"], found["history"]
    problems: list[str] = []
    if job["status"] != fault.status:
        problems.append(f"ended {job['status']}, expected {fault.status} ({job['error_message']})")
        return problems
    attempts = sum(1 for e in history if e["to_status"] == "processing")
    if fault.retried:
        if job["retry_count"] != MAX_RETRIES or attempts != MAX_RETRIES + 1:
            problems.append(
                f"{attempts} attempts, {job['retry_count']} retries: expected {MAX_RETRIES} retries"
            )
        for i, event in enumerate(history):
            match = _DELAY.fullmatch(event.get("reason") or "")
            if event["to_status"] != "queued" or event["from_status"] != "failed" or not match:
                continue
            n, delay = int(match.group(1)), float(match.group(2))
            ceiling = max(fault.retry_after_s, min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (n - 1)))
            if delay > ceiling + 0.05 or delay < fault.retry_after_s - 0.05:
                problems.append(f"retry {n} waited {delay} s, outside [0, {ceiling}]")
            started = next((e for e in history[i + 1 :] if e["to_status"] == "processing"), None)
            if started is not None:
                waited = (
                    _instant(started["occurred_at"]) - _instant(event["occurred_at"])
                ).total_seconds()
                if waited < delay - 0.05:
                    problems.append(f"retry {n} started after {waited:.3f} s, before its {delay} s")
    elif job["retry_count"] != 0 or attempts != 1:
        problems.append(f"retried ({attempts} attempts) though {fault.code} is not worth a retry")
    if fault.code is not None:
        message = job["error_message"] or ""
        if not message.startswith(fault.code + ":"):
            problems.append(f"message does not start with {fault.code}: {message!r}")
        if "will retry" in message:
            problems.append(f"final message still promises a retry: {message!r}")
        if "fetch-" in message:
            problems.append(f"message names the daemon's spool file: {message!r}")
        for phrase in fault.phrases:
            if phrase not in message:
                problems.append(f"message lacks {phrase!r}: {message!r}")
    return problems


def check_figures(
    source: dict[str, Any], served: int, fetches: int, successes: int, per_fetch: int
) -> list[str]:
    """A source's reliability figures against the jobs' fetches and the server's own count."""
    problems = []
    if source["total_requests"] != fetches:
        problems.append(f"total_requests {source['total_requests']}, jobs fetched {fetches} times")
    if source["successful_requests"] != successes:
        problems.append(
            f"successful_requests {source['successful_requests']}, {successes} fetches succeeded"
        )
    expected_score = successes / fetches if fetches else 1.0
    if abs(source["reliability_score"] - expected_score) > 1e-9:
        problems.append(
            f"reliability_score {source['reliability_score']}, expected {expected_score}"
        )
    if served != fetches * per_fetch:
        problems.append(f"the feed server answered {served} requests for {fetches} fetches")
    return problems
