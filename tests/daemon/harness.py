"""Start real daemons and feed servers in subprocesses for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gexdaemon.client import ApiError, Client, DaemonUnreachable
from tests.conftest import REPO

SAMPLE_FEEDS = REPO / "sample_feeds"

BASE_CONFIG = """
[daemon]
workers = 2
lease_s = 3.0
heartbeat_s = 0.5
shutdown_grace_s = 5.0

[drop]
settle_ms = 100

[api]
max_body_bytes = 65536

[retry]
base_delay_s = 0.05
max_delay_s = 0.2

[sources]
breaker_failures = 3
breaker_cooldown_s = 1.0

[logging]
level = "info"
"""


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30.0,
    every: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class FeedServer:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stats(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(self.url + "_stats", timeout=5) as response:
            return json.loads(response.read())


def demo_banner(proc: subprocess.Popen[str]) -> str:
    """What `gexdaemon demo` prints before it runs: its lines up to and with `Stop:`."""
    assert proc.stdout is not None
    lines = []
    for line in iter(proc.stdout.readline, ""):
        lines.append(line)
        if line.startswith("Stop:"):
            break
    return "".join(lines)


# A candidate rule the desk tries on the seeded rules: SPY first.
SHADOW_SPY_FIRST = (
    "rules",
    "test",
    "--name",
    "spy first",
    "--condition",
    "market_symbol == 'SPY'",
    "--score",
    "0.95",
)


def start_feed_server(folder: Path = SAMPLE_FEEDS, *args: str) -> FeedServer:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gexdaemon",
            "--json",
            "feed-server",
            "--dir",
            str(folder),
            "--port",
            "0",
            *args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(
            f"feed server did not start: {proc.stderr.read() if proc.stderr else ''}"
        )
    return FeedServer(proc, json.loads(line)["url"])


@dataclass
class RunningDaemon:
    root: Path
    data_dir: Path
    socket: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    @property
    def drop(self) -> Path:
        return self.data_dir / "drop"

    def client(self, timeout: float = 30.0) -> Client:
        c = Client(self.socket, timeout=timeout)
        self.clients.append(c)
        return c

    def start(self) -> RunningDaemon:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gexdaemon", "run"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        probe = Client(self.socket, timeout=5)

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}"
                )
            try:
                return probe.health()["status"] == "ok"
            except (DaemonUnreachable, ApiError):
                return False

        try:
            wait_until(healthy, timeout=60, what="the daemon to answer on its socket")
        finally:
            probe.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        for c in self.clients:
            c.close()
        self.clients.clear()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"daemon did not stop within {timeout} s:\n{self.log_text()[-3000:]}"
            ) from None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def cli(
        self, *args: str, check: bool = False, input_text: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "gexdaemon", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            input=input_text,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"gexdaemon {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until a job is COMPLETED, FAILED (a retry rewrites FAILED to QUEUED in the
        same commit, so FAILED in the database is final) or CANCELLED."""
        c = self.client()

        def finished() -> dict[str, Any] | None:
            found: dict[str, Any] = c.job(job_id)
            return found if found["job"]["status"] in ("completed", "failed", "cancelled") else None

        return wait_until(finished, timeout=timeout, what=f"job {job_id} to finish")  # type: ignore[no-any-return]


def make_daemon(extra_config: str = "", *, root: Path | None = None) -> RunningDaemon:
    """A daemon on a fresh, short temporary root (Unix socket paths are limited to ~100 bytes)."""
    root = root or Path(tempfile.mkdtemp(prefix="gxd-"))
    cfg = root / "test.toml"
    cfg.write_text(BASE_CONFIG)
    files = [str(cfg)]
    if extra_config:  # a partial override file on top, as a desk would layer one
        override = root / "override.toml"
        override.write_text(extra_config)
        files.append(str(override))
    data_dir = root / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
    env.update(
        GEXD_CONFIG=os.pathsep.join(files),
        GEXD_DATA_DIR=str(data_dir),
        GEXD_SOCKET=str(root / "gexd.sock"),
        PYTHONUNBUFFERED="1",
    )
    return RunningDaemon(
        root=root, data_dir=data_dir, socket=root / "gexd.sock", env=env, log=root / "daemon.log"
    )


@contextlib.contextmanager
def running_daemon(extra_config: str = "") -> Iterator[RunningDaemon]:
    daemon = make_daemon(extra_config).start()
    try:
        yield daemon
    finally:
        code = daemon.stop()
        assert code == 0, f"daemon exited {code} on SIGTERM:\n{daemon.log_text()[-3000:]}"
