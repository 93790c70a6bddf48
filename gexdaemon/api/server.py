"""The socket API: routes, the error model, peer checks, request ids and the event stream.

Handlers are thin: read and decode, call an `Operations` method, encode. Every
error is `{"error": {"code", "message", "details", "request_id"}}` with a fitting
status: 400 malformed, 403 peer not allowed, 404 unknown id, 409 illegal state
change, 413 too large, 422 validation failed (details carry field paths), 503
shutting down. A 201 from POST /v1/requests means the requests are durably
committed.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import socket
import struct
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from gexdaemon.api import wire
from gexdaemon.api.openapi import openapi_json
from gexdaemon.core.errors import (
    Conflict,
    Forbidden,
    GexError,
    IllegalTransition,
    InvalidInput,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    ShuttingDown,
    Unavailable,
)
from gexdaemon.daemon.events import RESYNC
from gexdaemon.daemon.operations import Operations
from gexdaemon.protocol import routes
from gexdaemon.protocol import shapes as s
from gexdaemon.protocol.routes import Route

OPS = web.AppKey("operations", Operations)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")
ALLOWED_UIDS: web.AppKey[frozenset[int]] = web.AppKey("allowed_uids")
MAX_BODY: web.AppKey[int] = web.AppKey("max_body")

log = structlog.get_logger("gexdaemon.api")
_REQUEST_IDS = random.Random()  # noqa: S311 - request ids correlate logs; they are not secrets
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Slow clients. Headers must arrive, and an idle kept-alive connection is closed, within
# IDLE_TIMEOUT_S (aiohttp's keep-alive timer, armed when a connection opens and after
# each answer); a body gets BODY_GRACE_S plus its size at BODY_MIN_RATE bytes/s. A local
# client sends a whole request in microseconds; these only ever cut off the stuck or
# the hostile, whose connections would otherwise pile up until the daemon runs out of
# file descriptors.
IDLE_TIMEOUT_S = 10.0
BODY_GRACE_S = 5.0
BODY_MIN_RATE = 64 * 1024
# After an answer that left part of a body unread (a 413, a 408), the rest is read and
# dropped for at most this long so the client sees the answer, then the connection closes.
LINGER_S = 2.0


class RequestTimedOut(GexError):
    """A request that did not arrive in time (408)."""

    code = "request_timeout"
    http_status = 408


STATUS_BY_TYPE: tuple[tuple[type[GexError], int], ...] = (
    (MalformedInput, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (IllegalTransition, 409),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (InvalidInput, 422),
    (ShuttingDown, 503),
    (Unavailable, 503),
)


def status_for(exc: GexError) -> int:
    for kind, status in STATUS_BY_TYPE:
        if isinstance(exc, kind):
            return status
    return int(getattr(exc, "http_status", 500))


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=wire.encode(value), status=status, content_type="application/json", headers=headers
    )


def error_response(
    code: str, message: str, status: int, request_id: str, details: list[Any] | None = None
) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": request_id,
        }
    }
    return json_response(body, status, headers={"X-Request-Id": request_id})


# ---------------------------------------------------------------------------
# Middlewares
# ---------------------------------------------------------------------------


# A connection's peer cannot change, so its uid is read once per connection (kept with
# the transport, forgotten with it), not on every request of a kept-alive connection.
_PEER_UIDS: weakref.WeakKeyDictionary[object, int | None] = weakref.WeakKeyDictionary()


def peer_uid(request: web.Request) -> int | None:
    transport = request.transport
    if transport is None:
        return None
    if transport in _PEER_UIDS:
        return _PEER_UIDS[transport]
    sock = transport.get_extra_info("socket")
    uid: int | None = None
    if sock is not None and sock.family == socket.AF_UNIX:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, peer, _gid = struct.unpack("3i", raw)
        uid = int(peer)
    _PEER_UIDS[transport] = uid
    return uid


@web.middleware
async def context_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = (
        request.headers.get("X-Request-Id", "")[:64] or f"{_REQUEST_IDS.getrandbits(64):016x}"
    )
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        uid = peer_uid(request)
        if uid is not None and uid not in request.app[ALLOWED_UIDS]:
            status = 403
            log.warning("peer refused", uid=uid, path=request.path)
            return error_response(
                "forbidden",
                f"uid {uid} may not use this daemon's socket; ask its owner "
                "to add it to [api] allowed_uids",
                403,
                request_id,
            )
        try:
            concrete = _concrete_methods(request)
            if concrete is not None and request.method not in concrete:
                raise web.HTTPMethodNotAllowed(request.method, concrete)
            response = await handler(request)
        except GexError as exc:
            status = status_for(exc)
            if status >= 500:
                log.error("request failed", path=request.path, error=str(exc), code=exc.code)
            answer = error_response(
                exc.code, exc.message, status, request_id, [d.as_dict() for d in exc.details]
            )
            if isinstance(exc, RequestTimedOut | PayloadTooLarge):
                # The rest of the body is still on its way: hang up rather than read it.
                answer.force_close()
            return answer
        except web.HTTPRequestEntityTooLarge:
            status = 413
            return error_response(
                "too_large",
                f"the request body is larger than the {request.app[MAX_BODY]} bytes "
                "allowed ([api] max_body_bytes)",
                413,
                request_id,
            )
        except web.HTTPMethodNotAllowed as exc:
            status = 405
            allowed = ", ".join(sorted(_concrete_methods(request) or exc.allowed_methods))
            answer = error_response(
                "method_not_allowed",
                f"{request.path} does not take {request.method}; it takes {allowed}",
                405,
                request_id,
            )
            answer.headers["Allow"] = allowed
            return answer
        except web.HTTPException as exc:
            status = exc.status
            code = {404: "not_found"}.get(exc.status, "http_error")
            message = (
                f"no such endpoint: {request.method} {request.path}"
                if exc.status == 404
                else exc.reason
            )
            return error_response(code, message, exc.status, request_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("unhandled error", path=request.path)
            return error_response(
                "internal", f"internal error: {type(exc).__name__}: {exc}", 500, request_id
            )
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        # Successful calls are routine (debug); refusals and failures are worth a line.
        (log.info if status >= 400 else log.debug)(
            "api",
            method=request.method,
            path=request.path,
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.unbind_contextvars("request_id")


# A path without parameters is matched before the templates (as OpenAPI reads a path
# table): POST /v1/rules/test is the shadow test, so GET /v1/rules/test is a 405 that
# names POST, not the rule called "test" (reach that one by its id).
_CONCRETE: dict[str, frozenset[str]] = {}
for _route in routes.ROUTES:
    if "{" not in _route.path:
        _CONCRETE[_route.path] = _CONCRETE.get(_route.path, frozenset()) | {_route.method}


def _concrete_methods(request: web.Request) -> frozenset[str] | None:
    """The methods of the parameterless path the request names, if it names one."""
    return _CONCRETE.get(request.path)


# ---------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------


def ops(request: web.Request) -> Operations:
    return request.app[OPS]


HANDLERS: dict[str, Handler] = {}


def handles(route: Route) -> Callable[[Handler], Handler]:
    """Bind a handler to its route (the route table is in gexdaemon.protocol.routes)."""

    def register(handler: Handler) -> Handler:
        HANDLERS[route.name] = handler
        return handler

    return register


def answer(route: Route, value: Any) -> web.Response:
    return json_response(value, route.status)


async def read_json(request: web.Request) -> Any:
    limit = request.app[MAX_BODY]
    body = await read_body(
        request,
        limit,
        f"the request body is larger than the {limit} bytes allowed ([api] max_body_bytes)",
    )
    return wire.decode_body(body)


async def read_body(request: web.Request, limit: int, too_large: str) -> bytes:
    """The whole body, at most `limit` bytes, arriving at a sane pace.

    A client that trickles its body (a byte now and then) would hold a connection and
    a handler for as long as it likes; the body must arrive within BODY_GRACE_S plus
    the time it takes at BODY_MIN_RATE, or the request is cut off with a 408.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(too_large)  # refused before a byte of it is read
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks: list[bytes] = []
    size = 0
    while True:
        budget = started + BODY_GRACE_S + size / BODY_MIN_RATE - loop.time()
        try:
            if budget <= 0:
                raise TimeoutError
            async with asyncio.timeout(budget):
                chunk = await request.content.readany()
        except TimeoutError:
            raise RequestTimedOut(
                f"the request body arrived too slowly ({size} bytes in "
                f"{loop.time() - started:.1f} s); send it at once"
            ) from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)


