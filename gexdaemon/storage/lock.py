"""One daemon per data directory: an advisory lock file that names its holder.

`flock` is released by the kernel when the holder dies, so a crash never leaves
a stale lock; the file's content (pid, start time, command) only serves the
error message.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from gexdaemon.storage.errors import DataDirLocked

LOCK_NAME = "gexd.lock"


class DataDirLock:
    def __init__(self, data_dir: Path, purpose: str = "gexdaemon") -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirLocked(
                f"data directory {self.data_dir} is in use by {holder}; stop that process "
                "first, or use another --data-dir"
            ) from None
        info = {
            "pid": os.getpid(),
            "purpose": self.purpose,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv[:6],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not written its pid yet)"
    what = info.get("purpose", "a process")
    return f"{what} (pid {info.get('pid', '?')}, started {info.get('started_at', '?')})"
