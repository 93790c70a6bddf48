"""Machine and library facts printed at the top of every benchmark, and what they share."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A bench runs as a script (`python bench/x.py`: this folder is first on sys.path) and
# imports `machine` before anything else; from here on the repository's `tests` helpers
# (daemons, feed servers, fault labs) are importable too, with no line of its own for it.
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))


def report_arguments(ap: argparse.ArgumentParser, quick: str) -> argparse.Namespace:
    """Add --quick (`quick` says what it cuts) and --json, the two flags bench/report.py
    passes to the benches it runs, and parse the command line."""
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    return ap.parse_args()


def print_findings(findings: Sequence[object], shown: int) -> int:
    """Print the first `shown` findings (and how many more there are); the exit code: 1 if any."""
    for finding in findings[:shown]:
        print(" ", finding)
    if len(findings) > shown:
        print(f"  ... and {len(findings) - shown} more")
    return 1 if findings else 0


def describe(
    packages: tuple[str, ...] = ("duckdb", "pyarrow", "numpy", "msgspec", "pydantic", "aiohttp"),
) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} CPUs, {mem} RAM\n"
        f"python: {sys.version.split()[0]} ({platform.python_implementation()}); "
        + ", ".join(versions)
    )


def start_daemon(
    root: Path, config: str, *, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], Path]:
    """`gexdaemon run` on `root` with `config`, our own environment's GEXD_* removed;
    returns once it answers its health check (the log is `root/daemon.log`)."""
    from gexdaemon.client import Client, DaemonUnreachable

    cfg = root / "bench.toml"
    cfg.write_text(config)
    sock = root / "gexd.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
    env.update(GEXD_CONFIG=str(cfg), GEXD_DATA_DIR=str(root / "var"), GEXD_SOCKET=str(sock))
    log = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gexdaemon", "run"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    client = Client(sock, timeout=timeout)
    try:
        for _ in range(600):
            try:
                if client.health()["status"] == "ok":
                    return proc, sock
            except DaemonUnreachable:
                time.sleep(0.1)
    finally:
        client.close()
    proc.kill()
    raise SystemExit(f"the daemon did not start; see {root / 'daemon.log'}")
