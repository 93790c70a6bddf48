"""An idle daemon has not loaded the chain libraries; its first chain loads them.

numpy and pyarrow are about 45 MiB of a daemon's memory and nothing needs them until a
chain is read or a snapshot written. The libraries a process has loaded are in its
memory map, so this reads /proc/<pid>/maps of a real daemon: no libarrow while idle,
libarrow once a chain went through (which also shows the check can see it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.harness import SAMPLE_FEEDS, running_daemon

CHAIN_LIBRARIES = ("libarrow", "numpy/_core", "numpy.libs")


def mapped_libraries(pid: int) -> set[str]:
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and (parts[5].endswith(".so") or ".so." in parts[5]):
            found.add(parts[5])
    return found


def chain_libraries(pid: int) -> list[str]:
    return sorted(p for p in mapped_libraries(pid) if any(n in p for n in CHAIN_LIBRARIES))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_an_idle_daemon_has_not_loaded_numpy_or_pyarrow() -> None:
    with running_daemon() as d:
        assert d.proc is not None
        client = d.client()
        assert client.health()["status"] == "ok"
        client.jobs()  # an answer from the store and the API: still idle work
        assert chain_libraries(d.proc.pid) == []

        receipt = client.ingest(SAMPLE_FEEDS / "SPX_strikes.json")
        assert d.wait_job(receipt["job_id"])["job"]["status"] == "completed"
        assert chain_libraries(d.proc.pid) != []  # the first chain loaded them
