"""Download one feed over HTTP(S) into a file: bounded in time, size and redirects.

`fetch_to_file` streams the body to a uniquely named temporary file in
`dest_dir` (removed on any failure or cancellation) and renames it once it is
complete. It decompresses gzip and deflate itself, in bounded steps, so a
decompression bomb fails cleanly at `max_bytes` instead of filling memory;
follows at most `max_redirects` redirects and checks every hop's host against
the allowlist before connecting; and gives up after `timeout_s` for the whole
call (connect, redirects and body).

Every failure is a `FetchError` with a stable `code` (a `FailureCode`), whether
a retry can help (`retryable`), the URL and the HTTP status where there was one,
and a message a trader can act on.

`sniff` looks at a downloaded file's first bytes to say what came back (JSON,
CSV, Parquet, gzip, a web page, something else): enough to refuse an HTML
error page and to name the file. Which option-chain format the file holds is
decided later by `gexdaemon.feeds.registry.detect`.
"""

from __future__ import annotations

import asyncio
import email.utils
import fnmatch
import ipaddress
import os
import re
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp

from gexdaemon import __version__
from gexdaemon.core.errors import GexError
from gexdaemon.core.retry import FailureCode, code_for_status, is_retryable

SniffKind = Literal["json", "csv", "parquet", "gzip", "html", "unknown"]

CHUNK_BYTES = 64 * 1024
# Most bytes one decompression step may produce: memory stays bounded whatever the ratio.
INFLATE_STEP_BYTES = 256 * 1024
SNIFF_BYTES = 4096
_RECEIVED_OF = re.compile(r"received (\d+) of (\d+) bytes")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"gexdaemon/{__version__}"
_SUFFIX: dict[str, str] = {
    "json": ".json",
    "csv": ".csv",
    "parquet": ".parquet",
    "gzip": ".gz",
    "html": ".html",
    "unknown": ".bin",
}


@dataclass(frozen=True, slots=True)
class FetchResult:
    path: Path
    size_bytes: int  # after decompression
    content_type: str
    status: int
    final_url: str  # after redirects
    elapsed_s: float
    kind: SniffKind = "unknown"
    redirects: int = 0


