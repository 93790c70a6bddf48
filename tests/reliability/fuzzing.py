"""Fuzzing the daemon's inputs: strategies, mutations of real chain files, and the rules
every answer must follow.

Shared by tests/reliability/test_fuzz.py (bounded for CI) and bench/fuzz.py (long runs).
The rules: the daemon never crashes or hangs (the process lives, `/v1/health` answers
"ok"); an API answer is a success or a 4xx JSON error with a code and a message (never
a 5xx); a dropped file ends in `processed/` with its receipt or in `rejected/` with an
`.error.json` saying what was wrong; a chain file is parsed or refused with an
`InvalidInput` (ChainError) naming the problem, never another exception; and nothing
accepted earlier is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import string
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.feeds.base import FeedFile
from gexdaemon.pipeline.snapshot import compute_snapshot_from_bytes
from tests.conftest import SHARED_SPX_CSV
from tests.daemon.harness import SAMPLE_FEEDS, RunningDaemon, wait_until

# ---------------------------------------------------------------------------
# Talking to the daemon without the client library (to send what a buggy script would)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    d: RunningDaemon,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> Answer:
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(d.socket))
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def send_raw(
    d: RunningDaemon, data: bytes, *, timeout: float = 3.0, half_close: bool = True
) -> bytes:
    """Bytes straight onto the socket (not even HTTP, perhaps); whatever comes back until
    the daemon hangs up or `timeout`. `half_close` says "that is all" after the bytes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(d.socket))
    got = b""
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError, BrokenPipeError):
        pass  # the daemon may hang up on garbage, or wait for a body that never comes
    finally:
        sock.close()
    return got


def answer_problems(answer: Answer) -> list[str]:
    """A success with JSON, or a 4xx whose JSON says code and message; never a 5xx."""
    problems: list[str] = []
    if answer.status >= 500:
        problems.append(f"answered {answer.status}: {answer.body[:300]!r}")
    if answer.status >= 400:
        try:
            error = answer.json()["error"]
        except (ValueError, KeyError, TypeError):
            return [*problems, f"{answer.status} without a JSON error body: {answer.body[:200]!r}"]
        if not (isinstance(error.get("code"), str) and error["code"]):
            problems.append(f"error without a code: {error}")
        if not (isinstance(error.get("message"), str) and error["message"].strip()):
            problems.append(f"error without a message: {error}")
        if "X-Request-Id" not in answer.headers:
            problems.append("error without X-Request-Id")
    elif answer.body and answer.headers.get("Content-Type", "").startswith("application/json"):
        try:
            answer.json()
        except ValueError:
            problems.append(f"{answer.status} with a body that is not JSON")
    return problems


def daemon_problems(d: RunningDaemon) -> list[str]:
    """The process lives and answers its health check promptly."""
    if d.proc is None or d.proc.poll() is not None:
        return [f"the daemon died (exit {d.proc.returncode if d.proc else '?'})"]
    try:
        health = send(d, "GET", "/v1/health", timeout=10).json()
    except (OSError, ValueError) as exc:
        return [f"the health check failed: {exc!r}"]
    return [] if health.get("status") == "ok" else [f"health says {health.get('status')}"]


# ---------------------------------------------------------------------------
# Strategies: JSON, request bodies, rule conditions, drop files
# ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
REQUEST_FIELDS = ("source_url", "data_type", "market_symbol", "requested_at", "metadata")
SYMBOLS = ("SPX", "SPY", "NDX", "QQQ", "spx", "ZZZZ", "", "SPX ", "^SPX", "A" * 11)
DATA_TYPES = ("real_time", "snapshot", "historical", "REAL_TIME", "weekly", "")


def valid_request(feed_url: str) -> dict[str, Any]:
    return {
        "source_url": f"{feed_url}SPX_strikes.csv",
        "data_type": "snapshot",
        "market_symbol": "SPX",
    }


