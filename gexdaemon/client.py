"""Client library for the daemon's socket API: `Client` (blocking) and `AsyncClient` (asyncio).

Scripts, the CLI and the dashboard all go through here. Both clients expose the
same methods (one definition of each call, shared by both); `AsyncClient` adds
`events()`, the WebSocket event stream. Errors arrive as `ApiError` carrying the
API's code, message, field-path details and request id; `DaemonUnreachable`
means nothing answers on the socket.

    from gexdaemon.client import Client
    with Client("var/run/gexd.sock") as gexd:
        accepted = gexd.submit({"source_url": "https://cdn.cboe.com/.../_SPX.json",
                                "data_type": "real_time", "market_symbol": "SPX"})
        job = gexd.wait(accepted["job_id"])
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from gexdaemon.core.errors import GexError, Problem

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# The daemon closes a connection idle for 10 s; the client lets go of its own first, so it
# never sends a request down a connection the daemon is closing at that very moment.
IDLE_CONNECTION_S = 5.0
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class DaemonUnreachable(GexError):
    code = "daemon_unreachable"


class ApiError(GexError):
    """An error answer from the daemon."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        request_id: str = "",
    ) -> None:
        super().__init__(
            message,
            details=[
                Problem(str(d.get("path", "")), str(d.get("message", "")), str(d.get("rule", "")))
                for d in details
            ],
        )
        self.status = status
        self.code = code
        self.request_id = request_id


def _raise_for(status: int, body: bytes) -> None:
    try:
        payload = _decoder.decode(body) if body else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        payload = {}
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    raise ApiError(
        status,
        str(err.get("code", "http_error")),
        str(err.get("message", f"HTTP {status}: {body[:200]!r}")),
        err.get("details", []) or [],
        str(err.get("request_id", "")),
    )


def _path(template: str, *parts: Any) -> str:
    return template.format(*(urllib.parse.quote(str(p), safe="") for p in parts))


