"""fetch_to_file against a real aiohttp server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gexdaemon.core.retry import FailureCode
from gexdaemon.fetch.http import FetchError, FetchResult, fetch_to_file, sniff, sniff_bytes

CHAIN = json.dumps(
    {"data": {"options": [{"option": "SPX261218C05000000", "gamma": 0.001}]}}
).encode()
CSV = b"\nStandard & Poors 500 Index,Last: 4500.5\nExpiration Date,Calls,Strike\nMon Feb 07 2022,SPXW,2400\n"
LIMIT = 1 << 20  # 1 MiB in these tests
HOSTS = ("127.0.0.1",)


def _gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


BOMB = _gzip_bomb(64 << 20)  # 64 MiB of zeros in about 64 KiB


def build_app(never: asyncio.Event) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/chain.json")
    async def chain(request: web.Request) -> web.Response:
        return web.Response(body=CHAIN, content_type="application/json")

    @routes.get("/chain.csv.gz")
    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(CSV), content_type="text/csv", headers={"Content-Encoding": "gzip"}
        )

    @routes.get("/deflate")
    async def deflated(request: web.Request) -> web.Response:
        return web.Response(
            body=zlib.compress(CHAIN),
            content_type="application/json",
            headers={"Content-Encoding": "deflate"},
        )

    @routes.get("/raw-deflate")
    async def raw_deflated(request: web.Request) -> web.Response:
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = packer.compress(CHAIN) + packer.flush()
        return web.Response(
            body=body, content_type="application/json", headers={"Content-Encoding": "deflate"}
        )

    @routes.get("/archive.gz")
    async def gz_file(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(CSV), content_type="application/gzip")

    @routes.get("/bomb")
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=BOMB, content_type="application/json", headers={"Content-Encoding": "gzip"}
        )

    @routes.get("/cut.gz")
    async def cut_gzip(request: web.Request) -> web.Response:
        body = gzip.compress(CSV * 50)
        return web.Response(
            body=body[: len(body) // 2],
            content_type="text/csv",
            headers={"Content-Encoding": "gzip"},
        )

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": request.query["after"]} if "after" in request.query else {}
        return web.Response(status=code, text="no", headers=headers)

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"data": ')
        await never.wait()  # the rest never comes
        return response

    @routes.get("/truncated")
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(CSV)
        assert request.transport is not None
        request.transport.close()  # hang up 900-odd bytes early
        return response

    @routes.get("/loop-a")
    async def loop_a(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-b")

    @routes.get("/loop-b")
    async def loop_b(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-a")

    @routes.get("/hop/{n}")
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/chain.json" if n <= 1 else f"/hop/{n - 1}")

    @routes.get("/elsewhere")
    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://feeds.example.invalid/chain.json")

    @routes.get("/big")
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"1," * (LIMIT + 10), content_type="text/csv")

    @routes.get("/big-chunked")
    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"1," * 32768)
        await response.write_eof()
        return response

    @routes.get("/login")
    async def login(request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><body>Please sign in</body></html>", content_type="text/html"
        )

    @routes.get("/mislabelled")
    async def mislabelled(request: web.Request) -> web.Response:
        return web.Response(body=CHAIN, content_type="text/html")

    @routes.get("/chain.parquet")
    async def parquet(request: web.Request) -> web.Response:
        return web.Response(
            body=b"PAR1" + bytes(64) + b"PAR1", content_type="application/octet-stream"
        )

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    never = asyncio.Event()
    srv = TestServer(build_app(never), host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    timeout_s: float = 10.0,
    max_bytes: int = LIMIT,
    max_redirects: int = 3,
    hosts: tuple[str, ...] = HOSTS,
) -> FetchResult:
    return await fetch_to_file(
        session,
        url,
        dest,
        timeout_s=timeout_s,
        connect_timeout_s=2.0,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
        allowed_hosts=hosts,
    )


def read(path: Path) -> bytes:
    return path.read_bytes()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def failure(session: aiohttp.ClientSession, url: str, dest: Path, **kw: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(session, url, dest, **kw)  # type: ignore[arg-type]
    assert files_in(dest) == [], "a failed fetch left a file behind"
    return info.value


async def test_a_normal_file_lands_complete_under_a_unique_name(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = str(server.make_url("/chain.json"))
    first, second = await asyncio.gather(
        fetch(session, url, tmp_path), fetch(session, url, tmp_path)
    )
    assert first.path != second.path
    assert read(first.path) == CHAIN and first.size_bytes == len(CHAIN)
    assert (first.status, first.kind, first.final_url) == (200, "json", url)
    assert first.content_type.startswith("application/json")
    assert first.path.suffix == ".json" and first.elapsed_s >= 0
    assert files_in(tmp_path) == sorted([first.path.name, second.path.name])


@pytest.mark.parametrize("path", ["/chain.csv.gz", "/deflate", "/raw-deflate"])
async def test_compressed_bodies_are_decoded(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path, path: str
) -> None:
    result = await fetch(session, str(server.make_url(path)), tmp_path)
    expected = CSV if path.endswith(".gz") else CHAIN
    assert read(result.path) == expected and result.size_bytes == len(expected)


async def test_a_gzip_file_without_content_encoding_is_kept_as_is(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    result = await fetch(session, str(server.make_url("/archive.gz")), tmp_path)
    assert result.kind == "gzip" and gzip.decompress(read(result.path)) == CSV


@pytest.mark.parametrize(
    ("status", "code", "retryable", "says"),
    [
        (404, FailureCode.NOT_FOUND, False, "404 Not Found"),
        (410, FailureCode.NOT_FOUND, False, "410 Gone"),
        (403, FailureCode.CLIENT_ERROR, False, "403 Forbidden"),
        (500, FailureCode.SERVER_ERROR, True, "500 Internal Server Error; will retry"),
        (503, FailureCode.SERVER_ERROR, True, "503 Service Unavailable; will retry"),
    ],
)
async def test_error_statuses_are_classified(
    server: TestServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    status: int,
    code: FailureCode,
    retryable: bool,
    says: str,
) -> None:
    url = str(server.make_url(f"/status/{status}"))
    error = await failure(session, url, tmp_path)
    assert (error.code, error.retryable, error.status, error.url) == (code, retryable, status, url)
    assert says in error.message
    assert error.as_dict()["code"] == code.value and error.as_dict()["status"] == status


async def test_rate_limited_answers_carry_retry_after(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await failure(session, str(server.make_url("/status/429?after=7")), tmp_path)
    assert error.code is FailureCode.RATE_LIMITED and error.retryable
    assert error.retry_after_s == 7.0 and "asks to wait 7 s" in error.message


async def test_redirects_are_followed_up_to_the_limit(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = str(server.make_url("/hop/3"))
    result = await fetch(session, url, tmp_path, max_redirects=3)
    assert result.redirects == 3 and result.final_url.endswith("/chain.json")
    error = await failure(session, url, tmp_path / "second", max_redirects=2)
    assert error.code is FailureCode.TOO_MANY_REDIRECTS and "more than 2 redirects" in error.message


async def test_the_first_host_is_checked_too_and_star_allows_any(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = str(server.make_url("/chain.json"))
    error = await failure(session, url, tmp_path, hosts=("localhost",))
    assert error.code is FailureCode.HOST_NOT_ALLOWED
    assert (await fetch(session, url, tmp_path, hosts=("*",))).kind == "json"


@pytest.mark.parametrize(
    ("path", "code", "retryable", "says", "options"),
    [
        pytest.param(
            "/bomb",
            FailureCode.BODY_TOO_LARGE,
            False,
            ["exceeded 1 MiB once decompressed"],
            {},
            id="a gzip bomb fails cleanly at the limit",
        ),
        pytest.param(
            "/cut.gz", FailureCode.TRUNCATED, True, [], {}, id="a cut gzip stream is retryable"
        ),
        pytest.param(
            "/slow",
            FailureCode.TIMEOUT,
            True,
            ["within 0.3 s"],
            {"timeout_s": 0.3},
            id="a slow body hits the total timeout",
        ),
        pytest.param(
            "/truncated", FailureCode.TRUNCATED, True, [], {}, id="a truncated body is retryable"
        ),
        pytest.param(
            "/loop-a",
            FailureCode.TOO_MANY_REDIRECTS,
            False,
            ["in a loop", "/loop-b"],
            {},
            id="a redirect loop is named",
        ),
        pytest.param(
            "/elsewhere",
            FailureCode.HOST_NOT_ALLOWED,
            False,
            ["feeds.example.invalid is not an allowed host", "allowed_hosts"],
            {},
            id="a redirect off the allowlist is refused before connecting",
        ),
        pytest.param(
            "/big",
            FailureCode.BODY_TOO_LARGE,
            False,
            ["exceeded 1 MiB"],
            {},
            id="an oversized body fails at the limit",
        ),
        pytest.param(
            "/big-chunked",
            FailureCode.BODY_TOO_LARGE,
            False,
            ["exceeded 1 MiB"],
            {},
            id="an oversized chunked body fails at the limit",
        ),
        pytest.param(
            "/login",
            FailureCode.WRONG_CONTENT,
            False,
            ["web page (text/html"],
            {},
            id="a web page instead of data is refused",
        ),
    ],
)
async def test_a_failed_fetch_is_classified_and_says_why(
    server: TestServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    path: str,
    code: FailureCode,
    retryable: bool,
    says: list[str],
    options: dict[str, Any],
) -> None:
    error = await failure(session, str(server.make_url(path)), tmp_path, **options)
    assert error.code is code and error.retryable is retryable
    for text in says:
        assert text in error.message


async def test_content_decides_not_the_label(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    labelled_html = await fetch(session, str(server.make_url("/mislabelled")), tmp_path)
    assert labelled_html.kind == "json"
    parquet = await fetch(session, str(server.make_url("/chain.parquet")), tmp_path)
    assert parquet.kind == "parquet" and parquet.path.suffix == ".parquet"


async def test_nothing_listening_is_a_retryable_connection_failure(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await failure(session, f"http://127.0.0.1:{port}/chain.json", tmp_path)
    assert error.code is FailureCode.CONNECTION and error.retryable


async def test_non_http_urls_are_refused(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    error = await failure(session, "ftp://127.0.0.1/chain.json", tmp_path)
    assert error.code is FailureCode.UNSUPPORTED and not error.retryable


async def test_a_cancelled_fetch_leaves_no_file(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # The caller gives up (a job cancelled by a trader) while the body streams in.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fetch(session, str(server.make_url("/slow")), tmp_path), 0.3)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"PAR1\x00\x00", "parquet"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b'  {"data": 1}', "json"),
        (b"[1, 2]", "json"),
        (b'{"a":1}\n{"a":2}\n', "json"),
        (CSV, "csv"),
        (b"\xef\xbb\xbfstrike;gex\n5000;1.5\n", "csv"),
        (b"<!doctype html><html>", "html"),
        (b"\n\n<HTML><HEAD>", "html"),
        (b"<?xml version='1.0'?><feed/>", "unknown"),
        (b"", "unknown"),
        (b"\x00\x01\x02binary", "unknown"),
        (b"just words here", "unknown"),
    ],
)
def test_sniff(tmp_path: Path, head: bytes, kind: str) -> None:
    assert sniff_bytes(head) == kind
    path = tmp_path / "f"
    path.write_bytes(head)
    assert sniff(path) == kind


def test_sniff_recognises_the_shared_cboe_download(shared_spx_csv: Path) -> None:
    assert sniff(shared_spx_csv) == "csv"