async def body_of(request: web.Request, route: Route) -> Any:
    """The request body decoded into the route's shape; field problems are a 422 with paths."""
    return wire.fit(await read_json(request), route.body, what="the request body")


def query_of(request: web.Request, route: Route) -> Any:
    """The query string decoded into the route's query shape (a 422 names the parameter)."""
    assert route.query is not None
    return wire.fit_query(request.query, route.query)


def actor(request: web.Request) -> str:
    """Who asks for a change, as a job's history records it: the dashboard, or the peer's uid."""
    if request.headers.get("X-Gexd-Origin") == "tui":
        return "tui"
    uid = peer_uid(request)
    return f"uid {uid}" if uid is not None else "the API"


def plain(route: Route, call: Callable[..., Any]) -> None:
    """Bind a route whose handler only reads what the route declares (its query, then its
    body) and answers with what the operation returns: `call(operations, request, *read)`."""

    async def handler(request: web.Request) -> web.Response:
        read: list[Any] = []
        if route.query is not None:
            read.append(query_of(request, route))
        if route.body is not None:
            read.append(await body_of(request, route))
        result = call(ops(request), request, *read)
        return answer(route, await result if inspect.isawaitable(result) else result)

    handler.__name__ = route.name
    HANDLERS[route.name] = handler


