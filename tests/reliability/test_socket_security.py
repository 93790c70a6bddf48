"""Socket security: other users are kept out (by the file system, then by SO_PEERCRED),
oversized and trickling requests are cut off without blocking anyone, a thousand idle
connections do not starve service, and no request can make the daemon read or write a
file outside its data directory.

tests/daemon/test_api.py checks the socket's modes (0600 in a 0700 folder); these tests
go on from there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.api.server import IDLE_TIMEOUT_S
from tests.daemon.harness import (
    SAMPLE_FEEDS,
    RunningDaemon,
    make_daemon,
    running_daemon,
    wait_until,
)
from tests.reliability.fuzzing import send, send_raw

NOBODY = 65534
MAX_FILE_BYTES = 65536
SECURITY_CONFIG = f"""
[drop]
max_file_bytes = {MAX_FILE_BYTES}

[api]
max_batch = 5
"""

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="dropping to another uid needs root (the CI runs as root)"
)


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningDaemon]:
    with running_daemon(SECURITY_CONFIG) as d:
        yield d


# A child that becomes uid/gid 65534 (nobody) before it touches the socket. The modules
# are imported first, while still root: nobody may not read the virtualenv.
AS_NOBODY = textwrap.dedent(
    """
    import json, os, socket, sys
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    out = {"uid": os.getuid(), "gid": os.getgid()}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(sys.argv[1])
    except OSError as exc:
        out["errno"] = exc.errno
        print(json.dumps(out))
        raise SystemExit(0)
    sock.sendall(b"GET /v1/health HTTP/1.1\\r\\nHost: gexd\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    out["answer"] = data.decode("utf-8", "replace")
    print(json.dumps(out))
    """
)


def as_nobody(socket_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", AS_NOBODY, str(socket_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(done.stdout)
    assert found["uid"] == NOBODY and found["gid"] == NOBODY
    return found


@needs_root
def test_another_user_cannot_even_reach_the_socket(guarded: RunningDaemon) -> None:
    found = as_nobody(guarded.socket)
    assert found.get("errno") == errno.EACCES, found


@needs_root
def test_another_user_on_a_reachable_socket_gets_403_from_the_peer_check(
    guarded: RunningDaemon,
) -> None:
    folder, sock = guarded.socket.parent, guarded.socket
    os.chmod(folder, 0o711)
    os.chmod(sock, 0o666)
    try:
        found = as_nobody(sock)
    finally:
        os.chmod(sock, 0o600)
        os.chmod(folder, 0o700)
    answer = str(found.get("answer", ""))
    assert answer.startswith("HTTP/1.1 403"), found
    error = json.loads(answer.split("\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "forbidden" and f"uid {NOBODY}" in error["message"]
    assert "allowed_uids" in error["message"]
    assert any(
        e.get("event") == "peer refused" and e.get("uid") == NOBODY for e in guarded.log_events()
    )


def test_a_loose_socket_folder_is_tightened_at_start(tmp_path: Path) -> None:
    d = make_daemon(root=tmp_path)
    os.chmod(tmp_path, 0o777)
    d.start()
    try:
        assert stat.S_IMODE(os.stat(d.socket.parent).st_mode) == 0o700
        st = os.stat(d.socket)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------------------
# Oversized and trickling requests
# ---------------------------------------------------------------------------


def raw_exchange(d: RunningDaemon, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes (the sender stays open), then read until the daemon answers and hangs up."""
    return send_raw(d, data, timeout=timeout, half_close=False)


def status_and_error(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, json.loads(body)["error"] if body.startswith(b"{") else {}


def test_a_body_announced_too_large_is_refused_before_it_is_read(guarded: RunningDaemon) -> None:
    # Only the headers are sent: a 413 must come back without waiting for the body.
    raw = raw_exchange(
        guarded,
        b"POST /v1/requests HTTP/1.1\r\nHost: gexd\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500000000\r\n\r\n",
    )
    status, error = status_and_error(raw)
    assert status == 413 and error["code"] == "too_large", raw[:300]


def test_a_chunked_body_that_grows_too_large_is_refused(guarded: RunningDaemon) -> None:
    piece = b"[" + b" " * 30000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(4)) + b"0\r\n\r\n"
    raw = raw_exchange(
        guarded,
        b"POST /v1/requests HTTP/1.1\r\nHost: gexd\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks,
    )
    status, error = status_and_error(raw)
    assert status == 413 and error["code"] == "too_large", raw[:300]


def test_an_upload_over_the_file_limit_and_a_batch_over_the_batch_limit_are_413(
    guarded: RunningDaemon,
) -> None:
    upload = send(guarded, "POST", "/v1/ingest?filename=SPX_big.csv", b"x" * (MAX_FILE_BYTES + 1))
    assert upload.status == 413 and "max_file_bytes" in upload.json()["error"]["message"]
    one = {
        "source_url": "http://127.0.0.1:1/x.csv",
        "data_type": "snapshot",
        "market_symbol": "SPX",
    }
    batch = send(guarded, "POST", "/v1/requests", json.dumps([one] * 6).encode())
    assert batch.status == 413 and "max_batch" in batch.json()["error"]["message"]


class Trickle(threading.Thread):
    """A client that sends `head` at once, then `tail` a byte every `every` seconds, and
    notes whether the daemon answered or hung up before the tail was out."""

    def __init__(self, d: RunningDaemon, head: bytes, tail: bytes, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.d, self.head, self.tail, self.every = d, head, tail, every
        self.sent = 0
        self.answer = b""
        self.cut_off = False

    def run(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.d.socket))
        try:
            if self.head:
                sock.sendall(self.head)
            sock.settimeout(self.every)
            for i in range(len(self.tail)):
                sock.sendall(self.tail[i : i + 1])
                self.sent = i + 1
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                self.cut_off = True  # an answer, or the daemon hanging up (b"")
                sock.settimeout(5.0)
                with contextlib.suppress(TimeoutError):
                    while chunk:
                        self.answer += chunk
                        chunk = sock.recv(65536)
                return
        except (BrokenPipeError, ConnectionResetError):
            self.cut_off = True
        finally:
            sock.close()


def test_trickling_clients_are_cut_off_and_block_no_one(guarded: RunningDaemon) -> None:
    body = json.dumps(
        {"source_url": "http://127.0.0.1:1/x.csv", "data_type": "snapshot", "market_symbol": "SPX"}
    ).encode()
    slow_body = Trickle(
        guarded,
        b"POST /v1/requests HTTP/1.1\r\nHost: gexd\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode(),
        body,
    )
    slow_headers = Trickle(
        guarded, b"", b"GET /v1/health HTTP/1.1\r\nHost: gexd\r\nX-Slow: " + b"z" * 60
    )
    slow_body.start()
    slow_headers.start()
    answered = 0
    while slow_body.is_alive() or slow_headers.is_alive():
        # Everyone else is served as usual meanwhile (a blocked daemon fails the 5 s timeout).
        found = send(guarded, "GET", "/v1/health", timeout=5.0)
        assert found.status == 200 and found.json()["status"] == "ok"
        answered += 1
        time.sleep(0.2)
    assert answered > 0
    assert slow_body.cut_off and slow_body.sent < len(body), slow_body.answer[:200]
    status, error = status_and_error(slow_body.answer)
    assert status == 408 and error["code"] == "request_timeout", slow_body.answer[:300]
    assert "too slowly" in error["message"]
    assert slow_headers.cut_off and slow_headers.sent < len(slow_headers.tail)
    assert slow_headers.answer == b""  # no request was ever read: the daemon just hung up


# ---------------------------------------------------------------------------
# Idle connections
# ---------------------------------------------------------------------------


def open_sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed between the listing and the look
            count += os.readlink(fd).startswith("socket:")
    return count


def soft_file_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


IDLE_CLIENTS = 1100  # more than a 1024 soft limit can hold


def test_a_thousand_idle_connections_do_not_block_service(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_CLIENTS + 200:
        pytest.skip(f"the hard open-file limit ({hard}) cannot hold {IDLE_CLIENTS} clients")
    d = make_daemon(root=tmp_path)
    # The daemon inherits a common default soft limit of 1024 and must lift it itself.
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        d.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle: list[socket.socket] = []
    try:
        assert d.proc is not None
        pid = d.proc.pid
        assert soft_file_limit(pid) == (
            hard if hard != resource.RLIM_INFINITY else soft_file_limit(pid)
        )
        assert soft_file_limit(pid) > 1024
        baseline = open_sockets(pid)
        for _ in range(IDLE_CLIENTS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(d.socket))
            idle.append(sock)
        wait_until(
            lambda: open_sockets(pid) >= IDLE_CLIENTS,
            what="the daemon to accept every idle client",
        )
        # A normal client is still served, and a write still commits.
        c = d.client(timeout=5)
        assert c.health()["status"] == "ok"
        accepted = c.submit(
            {
                "source_url": "http://127.0.0.1:1/x.csv",
                "data_type": "historical",
                "market_symbol": "SPX",
            }
        )
        assert c.job(accepted["job_id"])["job"]["job_id"] == accepted["job_id"]
        # Idle clients are let go after IDLE_TIMEOUT_S; the descriptors come back.
        wait_until(
            lambda: open_sockets(pid) <= baseline + 5,
            timeout=IDLE_TIMEOUT_S * 3,
            what="the daemon to close the idle connections",
        )
        assert all(s.recv(1) == b"" for s in idle[:50])  # hung up by the daemon, not by us
    finally:
        for sock in idle:
            sock.close()
        assert d.stop() == 0


# ---------------------------------------------------------------------------
# Nothing outside the data directory
# ---------------------------------------------------------------------------

ESCAPE = f"gxd_escape_{os.getpid()}"
PATH_LIKE_NAMES = (
    f"../../../../tmp/{ESCAPE}_1.parquet",
    f"/tmp/{ESCAPE}_2.parquet",
    f"..%2F..%2F..%2Ftmp%2F{ESCAPE}_3.parquet",
    f"....//....//tmp/{ESCAPE}_4.parquet",
    f"ingest/../../../{ESCAPE}_5.parquet",
    "..",
    ".",
    "",
    "/",
    f"C:\\Windows\\{ESCAPE}_6.parquet",
    f"\x00/etc/{ESCAPE}_7.parquet",
    "~/.bashrc",
    f"{ESCAPE}_8.parquet/../../x",
)


@pytest.mark.parametrize("filename", PATH_LIKE_NAMES)
def test_an_upload_never_lands_outside_the_data_directory(
    guarded: RunningDaemon, filename: str
) -> None:
    data = (SAMPLE_FEEDS / "SPX_strikes.parquet").read_bytes()
    before = set(Path("/tmp").glob(f"{ESCAPE}*")) | set(guarded.root.glob(f"**/{ESCAPE}*"))
    answer = send(
        guarded,
        "POST",
        f"/v1/ingest?filename={urllib.parse.quote(filename, safe='')}&symbol=SPX",
        data,
    )
    assert answer.status in (201, 400, 422), answer.body[:300]
    if answer.status == 201:
        stored = answer.json()["stored_as"]
        assert "/" not in stored and "\\" not in stored and not stored.startswith(".")
        kept = guarded.data_dir / "ingest" / stored
        assert kept.is_file() and kept.read_bytes() == data
    after = set(Path("/tmp").glob(f"{ESCAPE}*")) | set(guarded.root.glob(f"**/{ESCAPE}*"))
    outside = {p for p in after - before if not p.is_relative_to(guarded.data_dir / "ingest")}
    assert outside == set()


FILE_SQL = (
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_json_auto('/etc/passwd')",
    "SELECT * FROM read_text('file:///etc/passwd')",
    "SELECT * FROM read_text(['/etc/hostname', '/etc/passwd'])",
    "SELECT * FROM read_text('{data_dir}/../../../../etc/passwd')",
    "SELECT * FROM read_text('{data_dir}/gex/../../../../../etc/passwd')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "DESCRIBE SELECT * FROM read_text('/etc/passwd')",
    "WITH x AS (SELECT 1) SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "COPY (SELECT 1) TO '/tmp/{escape}.csv'",
    "COPY processing_jobs TO '{data_dir}/../{escape}.csv'",
    "EXPORT DATABASE '/tmp/{escape}'",
    "ATTACH '/tmp/{escape}.db' AS escape",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "SELECT 1; SELECT * FROM read_text('/etc/passwd')",
    "CREATE TABLE escape AS SELECT 1",
)


@pytest.mark.parametrize("sql", FILE_SQL)
def test_sql_cannot_reach_files_outside_the_data_directory(
    guarded: RunningDaemon, sql: str
) -> None:
    text = sql.format(data_dir=guarded.data_dir, escape=ESCAPE)
    answer = send(
        guarded,
        "POST",
        "/v1/query",
        json.dumps({"sql": text}).encode(),
        {"Content-Type": "application/json"},
    )
    assert answer.status == 422, answer.body[:300]
    assert answer.json()["error"]["code"] == "validation_failed"
    assert b"root:x:0:0" not in answer.body and b"PATH=" not in answer.body
    assert not list(Path("/tmp").glob(f"{ESCAPE}*"))
    assert not list(guarded.root.glob(f"{ESCAPE}*"))