class FetchError(GexError):
    """A fetch that failed; `code` says how, `retryable` whether trying again can help."""

    def __init__(
        self,
        code: FailureCode,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.failure = code
        self.retryable = is_retryable(code)
        self.url = url
        self.status = status
        self.retry_after_s = retry_after_s

    @classmethod
    def refused(cls, url: str, reason: str) -> FetchError:
        """A source the daemon may not fetch from (never retried)."""
        return cls(FailureCode.HOST_NOT_ALLOWED, f"{reason}; not retried", url=url)

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        out.update(url=self.url, retryable=self.retryable)
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after_s is not None:
            out["retry_after_s"] = self.retry_after_s
        return out


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _then(code: FailureCode) -> str:
    return "will retry" if is_retryable(code) else "not retried"


def host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """`host` is on the allowlist, compared without case.

    An entry is a host name, a glob (`*.cboe.com`), an IP address or a network
    (`127.0.0.0/8`); "*" allows any host. Intake (`gexdaemon.daemon.intake`) reads the
    list the same way: a request accepted at the door must not be refused at fetch time.
    """
    host = host.lower().strip("[]")
    for raw in allowed_hosts:
        entry = raw.strip().lower().strip("[]")
        if entry in ("*", host) or fnmatch.fnmatchcase(host, entry):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _check_url(url: str, allowed_hosts: Sequence[str]) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise FetchError(
            FailureCode.CLIENT_ERROR, f"{url!r} is not a valid URL ({exc}); not retried", url=url
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchError(
            FailureCode.UNSUPPORTED,
            f"cannot fetch a {parts.scheme or 'scheme-less'}:// URL over HTTP; "
            "use http:// or https://",
            url=url,
        )
    if not host:
        raise FetchError(FailureCode.CLIENT_ERROR, f"{url} names no host; not retried", url=url)
    if not host_allowed(host, allowed_hosts):
        raise FetchError.refused(
            url,
            f"{host} is not an allowed host (allowed: {', '.join(allowed_hosts) or 'none'}); "
            "add it to [sources] allowed_hosts in the config to fetch from it",
        )
    return host


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_error(
    url: str, status: int, reason: str | None, retry_after: float | None
) -> FetchError:
    code = code_for_status(status) or FailureCode.CLIENT_ERROR
    try:
        phrase = reason or HTTPStatus(status).phrase
    except ValueError:
        phrase = reason or "unknown status"
    message = f"the source answered {status} {phrase}"
    if retry_after is not None:
        message += f" (it asks to wait {retry_after:.0f} s)"
    if code is FailureCode.NOT_FOUND:
        message += f" for {url}; not retried: check the URL"
    elif is_retryable(code):
        message += "; will retry"
    else:
        message += "; not retried: check the URL and the source's access rules"
    return FetchError(code, message, url=url, status=status, retry_after_s=retry_after)


class _Inflater:
    """Streaming gzip / deflate decoding in bounded steps."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._decoder: Any = None  # zlib's Decompress type is not importable by name
        self._gzip = encoding in ("gzip", "x-gzip")

    def _start(self, first: bytes) -> None:
        if self._gzip:
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)  # deflate as the RFC says: zlib
        else:
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._decoder is None:
            if not data:
                return
            self._start(data)
        pending = data
        while pending:
            out = self._decoder.decompress(pending, INFLATE_STEP_BYTES)
            if out:
                yield out
            if self._decoder.eof:
                # gzip allows several members back to back; anything after a
                # deflate stream is junk and ignored.
                pending = self._decoder.unused_data
                if pending and self._gzip:
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    continue
                return
            pending = self._decoder.unconsumed_tail

    def flush(self) -> Iterator[bytes]:
        if self._decoder is None:
            return
        while True:
            out = self._decoder.decompress(b"", INFLATE_STEP_BYTES)
            if not out:
                break
            yield out

    @property
    def complete(self) -> bool:
        return self._decoder is None or bool(self._decoder.eof)


class _Spool:
    """The temporary file a body streams into; renamed when complete, removed otherwise."""

    def __init__(self, dest_dir: Path) -> None:
        dest_dir.mkdir(parents=True, exist_ok=True)
        self.dest_dir = dest_dir
        self.name = uuid.uuid4().hex
        self.path = dest_dir / f".fetch-{self.name}.part"
        self._file: BinaryIO | None = self.path.open("xb")
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)

    def head(self) -> bytes:
        assert self._file is not None
        self._file.flush()
        with self.path.open("rb") as f:
            return f.read(SNIFF_BYTES)

    def keep(self, kind: SniffKind) -> Path:
        self._close()
        final = self.dest_dir / f"fetch-{self.name}{_SUFFIX[kind]}"
        os.replace(self.path, final)
        return final

    def discard(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def fetch_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest_dir: Path,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    max_bytes: int,
    max_redirects: int,
    allowed_hosts: Sequence[str],
) -> FetchResult:
    """Fetch `url` into a new file in `dest_dir`; FetchError on any failure.

    The session's own decompression and redirect handling are bypassed (per
    request), so any session works.
    """
    started = time.monotonic()
    current = url
    try:
        async with asyncio.timeout(timeout_s):
            visited = [url]
            for hop in range(max_redirects + 1):
                _check_url(current, allowed_hosts)
                async with session.get(
                    current,
                    allow_redirects=False,
                    auto_decompress=False,
                    headers={"Accept-Encoding": "gzip, deflate", "User-Agent": USER_AGENT},
                    timeout=aiohttp.ClientTimeout(
                        total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s
                    ),
                ) as response:
                    if response.status in REDIRECT_STATUSES:
                        current = _next_hop(current, response, visited)
                        continue
                    if not 200 <= response.status < 300:
                        raise _status_error(
                            current,
                            response.status,
                            response.reason,
                            _retry_after(response.headers.get("Retry-After")),
                        )
                    path, size, kind = await _stream(response, current, dest_dir, max_bytes)
                    return FetchResult(
                        path=path,
                        size_bytes=size,
                        content_type=response.headers.get("Content-Type", ""),
                        status=response.status,
                        final_url=current,
                        elapsed_s=time.monotonic() - started,
                        kind=kind,
                        redirects=hop,
                    )
            chain = " -> ".join(visited)
            raise FetchError(
                FailureCode.TOO_MANY_REDIRECTS,
                f"more than {max_redirects} redirects ({chain}); not retried: check the URL "
                "or raise [sources] max_redirects",
                url=url,
            )
    except aiohttp.ConnectionTimeoutError:
        raise FetchError(
            FailureCode.TIMEOUT,
            f"could not connect to {urlsplit(current).hostname} within "
            f"{connect_timeout_s:g} s; will retry",
            url=url,
        ) from None
    except TimeoutError:
        raise FetchError(
            FailureCode.TIMEOUT,
            f"no complete answer from {urlsplit(current).hostname} within {timeout_s:g} s; "
            "will retry",
            url=url,
        ) from None
    except aiohttp.ClientPayloadError as exc:
        raise FetchError(FailureCode.TRUNCATED, _cut_short(exc), url=url) from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchError(
            FailureCode.CLIENT_ERROR,
            f"the TLS certificate of {exc.host} is not trusted ({_short(exc.certificate_error)}); "
            "not retried: check the URL or the machine's CA certificates",
            url=url,
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise FetchError(
            FailureCode.CONNECTION,
            f"cannot connect to {exc.host}:{exc.port} ({_short(exc)}); will retry",
            url=url,
        ) from None
    except aiohttp.InvalidURL:
        raise FetchError(
            FailureCode.CLIENT_ERROR, f"{current!r} is not a valid URL; not retried", url=url
        ) from None
    except aiohttp.ClientError as exc:
        raise FetchError(
            FailureCode.CONNECTION,
            f"the connection to {urlsplit(current).hostname} failed ({_short(exc)}); will retry",
            url=url,
        ) from None


def _cut_short(exc: aiohttp.ClientPayloadError) -> str:
    # aiohttp's own text reads "<ContentLengthError: 400, ...>": the 400 is not an HTTP
    # status, and a trader should not have to decode it.
    counts = _RECEIVED_OF.search(str(exc))
    if counts:
        got, promised = (int(n) for n in counts.groups())
        return (
            f"the connection closed after {_size(got)} of the {_size(promised)} the source "
            "announced (the body was cut short); will retry"
        )
    return f"the connection closed before the whole body arrived ({_short(exc)}); will retry"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _next_hop(current: str, response: aiohttp.ClientResponse, visited: list[str]) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(
            FailureCode.CLIENT_ERROR,
            f"the source answered {response.status} (a redirect) without saying where to; "
            "not retried",
            url=current,
            status=response.status,
        )
    target = urljoin(current, location)
    if target in visited:
        loop = " -> ".join([*visited[visited.index(target) :], target])
        raise FetchError(
            FailureCode.TOO_MANY_REDIRECTS,
            f"the source redirects in a loop ({loop}); not retried: check the URL",
            url=visited[0],
            status=response.status,
        )
    visited.append(target)
    return target


async def _stream(
    response: aiohttp.ClientResponse, url: str, dest_dir: Path, max_bytes: int
) -> tuple[Path, int, SniffKind]:
    too_large = (
        f"the body exceeded {_size(max_bytes)} (the limit is [sources] max_body_bytes); not retried"
    )
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise FetchError(
            FailureCode.BODY_TOO_LARGE,
            f"the source announced {_size(declared)}: {too_large}",
            url=url,
            status=response.status,
        )
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise FetchError(
            FailureCode.UNSUPPORTED,
            f"the source compressed the body as {encoding!r}, which is not supported "
            "(gzip and deflate are); not retried",
            url=url,
            status=response.status,
        )
    inflater = _Inflater(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None

    spool = _Spool(dest_dir)
    try:

        def write(piece: bytes) -> None:
            if spool.size + len(piece) > max_bytes:
                raise FetchError(
                    FailureCode.BODY_TOO_LARGE,
                    too_large
                    if inflater is None
                    else f"the body exceeded {_size(max_bytes)} once decompressed (the limit is "
                    "[sources] max_body_bytes); not retried",
                    url=url,
                    status=response.status,
                )
            spool.write(piece)

        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            if inflater is None:
                write(chunk)
                continue
            try:
                for piece in inflater.feed(chunk):
                    write(piece)
            except zlib.error as exc:
                raise _corrupt(url, response.status, exc) from None
        if inflater is not None:
            try:
                for piece in inflater.flush():
                    write(piece)
            except zlib.error as exc:
                raise _corrupt(url, response.status, exc) from None
            if not inflater.complete:
                raise FetchError(
                    FailureCode.TRUNCATED,
                    "the compressed body ended before its end marker (cut short); will retry",
                    url=url,
                    status=response.status,
                )
        kind = sniff_bytes(spool.head())
        if kind == "html":
            content_type = response.headers.get("Content-Type", "no Content-Type")
            raise FetchError(
                FailureCode.WRONG_CONTENT,
                f"the source answered with a web page ({content_type}) instead of a data file; "
                "not retried: check the URL (a login or error page?)",
                url=url,
                status=response.status,
            )
        size = spool.size
        return spool.keep(kind), size, kind
    except BaseException:
        # Also on cancellation: no half-written file is left behind.
        spool.discard()
        raise


def _corrupt(url: str, status: int, exc: zlib.error) -> FetchError:
    # Corruption in transit looks like a cut-short body: worth one more try.
    return FetchError(
        FailureCode.TRUNCATED,
        f"the compressed body is corrupt ({exc}); will retry",
        url=url,
        status=status,
    )


def sniff_bytes(head: bytes) -> SniffKind:
    """What the first bytes of a body look like."""
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if not head.strip() or b"\x00" in head:
        return "unknown"
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.count("\ufffd") > max(8, len(text) // 100):
        return "unknown"
    lower = text[:512].lower()
    if lower.startswith("<?xml"):
        return "html" if "<html" in lower else "unknown"
    if lower.startswith("<"):
        return "html"
    if text[:1] in ("{", "["):
        return "json"
    lines = [line for line in text.splitlines()[:5] if line.strip()]
    if lines and any(sep in line for line in lines for sep in (",", ";", "\t", "|")):
        return "csv"
    return "unknown"


def sniff(path: Path) -> SniffKind:
    """What a downloaded file holds, by its first bytes: json, csv, parquet, gzip, html or unknown."""
    with path.open("rb") as f:
        return sniff_bytes(f.read(SNIFF_BYTES))
