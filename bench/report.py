"""One report of the figures a desk feels: every bench's quick form, each target beside it.

Run from the repository root:
    python bench/report.py [--quick] [--json] [--only cli,ingest,...]

Each bench runs as its own process (`--json`, and `--quick` when asked), one after the
other so they do not share the CPU, and ends with one JSON line that this collects.
Without --json: a table of each figure, its target, the baseline the bench measured in
the same run, and whether the target is met. With --json the last line is one JSON
object: {"ingest": {...}, "isolation": {...}, "tui": {...}, "daemon": {...},
"intake": {...}, "cli": {...}, "store": {...}, "targets": [...], "seconds": {...}}.

The quick form of everything takes about four minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

# name -> the bench script (each prints its JSON object last with --json)
BENCHES = {
    "cli": "cli_bench.py",  # also the idle daemon's memory ("daemon")
    "intake": "api_bench.py",
    "ingest": "ingest_bench.py",
    "isolation": "isolation_bench.py",
    "store": "store_bench.py",
    "tui": "tui_bench.py",
}
EXTRA_ARGS = {"tui": ["--no-daemon"]}  # (c) needs its own minute; the recorded desk is the figure


@dataclass(frozen=True)
class Target:
    section: str
    key: str
    label: str
    goal: str
    met: Callable[[dict[str, Any]], bool]
    baseline: Callable[[dict[str, Any]], str] = lambda _all: ""
    unit: str = ""


def _get(found: dict[str, Any], section: str, key: str) -> Any:
    return found.get(section, {}).get(key)


def _python_baseline(found: dict[str, Any]) -> str:
    return f"python -c pass {_get(found, 'cli', 'python_ms'):.0f} ms"


def _huey_baseline(found: dict[str, Any]) -> str:
    return f"huey SqliteHuey (fsync) {_get(found, 'intake', 'huey_per_s'):,}/s"


def _beats_huey(key: str, floor: float, times: float) -> Callable[[dict[str, Any]], bool]:
    """At least `floor` per second, and `times` what huey's durable queue did in the same run."""

    def met(found: dict[str, Any]) -> bool:
        value = _get(found, "intake", key)
        return bool(value >= floor and value >= times * _get(found, "intake", "huey_per_s"))

    return met


TARGETS = [
    Target(
        "cli",
        "help_ms",
        "gexdaemon --help",
        "<= python + 150 ms",
        lambda f: _get(f, "cli", "help_ms") <= _get(f, "cli", "python_ms") + 150,
        _python_baseline,
        "ms",
    ),
    Target(
        "cli",
        "status_ms",
        "gexdaemon status",
        "<= python + 250 ms",
        lambda f: _get(f, "cli", "status_ms") <= _get(f, "cli", "python_ms") + 250,
        _python_baseline,
        "ms",
    ),
    Target(
        "cli",
        "status_peak_mib",
        "gexdaemon status, peak memory",
        "< 60 MiB",
        lambda f: _get(f, "cli", "status_peak_mib") < 60,
        unit="MiB",
    ),
    Target(
        "cli",
        "analyze_ms",
        "gexdaemon analyze (shared SPX CSV)",
        "<= 400 ms",
        lambda f: _get(f, "cli", "analyze_ms") <= 400,
        _python_baseline,
        "ms",
    ),
    Target(
        "daemon",
        "idle_rss_mib",
        "idle daemon RSS",
        "<= 120 MiB",
        lambda f: _get(f, "daemon", "idle_rss_mib") <= 120,
        unit="MiB",
    ),
    Target(
        "intake",
        "single_per_s",
        "durable single submits, 16 clients",
        ">= 3,000/s and >= 0.5x huey",
        _beats_huey("single_per_s", 3000, 0.5),
        _huey_baseline,
        "/s",
    ),
    Target(
        "intake",
        "single_p99_ms",
        "durable single submits, p99",
        "<= 25 ms",
        lambda f: _get(f, "intake", "single_p99_ms") <= 25,
        unit="ms",
    ),
    Target(
        "intake",
        "batch_per_s",
        "batch submits (1,000 per batch)",
        ">= 50,000/s and >= 5x huey",
        _beats_huey("batch_per_s", 50_000, 5),
        _huey_baseline,
        "/s",
    ),
    Target(
        "intake",
        "drop_to_queued_p50_ms",
        "drop file to QUEUED, p50",
        "<= 50 ms",
        lambda f: _get(f, "intake", "drop_to_queued_p50_ms") <= 50,
        unit="ms",
    ),
    Target(
        "store",
        "daemon_path_transitions_per_s",
        "durable transitions, daemon path",
        ">= 20,000/s",
        lambda f: _get(f, "store", "daemon_path_transitions_per_s") >= 20_000,
        lambda f: f"autocommit {_get(f, 'store', 'autocommit_transitions_per_s'):,}/s",
        "/s",
    ),
    Target(
        "ingest",
        "spx_json_e2e_ms",
        "SPX CBOE JSON end to end",
        "<= 100 ms",
        lambda f: _get(f, "ingest", "spx_json_e2e_ms") <= 100,
        lambda f: (
            f"compute {_get(f, 'ingest', 'spx_json_compute_ms'):.0f} + persist "
            f"{_get(f, 'ingest', 'spx_json_persist_ms'):.0f} ms"
        ),
        "ms",
    ),
    Target(
        "ingest",
        "long_contracts_per_s",
        "long Parquet",
        ">= 1,000,000 contracts/s",
        lambda f: _get(f, "ingest", "long_contracts_per_s") >= 1_000_000,
        unit="/s",
    ),
    Target(
        "isolation",
        "critical_slowdown",
        "CRITICAL beside LOW CPU work",
        "<= 1.25x idle",
        lambda f: _get(f, "isolation", "critical_slowdown") <= 1.25,
        lambda f: (
            f"idle {_get(f, 'isolation', 'critical_idle_ms'):.0f} ms, busy "
            f"{_get(f, 'isolation', 'critical_busy_ms'):.0f} ms"
        ),
        "x",
    ),
    Target(
        "tui",
        "flush_worst_ms",
        "dashboard worst flush, 10k jobs",
        "<= 50 ms",
        lambda f: _get(f, "tui", "flush_worst_ms") <= 50,
        lambda f: f"median {_get(f, 'tui', 'flush_median_ms'):.1f} ms",
        "ms",
    ),
    Target(
        "tui",
        "first_paint_ms",
        "dashboard first paint",
        "< 100 ms",
        lambda f: _get(f, "tui", "first_paint_ms") < 100,
        unit="ms",
    ),
]


