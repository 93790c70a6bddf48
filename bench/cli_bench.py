"""CLI start and daemon memory: what a desk waits for when it types a verb, and what an idle
daemon holds.

Run from the repository root:  python bench/cli_bench.py [--runs 15] [--quick] [--json]

Each command runs as its own process, `--runs` times, against a bare `python -c pass` in
the same run (the baseline: the interpreter's own start). Medians, and peak RSS from
wait4. `status` asks a real daemon started here in a temporary folder; `analyze` reads
the shared real SPX chain (../shared/data/cboe/spx_quotedata_20220205.csv), or the
bundled sample when the shared folder is absent. The idle daemon's RSS is read from
/proc once it has answered its health check and sat idle for two seconds.

Targets (issue #14): --help within 150 ms of the bare interpreter, status within 250 ms,
peak under 60 MiB; analyze <= 400 ms as a whole process; idle daemon <= 120 MiB.
With --json the last line is one JSON object: {"cli": {...}, "daemon": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, report_arguments
from machine import start_daemon as start_bench_daemon

REPO = Path(__file__).resolve().parent.parent
SHARED_CSV = REPO.parent / "shared" / "data" / "cboe" / "spx_quotedata_20220205.csv"
SAMPLE_CSV = REPO / "sample_feeds" / "SPY_quotedata.csv"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one run."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    run_once(argv, env)  # the first run warms the page cache; not counted
    walls, peaks = [], []
    for _ in range(runs):
        wall, peak, code = run_once(argv, env)
        if code != 0:
            raise SystemExit(f"{' '.join(argv)} exited {code}")
        walls.append(wall)
        peaks.append(peak)
    return {"ms": statistics.median(walls) * 1000, "peak_mib": max(peaks)}


def idle_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc (Linux only)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = report_arguments(ap, "5 runs each")
    runs = 5 if args.quick else args.runs
    print(describe(packages=("duckdb", "pyarrow", "numpy", "msgspec", "pydantic", "textual")))
    chain = SHARED_CSV if SHARED_CSV.exists() else SAMPLE_CSV
    root = Path(tempfile.mkdtemp(prefix="gxc-"))
    proc, sock = start_bench_daemon(root, "[logging]\nlevel = 'warning'\n")
    try:
        time.sleep(2.0)
        rss = idle_rss_mib(proc.pid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
        env.update(GEXD_SOCKET=str(sock), GEXD_DATA_DIR=str(root / "cli-var"))
        gexd = [sys.executable, "-m", "gexdaemon"]
        found = {
            "python": measure([sys.executable, "-c", "pass"], env, runs),
            "help": measure([*gexd, "--help"], env, runs),
            "status": measure([*gexd, "status"], env, runs),
            "analyze": measure([*gexd, "analyze", str(chain)], env, runs),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    base = found["python"]["ms"]
    print(f"\ncli_bench: {runs} runs each, medians; baseline `python -c pass` {base:.0f} ms")
    rows = [
        ("gexdaemon --help", "help", f"<= {base + 150:.0f} ms (python + 150), < 60 MiB"),
        ("gexdaemon status", "status", f"<= {base + 250:.0f} ms (python + 250), < 60 MiB"),
        (f"gexdaemon analyze {chain.name}", "analyze", "<= 400 ms"),
    ]
    print(f"  {'command':<48} {'median':>9} {'over python':>12} {'peak':>9}   target")
    for label, key, target in rows:
        f = found[key]
        print(
            f"  {label:<48} {f['ms']:>7.0f} ms {f['ms'] - base:>9.0f} ms {f['peak_mib']:>6.0f} MiB"
            f"   {target}"
        )
    print(f"  {'idle daemon RSS':<48} {rss:>6.0f} MiB{'':>24}   <= 120 MiB")
    if args.json:
        print(
            json.dumps(
                {
                    "cli": {
                        "python_ms": round(base, 1),
                        "help_ms": round(found["help"]["ms"], 1),
                        "status_ms": round(found["status"]["ms"], 1),
                        "analyze_ms": round(found["analyze"]["ms"], 1),
                        "help_peak_mib": round(found["help"]["peak_mib"], 1),
                        "status_peak_mib": round(found["status"]["peak_mib"], 1),
                        "analyze_file": chain.name,
                    },
                    "daemon": {"idle_rss_mib": round(rss, 1)},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