def _id(request: web.Request) -> str:
    """The id in the path as sent: a full id or a short one (the daemon resolves it)."""
    return request.match_info["id"]


# Each operation of the API that is a plain call (the route table says what it reads).
for _route, _call in (
    (routes.HEALTH, lambda o, r: o.health()),
    (routes.CLUSTER, lambda o, r: o.cluster_status()),
    (routes.GET_REQUEST, lambda o, r: o.get_request(_id(r))),
    (
        routes.LIST_JOBS,
        lambda o, r, q: o.list_jobs(
            status=q.status, level=q.level, symbol=q.symbol, limit=q.limit, cursor=q.cursor
        ),
    ),
    (routes.GET_JOB, lambda o, r: o.get_job(_id(r))),
    (routes.CANCEL_JOB, lambda o, r: o.cancel_job(_id(r))),
    (routes.RETRY_JOB, lambda o, r: o.retry_job(_id(r), by=actor(r))),
    (routes.CHANGE_JOB, lambda o, r, change: o.change_job(_id(r), change, by=actor(r))),
    (routes.QUEUES, lambda o, r: o.queues()),
    (routes.SLA, lambda o, r: o.sla()),
    (routes.LIST_RULES, lambda o, r: o.list_rules()),
    (routes.CREATE_RULE, lambda o, r, draft: o.create_rule(draft)),
    (routes.GET_RULE, lambda o, r: o.get_rule(_id(r))),
    (routes.UPDATE_RULE, lambda o, r, change: o.update_rule(_id(r), change)),
    (routes.DELETE_RULE, lambda o, r: o.delete_rule(_id(r))),
    (routes.RULE_HISTORY, lambda o, r: o.rule_history(_id(r))),
    (routes.TEST_RULES, lambda o, r, test: o.test_rules(test)),
    (routes.LIST_SOURCES, lambda o, r: o.list_sources()),
    (routes.CHANGE_SOURCE, lambda o, r, change: o.change_source(_id(r), change)),
    (
        routes.LIST_SNAPSHOTS,
        lambda o, r, q: o.list_snapshots(
            symbol=q.symbol, date=q.date.isoformat() if q.date else None, limit=q.limit
        ),
    ),
    (routes.LATEST_SNAPSHOT, lambda o, r, q: o.latest_snapshot(q.symbol, q.expiry_filter)),
    (routes.GET_SNAPSHOT, lambda o, r: o.get_snapshot(_id(r))),
    (routes.GEX_HISTORY, lambda o, r, q: o.gex_history(r.match_info["symbol"], q.limit)),
    (routes.QUERY, lambda o, r, body: o.query(body.sql, limit=body.limit)),
    (routes.ARCHIVE, lambda o, r: o.archive()),
    (routes.REBUILD_LAKE, lambda o, r: o.rebuild_lake()),
):
    plain(_route, _call)