def run_bench(name: str, quick: bool) -> tuple[dict[str, Any], float, str]:
    argv = [sys.executable, str(BENCH / BENCHES[name]), "--json", *EXTRA_ARGS.get(name, [])]
    if quick:
        argv.append("--quick")
    started = time.perf_counter()
    ran = subprocess.run(argv, check=False, cwd=REPO, capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - started
    lines = ran.stdout.strip().splitlines()
    if ran.returncode != 0 or not lines:
        tail = (ran.stderr or ran.stdout)[-2000:]
        return {}, took, f"{BENCHES[name]} exited {ran.returncode}:\n{tail}"
    try:
        found = json.loads(lines[-1])
    except ValueError:
        return {}, took, f"{BENCHES[name]} did not end with a JSON line: {lines[-1][:200]}"
    return found, took, ""


def figure(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} {unit}".strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="each bench's quick form (~4 min)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")

    found: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failures: list[str] = []
    for name in names:
        print(f"running {BENCHES[name]}{' --quick' if args.quick else ''} ...", flush=True)
        result, took, error = run_bench(name, args.quick)
        seconds[name] = round(took, 1)
        if error:
            failures.append(error)
        for section, values in result.items():
            found.setdefault(section, {}).update(values)

    rows = []
    for t in TARGETS:
        value = _get(found, t.section, t.key)
        if value is None:
            continue
        try:
            met, base = t.met(found), t.baseline(found)
        except (TypeError, KeyError):
            met, base = False, ""
        rows.append((t, value, met, base))
    print(f"\nreport ({'quick' if args.quick else 'full'}; {sum(seconds.values()):.0f} s in all)")
    print(f"  {'figure':<38} {'value':>14}   {'target':<28} {'met':<4} baseline (same run)")
    for t, value, met, base in rows:
        print(
            f"  {t.label:<38} {figure(value, t.unit):>14}   {t.goal:<28} "
            f"{'yes' if met else 'NO':<4} {base}"
        )
    for error in failures:
        print(f"\nfailed: {error}")
    if args.json:
        found["targets"] = [
            {"figure": f"{t.section}.{t.key}", "value": v, "target": t.goal, "met": m}
            for t, v, m, _ in rows
        ]
        found["seconds"] = seconds
        print(json.dumps(found))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
