"""The asyncio client (aiohttp over the Unix socket) and the event stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from gexdaemon.client.calls import (
    FINAL_STATUSES,
    IDLE_CONNECTION_S,
    ApiError,
    Calls,
    DaemonUnreachable,
    decode_answer,
    raise_for,
)
from gexdaemon.core.errors import GexError
from gexdaemon.core.vocab import EventType
from gexdaemon.protocol.routes import Route
from gexdaemon.protocol.shapes import EVENT_DATA, EventMessage, JobDetail, StateMessage

_decoder = msgspec.json.Decoder()


class AsyncClient(Calls):
    """asyncio client, with the event stream."""

    def __init__(
        self, socket_path: str | Path, *, timeout: float = 60.0, origin: str | None = None
    ) -> None:
        super().__init__(socket_path, origin=origin)
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

    async def _send(
        self, route: Route, target: str, payload: bytes | None, sent: dict[str, str]
    ) -> Any:
        url = "http://localhost" + target
        try:
            async with self._http().request(
                route.method,
                url,
                data=payload,
                headers=sent,
            ) as response:
                data = await response.read()
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"no daemon answers on {self.socket_path} ({exc})") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise DaemonUnreachable(f"lost the daemon on {self.socket_path} ({exc})") from None
        if response.status >= 400:
            raise_for(response.status, data)
        return decode_answer(route, data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def events(self) -> EventStream:
        """The event stream: first a `StateMessage`, then numbered `EventMessage`s.

        An event of type `resync` means events were dropped; a fresh state follows.
        Iterate it with `async for`; `await stream.resync()` asks for a fresh state.
        """
        return EventStream(self)

    async def wait(
        self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.2
    ) -> JobDetail:
        give_up = asyncio.get_running_loop().time() + timeout_s
        while True:
            found: JobDetail = await self.job(job_id)
            if found.job.status in FINAL_STATUSES:
                return found
            if asyncio.get_running_loop().time() > give_up:
                raise GexError(
                    f"job {job_id} is still {found.job.status.upper()} after {timeout_s:.0f} s"
                )
            await asyncio.sleep(poll_s)


def decode_message(raw: bytes) -> StateMessage | EventMessage:
    """One message of the event stream, its `data` decoded into the shape its type names."""
    value = _decoder.decode(raw)
    if isinstance(value, dict) and value.get("type") == "snapshot":
        return msgspec.convert(value, StateMessage)
    message = msgspec.convert(value, EventMessage)
    shape = EVENT_DATA.get(message.type) if isinstance(message.type, EventType) else None
    if shape is not None and isinstance(message.data, dict):
        message.data = msgspec.convert(message.data, shape)
    return message


class EventStream:
    """One connection to GET /v1/events: an async iterator of decoded messages."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._done = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StateMessage | EventMessage:
        if self._done:
            raise StopAsyncIteration
        ws = self._ws or await self._connect()
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raw = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                return decode_message(raw)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                await self.aclose()
                raise StopAsyncIteration

    async def resync(self) -> None:
        """Ask the daemon for a fresh state (after a gap in sequence numbers)."""
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