def odd_urls(feed_url: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            f"{feed_url}SPX_strikes.csv",
            f"{feed_url}SPX_strikes.csv?status=404",
            "file:///etc/passwd",
            "file:///",
            "http://169.254.169.254/latest/meta-data/",
            "http://evil.example.com/x.json",
            "ftp://127.0.0.1/x",
            "http://[::1/x",
            "http://127.0.0.1:99999/x",
            "javascript:alert(1)",
            "",
            "http://" + "a" * 3000 + ".com/",
            f"{feed_url}../../etc/passwd",
            f"{feed_url}%00",
        ]
    ) | st.text(max_size=60)


def request_bodies(feed_url: str) -> st.SearchStrategy[Any]:
    """Requests close enough to valid to get past the first checks, and plain junk."""
    field_values = {
        "source_url": odd_urls(feed_url),
        "data_type": st.sampled_from(DATA_TYPES) | json_values,
        "market_symbol": st.sampled_from(SYMBOLS) | json_values,
        "requested_at": st.sampled_from(
            [
                "2026-11-26T14:30:00Z",
                "2099-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "yesterday",
                "",
            ]
        )
        | json_values,
        "metadata": st.dictionaries(st.text(max_size=70), json_values, max_size=60) | json_values,
    }

    @st.composite
    def mutated(draw: st.DrawFn) -> dict[str, Any]:
        body = valid_request(feed_url)
        for name in draw(st.lists(st.sampled_from(REQUEST_FIELDS), max_size=3, unique=True)):
            if draw(st.booleans()):
                body.pop(name, None)
            else:
                body[name] = draw(field_values[name])
        if draw(st.integers(0, 9)) == 0:
            body[draw(st.text(max_size=10))] = draw(json_values)  # an unknown field
        return body

    one = mutated()
    return st.one_of(
        one,
        st.lists(one, max_size=6),
        st.builds(lambda items: {"requests": items}, st.lists(one, max_size=6)),
        st.builds(
            lambda items, extra: {"requests": items, **extra},
            st.lists(one, max_size=2),
            st.dictionaries(st.text(max_size=8), json_values, max_size=2),
        ),
        json_values,
    )


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON bytes, sometimes cut short or with junk around them, or no JSON at all."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        raw = json.dumps(draw(values)).encode()
        how = draw(st.integers(0, 5))
        if how == 1 and raw:
            raw = raw[: draw(st.integers(0, len(raw) - 1))]
        elif how == 2:
            raw = draw(st.binary(max_size=8)) + raw + draw(st.binary(max_size=8))
        elif how == 3:
            raw = draw(st.binary(max_size=300))
        return raw

    return build()


RULE_WORDS = (
    "data_type", "market_symbol", "source_url", "source_host", "origin", "age_s", "ny_hour",
    "ny_minute", "ny_weekday", "ny_date", "reliability_score", "open_interest", "volume",
    "__class__", "_x", "import", "lambda", "len", "x", "True", "None", "not", "and", "or", "in",
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "(", ")", "[", "]", ",",
    ".", ":", "'real_time'", "'SPX'", "'spx'", "0", "1e309", "-1", "10000", "0.5", "'", '"',
    "\\", "{", "}", "@", "if", "else", "for", "`", "\n", "#",
)  # fmt: skip


def rule_conditions() -> st.SearchStrategy[str]:
    words = st.lists(st.sampled_from(RULE_WORDS), min_size=1, max_size=25).map(" ".join)
    nested = st.integers(1, 400).map(lambda n: "(" * n + "volume > 1" + ")" * n)
    chained = st.integers(1, 300).map(lambda n: " and ".join(["volume > 1"] * n))
    return st.one_of(words, nested, chained, st.text(max_size=200))


def rule_bodies() -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> Any:
        body: dict[str, Any] = {
            "name": f"fuzz {uuid.uuid4().hex[:10]}",
            "condition": draw(rule_conditions()),
            "priority_score": draw(st.floats(0, 1) | json_scalars),
        }
        if draw(st.booleans()):
            body["description"] = draw(st.text(max_size=600))
        if draw(st.integers(0, 5)) == 0:
            body = draw(json_values)
        return body

    return build()


