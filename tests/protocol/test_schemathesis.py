"""The OpenAPI document against a real daemon: schemathesis, every check, every phase.

A daemon runs on a temporary data directory (real DuckDB, embedded mode) as the
other integration tests start it; a small bridge serves its Unix socket on a free
loopback TCP port, and `schemathesis run` loads `GET /v1/openapi.json` from it and
runs the examples, coverage, fuzzing and stateful phases with all checks (enabled
in `schemathesis.toml`, which also holds the one documented exception). Any failure
fails the test, with schemathesis's report in the assertion.

The run is deterministic (`--generation-deterministic`, one worker, a bounded number
of examples per operation) so CI sees the same cases every time; GEXD_FUZZ_SEED and
GEXD_FUZZ_EXAMPLES explore further by hand. Generation is extended
(`schemathesis_hooks`) only for values whose validity no JSON Schema can express: a
SQL SELECT, a rule condition, an optionable ticker, a URL on an allowed host (the
test's own feed server), a chain file's bytes and a request time not in the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gexdaemon.protocol import routes
from tests.conftest import REPO
from tests.daemon.harness import FeedServer, RunningDaemon, running_daemon, start_feed_server

pytest.importorskip("schemathesis")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MAX_EXAMPLES = int(os.environ.get("GEXD_FUZZ_EXAMPLES", "100"))  # per operation and phase
PHASES = "examples,coverage,fuzzing,stateful"
# The daemon's own body limit, not the harness's 64 KiB: the document allows SQL and
# rule sets larger than that, and a body the document allows must not meet a 413.
CONFIG = """
[api]
max_body_bytes = 8388608
"""


class UnixBridge:
    """127.0.0.1:<free port> -> the daemon's Unix socket, byte for byte, in a thread."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unix-bridge", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> UnixBridge:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the TCP bridge did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop)
        self._thread.join(10)

    def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def generation() -> list[str]:
    """Deterministic by default; GEXD_FUZZ_SEED=<n> explores other cases (seeded, not in CI)."""
    seed = os.environ.get("GEXD_FUZZ_SEED")
    return ["--seed", seed] if seed else ["--generation-deterministic"]


@pytest.fixture(scope="module")
def fuzzed_daemon() -> Iterator[RunningDaemon]:
    with running_daemon(CONFIG) as d:
        yield d


@pytest.fixture(scope="module")
def sample_feeds() -> Iterator[FeedServer]:
    server = start_feed_server()
    yield server
    server.stop()


def test_the_api_passes_schemathesis(
    fuzzed_daemon: RunningDaemon, sample_feeds: FeedServer, tmp_path: Path
) -> None:
    with UnixBridge(fuzzed_daemon.socket) as bridge:
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=5):
            pass
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "SCHEMATHESIS_HOOKS": "tests.protocol.schemathesis_hooks",
            "GEXD_FUZZ_FEEDS": sample_feeds.url,
            "NO_COLOR": "1",
        }
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"http://127.0.0.1:{bridge.port}/v1/openapi.json",
                "--phases",
                PHASES,
                "--max-examples",
                str(MAX_EXAMPLES),
                *generation(),
                "--workers",
                "1",
                # A WebSocket: no HTTP answer to check (tests/daemon covers the stream).
                "--exclude-path",
                routes.EVENTS.path,
                "--request-timeout",
                "30",
                "--no-color",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        took = time.monotonic() - started
    output = result.stdout[-60000:] + result.stderr[-5000:]
    assert result.returncode == 0, f"schemathesis failed after {took:.0f} s:\n{output}"
    print(f"schemathesis passed in {took:.0f} s:\n{result.stdout[-4000:]}")  # shown with -rP
