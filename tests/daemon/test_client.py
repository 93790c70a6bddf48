"""The sync client against a socket that misbehaves: a clear error, and the client stays usable."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.client import AnswerMismatch, Client, DaemonUnreachable

HEALTHY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\ngexd_up 1\n"
FOREIGN = (
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
        client.metrics()
    # The broken connection was dropped: the next call opens a fresh one and works.
    assert client.metrics() == "gexd_up 1\n"
    client.close()


def test_an_answer_of_the_wrong_shape_names_the_call_and_the_field(
    tmp_path: Path,
) -> None:
    """A daemon of another version (or something else that speaks HTTP) answers JSON this
    client cannot read: the error says which call and which field, not a decoder's trace."""
    path = Path(tempfile.mkdtemp(prefix="gxc-")) / "foreign.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(FOREIGN)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with Client(path, timeout=5) as client, pytest.raises(AnswerMismatch) as info:
        client.health()
    thread.join()
    server.close()
    assert "GET /v1/health" in info.value.message
    assert "version: is required" in info.value.message
