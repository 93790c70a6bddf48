"""A redis-server on this machine, started and stopped by us: for `gexdaemon demo --nodes`,
the cluster bench and the tests. A temporary folder, a loopback port, AOF with fsync on
every write unless asked otherwise."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gexdaemon.core.errors import Unavailable


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise Unavailable(
            "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
            "macOS: brew install redis)"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRedis:
    folder: Path
    port: int
    appendfsync: str = "always"
    appendonly: bool = True
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, binary: str | None = None) -> LocalRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            binary or redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", str(self.folder / "redis.log"),
            "--daemonize", "no",
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(  # noqa: S603 - our argv, redis-server from PATH
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise Unavailable(f"redis-server exited {self.proc.returncode}:\n{log}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise Unavailable(f"redis-server on port {self.port} did not answer PING in 20 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: what was acknowledged must survive in the AOF."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> LocalRedis:
        self.kill()
        return self.start()
