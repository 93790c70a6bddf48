"""`gexdaemon feed-server`: serve a folder of chain files over HTTP on 127.0.0.1, with faults on demand.

For the demo, tests and benchmarks. Every file under the folder is served at its
relative path. Faults, either for every request (`--latency-ms`, `--error-rate`)
or per request with query parameters:

    ?delay=2.5        wait this many seconds before answering
    ?status=503       answer with this status (and a short body)
    ?drip=4096        send the body at this many bytes per second
    ?truncate=1000    promise the whole length, send this many bytes, hang up
    ?gzip=1           gzip the body (Content-Encoding: gzip)
    ?bomb=512         a gzip body that inflates to this many MiB of zeros
    ?ctype=text/html  lie about the content type
    ?junk=1           send bytes that are no chain format at all
    ?redirect=3       redirect this many times before serving
    ?loop=1           redirect forever
    ?retry_after=5    add Retry-After to an error status

`GET /_stats` returns what was served, per path and status, so tests can compare
a source's reliability figures with what really happened.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

FEED_DIR = web.AppKey("feed_dir", Path)
STATS: web.AppKey[dict[str, int]] = web.AppKey("stats")


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - fault injection, not security


FAULTS = web.AppKey("faults", Faults)


def _number(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None


async def serve(request: web.Request) -> web.StreamResponse:
    faults = request.app[FAULTS]
    stats = request.app[STATS]
    rel = request.match_info["path"]
    delay = _number(request, "delay")
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000.0)
    if delay:
        await asyncio.sleep(delay)
    if request.query.get("loop"):
        _count(stats, f"{rel} 302")
        raise web.HTTPFound(location=f"/{rel}?loop=1&n={random.random()}")  # noqa: S311
    hops = int(_number(request, "redirect") or 0)
    if hops > 0:
        _count(stats, f"{rel} 302")
        query = {k: v for k, v in request.query.items() if k != "redirect"}
        query["redirect"] = str(hops - 1)
        raise web.HTTPFound(location=str(request.rel_url.with_query(query)))
    forced = _number(request, "status")
    if forced is None and faults.error_rate and faults.rng.random() < faults.error_rate:
        forced = 503
    if forced is not None and forced >= 400:
        _count(stats, f"{rel} {int(forced)}")
        headers = {}
        if request.query.get("retry_after"):
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=int(forced), text=f"injected {int(forced)}\n", headers=headers)
    bomb = _number(request, "bomb")
    if bomb:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = bytes(1 << 20)
        body = b"".join(compressor.compress(chunk) for _ in range(int(bomb))) + compressor.flush()
        _count(stats, f"{rel} 200")
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )
    if request.query.get("junk"):
        body = bytes(range(256)) * 64
        ctype = "application/json"
    else:
        root = request.app[FEED_DIR]
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            _count(stats, f"{rel} 404")
            raise web.HTTPNotFound(text=f"no such feed: {rel}\n")
        body = await asyncio.to_thread(path.read_bytes)
        ctype = _content_type(path)
    ctype = request.query.get("ctype", ctype)
    headers = {"Content-Type": ctype}
    if request.query.get("gzip"):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    _count(stats, f"{rel} 200")
    truncate = _number(request, "truncate")
    drip = _number(request, "drip")
    if truncate is None and not drip:
        return web.Response(body=body, headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    limit = int(truncate) if truncate is not None else len(body)
    step = max(1, int(drip / 10)) if drip else 1 << 16
    sent = 0
    try:
        while sent < limit:
            piece = body[sent : min(limit, sent + step)]
            await response.write(piece)
            sent += len(piece)
            if drip:
                await asyncio.sleep(0.1)
        if truncate is not None:
            if request.transport is not None:
                request.transport.close()  # hang up with the body short of Content-Length
            return response
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client gave up on a slow or cut body: the fault did its job, quietly
    return response


def _count(stats: dict[str, int], key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


def _content_type(path: Path) -> str:
    return {
        ".json": "application/json",
        ".ndjson": "application/x-ndjson",
        ".csv": "text/csv",
        ".parquet": "application/vnd.apache.parquet",
    }.get(path.suffix.lower(), "application/octet-stream")


async def index(request: web.Request) -> web.Response:
    root = request.app[FEED_DIR]
    files = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    return web.json_response({"files": files})


async def stats(request: web.Request) -> web.Response:
    counts: dict[str, int] = request.app[STATS]
    return web.json_response(dict(counts))


def build_feed_app(
    folder: Path, *, latency_ms: float = 0.0, error_rate: float = 0.0, seed: int | None = None
) -> web.Application:
    app = web.Application()
    app[FEED_DIR] = folder.resolve()
    app[FAULTS] = Faults(latency_ms=latency_ms, error_rate=error_rate, seed=seed)
    app[STATS] = Counter()  # a dict[str, int] that counts
    app.router.add_get("/", index)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/{path:.+}", serve)
    return app


async def start_feed_server(
    folder: Path,
    *,
    port: int = 0,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    seed: int | None = None,
) -> tuple[web.AppRunner, int]:
    """Start on 127.0.0.1 (port 0 picks a free one); returns the runner and the port."""
    if not await asyncio.to_thread(folder.is_dir):
        raise FileNotFoundError(f"feed folder {folder} does not exist")
    runner = web.AppRunner(
        build_feed_app(folder, latency_ms=latency_ms, error_rate=error_rate, seed=seed),
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
