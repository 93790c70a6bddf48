"""The compute processes (HIGH, MEDIUM and LOW chains) run below the daemon's priority, so
on a busy machine a CRITICAL job's fetch and chain go first (bench/isolation_bench.py
measures the effect; this checks the setting reaches the processes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.daemon.harness import running_daemon
from tests.reliability.crashlab import descendants


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat, counted after the command name


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("nice", [10, 0])
def test_compute_processes_run_at_the_configured_niceness(nice: int) -> None:
    base = os.nice(0)
    with running_daemon(f"[daemon]\ncompute_slots = 2\ncompute_nice = {nice}\n") as d:
        assert d.proc is not None
        assert niceness(d.proc.pid) == base  # the daemon itself is not lowered
        below = sorted(niceness(p) - base for p in descendants(d.proc.pid))
        assert below.count(nice) >= 2 if nice else below.count(0) == len(below)
