"""One daemon per data directory, and a WAL that will not replay is never silently dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gexdaemon.storage.errors import DataDirLocked, WalReplayFailed
from gexdaemon.storage.lock import DataDirLock
from gexdaemon.storage.store import Store, move_wal_aside, wal_path
from tests.storage.seeding import store_options


def test_a_second_holder_is_told_who_holds_the_directory(tmp_path: Path) -> None:
    with DataDirLock(tmp_path, purpose="gexdaemon run"):
        with pytest.raises(DataDirLocked) as exc:
            DataDirLock(tmp_path).acquire()
        assert f"pid {os.getpid()}" in str(exc.value) and "gexdaemon run" in str(exc.value)
    with DataDirLock(tmp_path) as again:  # released on exit
        assert again.held


HOLDER = """
import sys, time
from pathlib import Path
from gexdaemon.storage.lock import DataDirLock
lock = DataDirLock(Path(sys.argv[1]), purpose="gexdaemon run").acquire()
print("HELD", flush=True)
sys.stdin.read()
"""


@contextmanager
def another_process(code: str, data_dir: Path, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A Python process running `code` on `data_dir`, once it has printed `ready`; killed after."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == ready
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_lock_held_by_another_process_and_freed_when_it_dies(tmp_path: Path) -> None:
    with another_process(HOLDER, tmp_path, "HELD") as proc:
        with pytest.raises(DataDirLocked) as exc:
            DataDirLock(tmp_path).acquire()
        assert f"pid {proc.pid}" in str(exc.value)
    DataDirLock(tmp_path).acquire().release()  # the kernel released it with the process


def test_duckdb_refuses_a_second_process_with_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from gexdaemon.storage.store import Store, StoreOptions\n"
        "d = Path(sys.argv[1]); s = Store.open(StoreOptions(path=d/'gex.duckdb', lake_dir=d/'gex', archive_dir=d/'a'))\n"
        "print('OPEN', flush=True); sys.stdin.read()"
    )
    with another_process(code, tmp_path, "OPEN"):
        with pytest.raises(DataDirLocked) as exc:
            Store.open(store_options(tmp_path))
        assert "open in another process" in str(exc.value)


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from gexdaemon.storage.store import Store, StoreOptions, Statement
d = Path(sys.argv[1])
s = Store.open(StoreOptions(path=d / "gex.duckdb", lake_dir=d / "gex", archive_dir=d / "a"))
for i in range(50):
    s.commit_sync([Statement("INSERT INTO job_events VALUES (uuid(), ?, now(), NULL, 'queued', '')", [i + 1])])
os._exit(0)
"""


def test_an_unreplayable_wal_stops_the_open_and_can_be_moved_aside(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], check=True)
    wal = wal_path(tmp_path / "gex.duckdb")
    data = bytearray(wal.read_bytes())
    assert len(data) > 400
    for i in range(200, len(data), 7):
        data[i] ^= 0xFF
    wal.write_bytes(bytes(data))

    with pytest.raises(WalReplayFailed) as exc:
        Store.open(store_options(tmp_path))
    message = str(exc.value)
    assert (
        "gexdaemon recover --move-wal" in message and "Nothing has been moved or deleted" in message
    )
    assert wal.exists() and wal.read_bytes() == bytes(data)  # untouched

    moved = move_wal_aside(tmp_path / "gex.duckdb", now=datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    assert moved is not None and moved.name == "gex.duckdb.wal.unreplayable-20261126T120000Z"
    assert moved.read_bytes() == bytes(data) and not wal.exists()
    store = Store.open(store_options(tmp_path))
    try:
        assert (
            store.fetch_sync("SELECT count(*) AS n FROM job_events")[0]["n"] == 0
        )  # at the checkpoint
    finally:
        store.close()
