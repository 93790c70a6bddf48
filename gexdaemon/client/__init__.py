"""Client library for the daemon's socket API: `Client` (blocking) and `AsyncClient` (asyncio).

Scripts, the CLI and the dashboard all go through here. Both clients expose the
same calls, one per route of `gexdaemon.protocol.routes`, and answer with the
route's wire shape (`gexdaemon.protocol.shapes`; a shape also reads like a
dict). `AsyncClient` adds `events()`, the WebSocket event stream. Errors arrive
as `ApiError` carrying the API's code, message, field-path details and request
id; `DaemonUnreachable` means nothing answers on the socket.

    from gexdaemon.client import Client
    with Client("var/run/gexd.sock") as gexd:
        accepted = gexd.submit({"source_url": "https://cdn.cboe.com/.../_SPX.json",
                                "data_type": "real_time", "market_symbol": "SPX"})
        job = gexd.wait(accepted.job_id)

The blocking client needs only the standard library and msgspec, so a CLI verb
starts fast; the asyncio client (aiohttp) loads when it is first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gexdaemon.client.blocking import Client
from gexdaemon.client.calls import AnswerMismatch, ApiError, DaemonUnreachable

if TYPE_CHECKING:
    from gexdaemon.client.aio import AsyncClient, EventStream

__all__ = [
    "AnswerMismatch",
    "ApiError",
    "AsyncClient",
    "Client",
    "DaemonUnreachable",
    "EventStream",
]


def __getattr__(name: str) -> Any:
    if name in ("AsyncClient", "EventStream"):
        from gexdaemon.client import aio  # noqa: PLC0415 - aiohttp only for those who use it

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
