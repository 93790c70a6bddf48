"""The blocking client: the standard library's http.client over the Unix socket, one connection kept alive."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gexdaemon.client.calls import (
    FINAL_STATUSES,
    Calls,
    DaemonUnreachable,
    decode_answer,
    raise_for,
)
from gexdaemon.core.errors import GexError
from gexdaemon.protocol.routes import Route
from gexdaemon.protocol.shapes import JobDetail


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client(Calls):
    """Blocking client; one connection, kept alive, reopened once if the daemon closed it."""

    def __init__(
        self, socket_path: str | Path, *, timeout: float = 60.0, origin: str | None = None
    ) -> None:
        super().__init__(socket_path, origin=origin)
        self.timeout = timeout
        self._conn: _UnixConnection | None = None

    def _send(self, route: Route, target: str, payload: bytes | None, sent: dict[str, str]) -> Any:
        for attempt in (1, 2):  # a kept-alive connection the daemon closed: reconnect once
            conn = self._connection()
            try:
                conn.request(route.method, target, body=payload, headers=sent)
                response = conn.getresponse()
                data = response.read()
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                self.close()
                raise DaemonUnreachable(
                    f"no daemon answers on {self.socket_path} ({exc.strerror}); start one with `gexdaemon run`"
                ) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise DaemonUnreachable(
                        f"the daemon on {self.socket_path} closed the connection"
                    ) from None
            except TimeoutError:
                self.close()
                raise DaemonUnreachable(
                    f"the daemon on {self.socket_path} did not answer within {self.timeout:.0f} s"
                ) from None
            except http.client.HTTPException as exc:
                self.close()
                raise DaemonUnreachable(
                    f"what answers on {self.socket_path} does not speak HTTP as the daemon "
                    f"does ({type(exc).__name__}); is it a gexdaemon socket?"
                ) from None
            except BaseException:
                self.close()  # never reuse a connection left mid-request (Ctrl-C, odd errors)
                raise
        if response.status >= 400:
            raise_for(response.status, data)
        return decode_answer(route, data)

    def _connection(self) -> _UnixConnection:
        if self._conn is None:
            self._conn = _UnixConnection(self.socket_path, self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(
        self, path: str | Path, *, symbol: str | None = None, level: str | None = None
    ) -> Any:
        file = Path(path)
        return self.ingest_bytes(file.read_bytes(), filename=file.name, symbol=symbol, level=level)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll_s: float = 0.2,
        on_update: Callable[[JobDetail], None] | None = None,
    ) -> JobDetail:
        """Poll a job until it is COMPLETED, FAILED (for good) or CANCELLED."""
        give_up = time.monotonic() + timeout
        last = None
        while True:
            found: JobDetail = self.job(job_id)
            status = found.job.status
            if on_update is not None and status != last:
                on_update(found)
            last = status
            if status in FINAL_STATUSES:
                return found
            if time.monotonic() > give_up:
                raise GexError(f"job {job_id} is still {status.upper()} after {timeout:.0f} s")
            time.sleep(poll_s)