@handles(routes.SUBMIT)
async def submit_requests(request: web.Request) -> web.Response:
    # Intake validates every entry itself and reports all bad entries at once.
    payload = await read_json(request)
    result = await ops(request).submit_payload(
        payload,
        origin=request.headers.get("X-Gexd-Origin", "api"),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    items = result.requests if isinstance(result, s.AcceptedBatch) else [result]
    if all(item.replayed for item in items):
        # Every request was made before under its key: nothing new, the first answers again.
        return json_response(result, 200, headers={"Idempotent-Replayed": "true"})
    return answer(routes.SUBMIT, result)


@handles(routes.INGEST)
async def ingest(request: web.Request) -> web.Response:
    """Upload a chain file's bytes; the daemon stores it inside its data directory.

    A client never names a path: the API neither reads nor writes files outside
    the data directory.
    """
    o = ops(request)
    q: routes.IngestQuery = query_of(request, routes.INGEST)
    limit = o.max_ingest_bytes
    data = await read_body(
        request, limit, f"the file is larger than the {limit} bytes allowed ([drop] max_file_bytes)"
    )
    result = await o.ingest_upload(data, filename=q.filename, symbol=q.symbol, level=q.level)
    return answer(routes.INGEST, result)


@handles(routes.METRICS)
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=ops(request).metrics_text(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@handles(routes.OPENAPI)
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_json(), content_type="application/json")


@handles(routes.EVENTS)
async def events(request: web.Request) -> web.WebSocketResponse:
    """A state message first, then numbered events; a lagging client gets a resync and a new state."""
    o = ops(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 16)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    sub = o.bus.subscribe()
    reader = asyncio.create_task(_drain_client(ws, sub))
    try:
        await ws.send_bytes(wire.encode(o.state_message()))
        while not ws.closed:
            event = await sub.next(wait_s=1.0)
            if event is None:
                if sub.closed:
                    break
                continue
            await ws.send_bytes(wire.encode(event.message()))
            if event.type is RESYNC:
                await ws.send_bytes(wire.encode(o.state_message()))
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away
    finally:
        sub.close()
        reader.cancel()
        await ws.close()
    return ws


async def _drain_client(ws: web.WebSocketResponse, sub: Any) -> None:
    """Read what the client sends: `{"type": "resync"}` asks for a fresh snapshot."""
    async for msg in ws:
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            try:
                data = wire.decode_body(
                    msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                )
            except MalformedInput:
                continue
            if isinstance(data, dict) and data.get("type") == RESYNC.value:
                sub.request_resync()
        elif msg.type == WSMsgType.ERROR:
            break
    sub.close()


async def _close_websockets(app: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"daemon shutting down")


def build_app(
    operations: Operations, *, max_body_bytes: int, allowed_uids: frozenset[int]
) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[context_and_errors])
    app[OPS] = operations
    app[MAX_BODY] = max_body_bytes
    app[SOCKETS] = weakref.WeakSet()
    app[ALLOWED_UIDS] = frozenset({os.getuid(), 0}) | allowed_uids
    missing = [r.name for r in routes.ROUTES if r.name not in HANDLERS]
    if missing:
        raise RuntimeError(f"routes without a handler: {', '.join(missing)}")
    for route in routes.ROUTES:
        app.router.add_route(route.method, route.path, HANDLERS[route.name], name=route.name)
    app.on_shutdown.append(_close_websockets)
    return app