class _Calls:
    """Every API call, once. `_call` returns a value (Client) or an awaitable (AsyncClient)."""

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        text: bool = False,
    ) -> Any:
        raise NotImplementedError  # defined by the two clients

    def health(self) -> Any:
        return self._call("GET", "/v1/health")

    def submit(
        self, requests: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, origin: str = "api"
    ) -> Any:
        """One request (dict) or a batch (list): 201 means durably committed."""
        body = {"requests": list(requests)} if not isinstance(requests, Mapping) else requests
        return self._call("POST", "/v1/requests", body=body, query={"_origin": origin})

    def request(self, request_id: str) -> Any:
        return self._call("GET", _path("/v1/requests/{}", request_id))

    def jobs(
        self,
        *,
        status: str | None = None,
        level: str | None = None,
        symbol: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Any:
        return self._call(
            "GET",
            "/v1/jobs",
            query={
                "status": status,
                "level": level,
                "symbol": symbol,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def job(self, job_id: str) -> Any:
        return self._call("GET", _path("/v1/jobs/{}", job_id))

    def cancel(self, job_id: str) -> Any:
        return self._call("POST", _path("/v1/jobs/{}/cancel", job_id))

    def retry(self, job_id: str) -> Any:
        return self._call("POST", _path("/v1/jobs/{}/retry", job_id))

    def set_level(self, job_id: str, level: str) -> Any:
        return self._call("PATCH", _path("/v1/jobs/{}", job_id), body={"priority_level": level})

    def queues(self) -> Any:
        return self._call("GET", "/v1/queues")

    def sla(self) -> Any:
        return self._call("GET", "/v1/sla")

    def rules(self) -> Any:
        return self._call("GET", "/v1/rules")

    def rule(self, ref: str) -> Any:
        return self._call("GET", _path("/v1/rules/{}", ref))

    def create_rule(self, rule: Mapping[str, Any]) -> Any:
        return self._call("POST", "/v1/rules", body=rule)

    def update_rule(self, ref: str, changes: Mapping[str, Any]) -> Any:
        return self._call("PATCH", _path("/v1/rules/{}", ref), body=changes)

    def delete_rule(self, ref: str) -> Any:
        return self._call("DELETE", _path("/v1/rules/{}", ref))

    def rule_history(self, ref: str) -> Any:
        return self._call("GET", _path("/v1/rules/{}/history", ref))

    def test_rules(
        self, rules: Sequence[Mapping[str, Any]], *, mode: str = "merge", limit: int = 500
    ) -> Any:
        return self._call(
            "POST", "/v1/rules/test", body={"rules": list(rules), "mode": mode, "limit": limit}
        )

    def sources(self) -> Any:
        return self._call("GET", "/v1/sources")

    def set_source_active(self, ref: str, active: bool) -> Any:
        return self._call("PATCH", _path("/v1/sources/{}", ref), body={"is_active": active})

    def snapshots(
        self, *, symbol: str | None = None, date: str | None = None, limit: int = 50
    ) -> Any:
        return self._call(
            "GET", "/v1/snapshots", query={"symbol": symbol, "date": date, "limit": limit}
        )

    def latest_snapshot(self, symbol: str, *, expiry_filter: str | None = None) -> Any:
        return self._call(
            "GET", "/v1/snapshots/latest", query={"symbol": symbol, "expiry_filter": expiry_filter}
        )

    def snapshot(self, snapshot_id: str) -> Any:
        return self._call("GET", _path("/v1/snapshots/{}", snapshot_id))

    def gex_history(self, symbol: str, *, limit: int = 200) -> Any:
        return self._call("GET", _path("/v1/gex/{}/history", symbol), query={"limit": limit})

    def query(self, sql: str, *, limit: int = 1000) -> Any:
        return self._call("POST", "/v1/query", body={"sql": sql, "limit": limit})

    def ingest_bytes(
        self, data: bytes, *, filename: str, symbol: str | None = None, level: str | None = None
    ) -> Any:
        return self._call(
            "POST",
            "/v1/ingest",
            raw=data,
            query={"filename": filename, "symbol": symbol, "level": level},
        )

    def archive(self) -> Any:
        return self._call("POST", "/v1/admin/archive")

    def metrics(self) -> Any:
        return self._call("GET", "/metrics", text=True)

    def openapi(self) -> Any:
        return self._call("GET", "/v1/openapi.json")


def _query_string(query: Mapping[str, Any] | None) -> str:
    if not query:
        return ""
    clean = {k: v for k, v in query.items() if v is not None and not k.startswith("_")}
    return ("?" + urllib.parse.urlencode(clean)) if clean else ""


def _headers(query: Mapping[str, Any] | None, *, json_body: bool) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if json_body:
        headers["Content-Type"] = "application/json"
    origin = (query or {}).get("_origin")
    if origin:
        headers["X-Gexd-Origin"] = str(origin)
    return headers


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


class Client(_Calls):
    """Blocking client (stdlib http.client over the Unix socket); one connection, kept alive."""

    def __init__(self, socket_path: str | Path, *, timeout: float = 60.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._conn: _UnixConnection | None = None

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        text: bool = False,
    ) -> Any:
        payload = raw if raw is not None else (_encoder.encode(body) if body is not None else None)
        target = path + _query_string(query)
        headers = _headers(query, json_body=body is not None)
        for attempt in (1, 2):  # a kept-alive connection the daemon closed: reconnect once
            conn = self._connection()
            try:
                conn.request(method, target, body=payload, headers=headers)
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
            _raise_for(response.status, data)
        if text:
            return data.decode()
        return _decoder.decode(data) if data else None

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
        self, job_id: str, *, timeout: float = 600.0, poll_s: float = 0.2, on_update: Any = None
    ) -> dict[str, Any]:
        """Poll a job until it is COMPLETED, FAILED (for good) or CANCELLED."""
        give_up = time.monotonic() + timeout
        last = None
        while True:
            found = self.job(job_id)
            status = found["job"]["status"]
            if on_update is not None and status != last:
                on_update(found)
            last = status
            if status in FINAL_STATUSES:
                return found  # type: ignore[no-any-return]
            if time.monotonic() > give_up:
                raise GexError(f"job {job_id} is still {status.upper()} after {timeout:.0f} s")
            time.sleep(poll_s)


class AsyncClient(_Calls):
    """asyncio client (aiohttp over the Unix socket), with the event stream."""

    def __init__(self, socket_path: str | Path, *, timeout: float = 60.0) -> None:
        self.socket_path = str(socket_path)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(
                    path=self.socket_path, keepalive_timeout=IDLE_CONNECTION_S
                ),
                timeout=self._timeout,
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        text: bool = False,
    ) -> Any:
        payload = raw if raw is not None else (_encoder.encode(body) if body is not None else None)
        url = "http://localhost" + path + _query_string(query)
        try:
            async with self._http().request(
                method, url, data=payload, headers=_headers(query, json_body=body is not None)
            ) as response:
                data = await response.read()
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"no daemon answers on {self.socket_path} ({exc})") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise DaemonUnreachable(f"lost the daemon on {self.socket_path} ({exc})") from None
        if response.status >= 400:
            _raise_for(response.status, data)
        if text:
            return data.decode()
        return _decoder.decode(data) if data else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def events(self) -> EventStream:
        """The event stream: first {"type": "snapshot", "state": ...}, then numbered events.

        A {"type": "resync"} message means events were dropped; a fresh snapshot follows.
        Iterate it with `async for`; `await stream.resync()` asks for a fresh snapshot.
        """
        return EventStream(self)

    async def wait(
        self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.2
    ) -> dict[str, Any]:
        give_up = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = await self.job(job_id)
            if found["job"]["status"] in FINAL_STATUSES:
                return found  # type: ignore[no-any-return]
            if asyncio.get_running_loop().time() > give_up:
                raise GexError(
                    f"job {job_id} is still {found['job']['status'].upper()} after {timeout_s:.0f} s"
                )
            await asyncio.sleep(poll_s)


class EventStream:
    """One connection to GET /v1/events: an async iterator of decoded messages."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._done = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._done:
            raise StopAsyncIteration
        ws = self._ws or await self._connect()
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raw = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                decoded: dict[str, Any] = _decoder.decode(raw)
                return decoded
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                await self.aclose()
                raise StopAsyncIteration

    async def resync(self) -> None:
        """Ask the daemon for a fresh state snapshot (after a gap in sequence numbers)."""
        ws = self._ws or await self._connect()
        await ws.send_str('{"type": "resync"}')

    async def aclose(self) -> None:
        self._done = True
        if self._ws is not None:
            await self._ws.close()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        client = self._client
        try:
            self._ws = await client._http().ws_connect("http://localhost/v1/events", heartbeat=20.0)
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"no daemon answers on {client.socket_path} ({exc})") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(
                exc.status,
                "handshake_failed",
                f"the event stream refused the connection: {exc.message}",
            ) from None
        return self._ws
