"""The sync client against a socket that misbehaves: a clear error, and the client stays usable."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.client import Client, DaemonUnreachable

HEALTHY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"status":"ok"}'
)


@pytest.fixture
def odd_server() -> Iterator[Path]:
    """A Unix socket that answers its first connection with bytes that are not HTTP and
    every later one like a healthy daemon."""
    path = Path(tempfile.mkdtemp(prefix="gxc-")) / "odd.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        answers = [b"SSH-2.0-OpenSSH_9.6\r\n"]
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(answers.pop() if answers else HEALTHY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    server.close()


def test_an_answer_that_is_not_http_is_named_and_the_client_recovers(odd_server: Path) -> None:
    client = Client(odd_server, timeout=5)
    with pytest.raises(DaemonUnreachable, match="does not speak HTTP"):
        client.health()
    # The broken connection was dropped: the next call opens a fresh one and works.
    assert client.health() == {"status": "ok"}
    client.close()
