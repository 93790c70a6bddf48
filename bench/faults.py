"""Fault bench: every fault the feed server can inject, many times over, against one daemon.

Run: python bench/faults.py [--per-fault 10]

Faults (tests/reliability/faults.py): 500 and 503 (with Retry-After), no answer within
the level timeout, a body dripping slower than the timeout, a body cut short, a wrong
content type over good bytes, a web page instead of data, bytes of no chain format,
invalid JSON, a gzip bomb, a body over [sources] max_body_bytes, a redirect loop,
redirects within the limit, a gzip body, a 404. Each fault gets a feed server (a port,
so a data source) of its own and `--per-fault` jobs at once.

For every job: the final status, the retries (up to the limit with backoff for transient
faults, none for the others) and the trader's message are checked (`check_outcome`).
For every source: total_requests, successful_requests and reliability_score against the
jobs' fetches and the feed server's own count (`GET /_stats`), and the breaker changes
seen on the event stream. The baseline, in the same run: jobs on a healthy source; the
time to a verdict of each fault is given as a ratio to it.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from machine import describe, print_findings

from tests.daemon.harness import make_daemon, wait_until
from tests.reliability.eventtap import EventTap
from tests.reliability.faults import (
    FAULT_CONFIG,
    FAULTS,
    Fault,
    check_figures,
    check_outcome,
    feed_folder,
    request_for,
)
from tests.reliability.feedfarm import FeedFarm

HEALTHY = Fault("healthy (baseline)", "SPX_strikes.csv", "completed", None, False)


def fetches(found: dict[str, Any]) -> int:
    return sum(1 for e in found["history"] if e["to_status"] == "processing")


def verdict_s(found: dict[str, Any]) -> float:
    events = found["history"]
    first = events[0]["occurred_at"]
    last = events[-1]["occurred_at"]
    return (last - first).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-fault", type=int, default=10, help="jobs per fault (default 10)")
    args = parser.parse_args()
    print(describe())
    n = args.per_fault
    scratch = Path(tempfile.mkdtemp(prefix="gxd-faultfeeds-"))
    farm = FeedFarm(feed_folder(scratch))
    d = make_daemon(FAULT_CONFIG).start()
    tap = EventTap(d.socket)
    started = time.monotonic()
    problems: list[str] = []
    rows = []
    try:
        c = d.client(timeout=60)
        plan: list[tuple[Fault, str, list[str]]] = []
        for fault in (HEALTHY, *FAULTS):
            base = farm.add()
            jobs = [c.submit(request_for(base, fault))["job_id"] for _ in range(n)]
            plan.append((fault, base, jobs))
        print(f"{len(plan)} sources, {n} jobs each, submitted; waiting for every verdict")
        results = {
            fault.name: [d.wait_job(job_id, timeout=600) for job_id in jobs]
            for fault, _, jobs in plan
        }
        sources = {s["base_url"]: s for s in c.sources()["sources"]}
        for fault, base, _ in plan:
            found = results[fault.name]
            total = sum(fetches(f) for f in found)
            # Delayed answers are counted by the server when sent, after the daemon gave up.
            with contextlib.suppress(AssertionError):
                wait_until(
                    lambda b=base, t=total, p=fault.per_fetch: FeedFarm.served(b) >= t * p,
                    timeout=15,
                )
            served = FeedFarm.served(base)
            source = sources[base.rstrip("/")]
            wrong = [p for f in found for p in check_outcome(fault, f)]
            wrong += check_figures(source, served, total, fault.successes(total), fault.per_fetch)
            changes = Counter(
                e["type"].removeprefix("source.")
                for e in tap.of_type("source.")
                if e["data"].get("base_url") == base.rstrip("/")
                and e["type"] not in ("source.updated", "source.created")
            )
            statuses = Counter(f["job"]["status"] for f in found)
            rows.append(
                (
                    fault.name,
                    ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                    total,
                    served,
                    f"{source['successful_requests']}/{source['total_requests']} "
                    f"= {source['reliability_score']:.2f}",
                    " ".join(f"{k} {v}" for k, v in sorted(changes.items())) or "-",
                    statistics.median(verdict_s(f) for f in found),
                    len(wrong),
                )
            )
            problems += [f"{fault.name}: {p}" for p in dict.fromkeys(wrong)]
    finally:
        tap.close()
        code = d.stop()
        farm.close()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(d.root, ignore_errors=True)
    if code != 0:
        problems.append(f"the daemon exited {code} on SIGTERM")
    baseline_s = rows[0][6] or 1e-9
    print(
        f"\n{'fault':34} {'jobs':22} {'fetches':>7} {'served':>6} {'figures (ok/total)':>20} "
        f"{'breaker':28} {'to verdict':>10} {'ratio':>6} problems"
    )
    for name, statuses, total, served, figures, breaker, median_s, wrong in rows:
        print(
            f"{name:34} {statuses:22} {total:7d} {served:6d} {figures:>20} {breaker:28} "
            f"{median_s:9.2f}s {median_s / baseline_s:6.1f} {wrong}"
        )
    injected = sum(r[3] for r in rows[1:])
    jobs = sum(len(v) for v in results.values())
    print(
        f"\n{len(FAULTS)} faults, {injected} faulty answers served, {jobs} jobs "
        f"({n} healthy); problems {len(problems)}; elapsed {time.monotonic() - started:.0f} s"
    )
    return print_findings(problems, 50)


if __name__ == "__main__":
    raise SystemExit(main())