NAME_CHARS = string.ascii_letters + string.digits + "_-. "


def drop_names() -> st.SearchStrategy[str]:
    stem = st.text(alphabet=NAME_CHARS + "éü漢'", min_size=1, max_size=30).filter(
        lambda s: not s.startswith(".") and s.strip() == s
    )
    suffix = st.sampled_from([".json", ".toml", ".csv", ".ndjson", ".parquet", ".JSON", ".txt", ""])
    return st.builds(lambda a, b: a + b, stem, suffix)


def toml_text(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """TOML-looking text: key = value lines from JSON values (sometimes broken TOML)."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        lines = []
        for key in draw(
            st.lists(st.sampled_from([*REQUEST_FIELDS, "x", "[requests]"]), max_size=6)
        ):
            value = draw(values)
            lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines)

    return build()


# ---------------------------------------------------------------------------
# Chain mutations
# ---------------------------------------------------------------------------


def chain_samples(*, include_shared: bool = True) -> list[tuple[str, bytes]]:
    """(file name, bytes) of the sample chains in every format, and the shared CBOE CSV."""
    names = (
        "SPX_strikes.csv",
        "SPX_strikes.json",
        "SPX_strikes.ndjson",
        "SPX_strikes.parquet",
        "SPY_quotedata.csv",
        "NDX_quotedata.csv",
        "SPY_contracts.csv",
        "SPX_contracts.parquet",
        "_NDX.json",
    )
    samples = [(n, (SAMPLE_FEEDS / n).read_bytes()) for n in names]
    if include_shared and SHARED_SPX_CSV.exists():
        samples.append((SHARED_SPX_CSV.name, SHARED_SPX_CSV.read_bytes()))
    return samples


FIELD_JUNK = (
    b"", b"NaN", b"-1", b"1e309", b"abc", b"999999999999999999999999", b"0", b"--", b'"',
    b"Infinity", b"-0", b"1,000", b"\xff\xfe", b"null", b"2026-13-45",
)  # fmt: skip


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate_chain(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[bytes, str]:
    """One to three random edits of a chain file; returns the bytes and what was done."""
    done = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(
                [
                    "truncate",
                    "flip",
                    "delete",
                    "duplicate",
                    "swap",
                    "field",
                    "header",
                    "insert",
                    "json",
                ]
            )
        )
        lines = _lines(data)
        n = len(lines)
        if op == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        elif op == "delete" and n > 1:
            a = draw(st.integers(0, n - 1))
            b = draw(st.integers(a, min(n, a + 50)))
            data = b"\n".join(lines[:a] + lines[b:])
        elif op == "duplicate" and n:
            i = draw(st.integers(0, n - 1))
            data = b"\n".join(
                lines[: i + 1] + [lines[i]] * draw(st.integers(1, 5)) + lines[i + 1 :]
            )
        elif op == "swap" and n > 1:
            i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        elif op in ("field", "header") and n:
            i = 0 if op == "header" else draw(st.integers(0, n - 1))
            if op == "header":  # the first line that looks like a header row
                i = next((k for k, line in enumerate(lines[:10]) if line.count(b",") > 2), 0)
            cells = lines[i].split(b",")
            k = draw(st.integers(0, len(cells) - 1))
            cells[k] = draw(st.sampled_from(FIELD_JUNK) | st.binary(max_size=12))
            lines[i] = b",".join(cells)
            data = b"\n".join(lines)
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data = data[:i] + draw(st.binary(min_size=1, max_size=64)) + data[i:]
        elif op == "json":
            data = _mutate_json(data, draw)
        done.append(op)
    return data, "+".join(done)


def _mutate_json(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 6 or len(paths) > 2000:
            return
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in items:
            paths.append((node, key))
            walk(child, depth + 1)

    walk(doc, 0)
    if not paths:
        return data
    parent, key = draw(st.sampled_from(paths[:2000]))
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = draw(json_values)
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Mutation:
    """A mutated chain file; its repr stays short (the bytes can be megabytes)."""

    name: str
    data: bytes
    how: str

    def __repr__(self) -> str:
        digest = hashlib.sha1(self.data).hexdigest()[:12]
        return f"Mutation({self.name!r}, {len(self.data)} bytes, {self.how!r}, sha1 {digest})"


@st.composite
def mutated_chains(draw: st.DrawFn, samples: list[tuple[str, bytes]]) -> Mutation:
    name, data = draw(st.sampled_from(samples))
    mutated, how = mutate_chain(data, draw)
    return Mutation(name, mutated, how)


def stray_quote(sample: str = "SPY_quotedata.csv", line: int = 10) -> bytes:
    """A quote-table CSV with one stray double quote, as a hand edit can leave."""
    lines = (SAMPLE_FEEDS / sample).read_bytes().split(b"\n")
    cells = lines[line].split(b",")
    cells[2] = b'"' + cells[2]
    lines[line] = b",".join(cells)
    return b"\n".join(lines)


def parse_problems(name: str, data: bytes) -> list[str]:
    """Parse and compute in this process: a result or an InvalidInput, nothing else."""
    now = datetime.now(UTC)
    try:
        compute_snapshot_from_bytes(
            FeedFile(name=name, data=data),
            job_id=uuid.uuid4(),
            settings=GexSettings(),
            now=now,
            context=DomainContext(now=now),
            with_profile=False,
        )
    except InvalidInput as exc:
        if not exc.message.strip():
            return ["refused without a message"]
        return []
    except Exception as exc:
        return [f"{type(exc).__name__}: {str(exc)[:300]}"]
    return []


# ---------------------------------------------------------------------------
# Drop folder outcomes, and what was accepted
# ---------------------------------------------------------------------------


@dataclass
class Accepted:
    """Request ids the daemon acknowledged during a fuzz run, to check none is lost."""

    request_ids: set[str] = field(default_factory=set)
    rule_ids: set[str] = field(default_factory=set)
    cases: int = 0

    def note(self, answer: Answer, path: str) -> None:
        if answer.status != 201:
            return
        body = answer.json()
        if path.startswith("/v1/rules"):
            self.rule_ids.add(body["rule_id"])
            return
        items = body.get("requests", [body]) if isinstance(body, dict) else []
        self.request_ids |= {i["request_id"] for i in items if "request_id" in i}


def drop_outcome(d: RunningDaemon, name: str, *, timeout: float = 30.0) -> tuple[str, Any]:
    """Wait until a dropped file is handled: ("processed", receipt) or ("rejected", report)."""
    report = d.drop / "rejected" / (name + ".error.json")

    def handled() -> tuple[str, Any] | None:
        if report.exists():
            with contextlib.suppress(ValueError):  # being written: look again
                return "rejected", json.loads(report.read_bytes())
        for moved in (d.drop / "processed").glob(f"*/{glob_escape(name)}"):
            receipt = moved.with_name(moved.name + ".receipt.json")
            if receipt.exists():
                with contextlib.suppress(ValueError):
                    return "processed", json.loads(receipt.read_bytes())
        return None

    try:
        return wait_until(handled, timeout=timeout, every=0.02, what=f"{name} to be handled")  # type: ignore[no-any-return]
    except AssertionError:
        where = (
            "still in the drop folder" if (d.drop / name).exists() else "gone from the drop folder"
        )
        return "lost", where


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def drop_problems(name: str, outcome: tuple[str, Any]) -> list[str]:
    kind, detail = outcome
    if kind == "lost":
        return [f"{name!r} was never handled ({detail})"]
    if kind == "rejected":
        error = detail.get("error", {})
        problems = []
        if not error.get("code") or not str(error.get("message", "")).strip():
            problems.append(f"{name!r} rejected without code and message: {detail}")
        if error.get("code") == "error" and "internal error" in str(error.get("message")):
            problems.append(f"{name!r} crashed the handler: {error['message']}")
        return problems
    if not detail.get("requests"):
        return [f"{name!r} processed with an empty receipt: {detail}"]
    return []


def lost_requests(d: RunningDaemon, accepted: Accepted) -> list[str]:
    """Accepted request ids missing from the database (asked through the API)."""
    missing = []
    ids = sorted(accepted.request_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        listed = ", ".join(f"'{i}'" for i in chunk)
        found = send(
            d,
            "POST",
            "/v1/query",
            json.dumps(
                {
                    "sql": f"SELECT CAST(request_id AS VARCHAR) FROM priority_requests "
                    f"WHERE request_id IN ({listed})",
                    "limit": 1000,
                }
            ).encode(),
            {"Content-Type": "application/json"},
        ).json()
        present = {row[0] for row in found["rows"]}
        missing += [i for i in chunk if i not in present]
    return missing


# ---------------------------------------------------------------------------
# One fuzz case of each kind against a running daemon: each returns what went wrong
# ---------------------------------------------------------------------------

ENDPOINTS = (
    ("POST", "/v1/requests"),
    ("POST", "/v1/requests"),
    ("POST", "/v1/requests"),
    ("POST", "/v1/rules"),
    ("POST", "/v1/rules/test"),
    ("POST", "/v1/query"),
    ("PATCH", "/v1/jobs/{job}"),
    ("PATCH", "/v1/rules/{rule}"),
    ("PATCH", "/v1/sources/{source}"),
    ("POST", "/v1/ingest?filename=fuzz.csv"),
    ("POST", "/v1/admin/archive"),
)
CONTENT_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded", "")
GARBAGE_HEADS = (
    b"POST /v1/requests HTTP/1.1\r\n",
    b"GET /v1/health HTTP/1.1\r\n",
    b"GET / HTTP/9.9\r\n",
    b"POST /v1/requests HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n",
    b"POST /v1/requests HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/health HTTP/1.1\r\nHost: " + b"a" * 20000 + b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
    b"",
)
QUERY_PATHS = (
    "/v1/jobs?status={v}&level={v}&limit={v}",
    "/v1/jobs?cursor={v}&symbol={v}",
    "/v1/snapshots?date={v}&symbol={v}&limit={v}",
    "/v1/snapshots/latest?symbol={v}&expiry_filter={v}",
    "/v1/gex/{v}/history?limit={v}",
    "/v1/jobs/{v}",
    "/v1/requests/{v}",
    "/v1/rules/{v}/history",
    "/v1/snapshots/{v}",
)
query_values = st.text(max_size=40) | st.sampled_from(
    ["-1", "0", "10001", "1e3", "QUEUED", "..", "%00"]
)
DROP_PREFIXES = ("SPX_", "spy-", "", "_NDX", "ZZZZ_")


def drop_contents(feed_url: str, samples: list[tuple[str, bytes]]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        encoded(request_bodies(feed_url)),
        toml_text(json_values).map(str.encode),
        mutated_chains(samples).map(lambda chain: chain.data),
        st.binary(max_size=400),
    )


@dataclass
class FuzzTarget:
    """A running daemon being fuzzed, the ids its handlers look up, and what it accepted."""

    d: RunningDaemon
    feed_url: str
    ids: dict[str, str]
    accepted: Accepted = field(default_factory=Accepted)
    _names: Any = field(default_factory=lambda: iter(range(1 << 62)))

    @classmethod
    def prepare(cls, d: RunningDaemon, feed_url: str) -> FuzzTarget:
        c = d.client()
        job = c.submit(
            {"source_url": f"{feed_url}SPY.json", "data_type": "historical", "market_symbol": "SPY"}
        )
        rule = c.rules()["rules"][0]
        ids = {"job": job["job_id"], "rule": rule["rule_id"], "source": feed_url.rstrip("/")}
        return cls(d, feed_url, ids)

    def api_case(self, body: bytes, endpoint: tuple[str, str], ctype: str) -> list[str]:
        method, template = endpoint
        path = template.format(**{k: urllib.parse.quote(v, safe="") for k, v in self.ids.items()})
        answer = send(self.d, method, path, body, {"Content-Type": ctype} if ctype else {})
        self.accepted.cases += 1
        self.accepted.note(answer, path)
        # Keep one case from switching the daemon's behaviour off for the cases after it.
        if answer.status == 200 and path.startswith("/v1/sources/"):
            send(
                self.d, "PATCH", path, b'{"is_active": true}', {"Content-Type": "application/json"}
            )
        if answer.status == 201 and path == "/v1/rules":
            send(self.d, "DELETE", f"/v1/rules/{answer.json()['rule_id']}")
        return answer_problems(answer) + daemon_problems(self.d)

    def garbage_case(self, head: bytes, tail: bytes) -> list[str]:
        send_raw(self.d, head + tail, timeout=2.0)
        return daemon_problems(self.d)

    def query_case(self, template: str, value: str) -> list[str]:
        answer = send(self.d, "GET", template.format(v=urllib.parse.quote(value, safe="")))
        return answer_problems(answer) + daemon_problems(self.d)

    def rule_case(self, rule: Any, metadata: dict[str, Any]) -> list[str]:
        tried = send(self.d, "POST", "/v1/rules/test", json.dumps({"rules": [rule]}).encode())
        created = send(
            self.d,
            "POST",
            "/v1/rules",
            json.dumps(rule).encode(),
            {"Content-Type": "application/json"},
        )
        problems = answer_problems(tried) + answer_problems(created)
        if created.status == 201:
            try:
                # Scoring runs every active rule on every request: a saved rule must never
                # make intake fail, whatever the request's metadata holds.
                submitted = send(
                    self.d,
                    "POST",
                    "/v1/requests",
                    json.dumps(
                        {
                            "source_url": f"{self.feed_url}SPX_strikes.csv",
                            "data_type": "snapshot",
                            "market_symbol": "SPX",
                            "metadata": metadata,
                        }
                    ).encode(),
                )
                self.accepted.note(submitted, "/v1/requests")
                if submitted.status not in (201, 422):
                    problems.append(f"with rule {rule!r}: submit answered {submitted.status}")
                problems += answer_problems(submitted)
            finally:
                send(self.d, "DELETE", f"/v1/rules/{created.json()['rule_id']}")
        return problems + daemon_problems(self.d)

    def drop_case(self, files: list[tuple[str, str, bytes]]) -> list[str]:
        names = []
        for prefix, name, data in files:
            unique = f"{prefix}fz{next(self._names)}_{name}"
            part = self.d.drop / f".{unique}.part"
            part.write_bytes(data)
            part.rename(self.d.drop / unique)
            names.append(unique)
        problems = []
        for unique in names:
            problems += drop_problems(unique, drop_outcome(self.d, unique))
        return problems + daemon_problems(self.d)

    def ingest_case(self, chain: Mutation) -> list[str]:
        answer = send(
            self.d, "POST", f"/v1/ingest?filename={urllib.parse.quote(chain.name)}", chain.data
        )
        problems = answer_problems(answer)
        self.accepted.note(answer, "/v1/ingest")
        if answer.status == 201:
            found = self.d.wait_job(answer.json()["job_id"])
            job = found["job"]
            if job["status"] not in ("completed", "failed"):
                problems.append(f"{chain!r} ended {job['status']}")
            elif job["status"] == "failed":
                message = job["error_message"] or ""
                if not message.startswith(("invalid_file:", "unparseable_file:")):
                    problems.append(f"{chain!r} failed without naming the file's fault: {message}")
        return problems + daemon_problems(self.d)
