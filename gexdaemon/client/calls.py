"""Every call of the socket API, once, for both clients; errors; decoding answers into shapes."""

from __future__ import annotations

import types
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gexdaemon.core.errors import GexError, Problem
from gexdaemon.core.jsontext import type_problem
from gexdaemon.core.vocab import JobStatus, PriorityLevel
from gexdaemon.protocol import routes
from gexdaemon.protocol.routes import Route

FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# The daemon closes a connection idle for 10 s; the client lets go of its own first, so it
# never sends a request down a connection the daemon is closing at that very moment.
IDLE_CONNECTION_S = 5.0
_decoder = msgspec.json.Decoder()
encoder = msgspec.json.Encoder()


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


class AnswerMismatch(GexError):
    """The daemon answered JSON this client cannot read as the route's shape (version skew)."""

    code = "answer_mismatch"


def raise_for(status: int, body: bytes) -> None:
    try:
        payload = _decoder.decode(body) if body else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        payload = {}
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    err = err if isinstance(err, dict) else {}
    raise ApiError(
        status,
        str(err.get("code", "http_error")),
        str(err.get("message", f"HTTP {status}: {body[:200]!r}")),
        err.get("details", []) or [],
        str(err.get("request_id", "")),
    )


def decode_answer(route: Route, data: bytes) -> Any:
    """An answer's body as the route's shape (the first member of a union that fits)."""
    if route.content != routes.JSON:
        return data.decode()
    if not data:
        return None
    try:
        value = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise AnswerMismatch(
            f"{route.method} {route.path}: the daemon's answer is not JSON"
        ) from None
    kinds = typing.get_args(route.answer) if isinstance(route.answer, types.UnionType) else ()
    for kind in kinds or (route.answer,):
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError:
            continue
    found = type_problem(value, kinds[0] if kinds else route.answer)
    where = f"{found.where}: {found.message}" if found else "an unexpected shape"
    raise AnswerMismatch(
        f"{route.method} {route.path}: the daemon's answer does not read as this client "
        f"expects ({where}); are the daemon and this client the same version?"
    )


def query_string(query: Mapping[str, Any] | None) -> str:
    if not query:
        return ""
    clean = {k: str(v) for k, v in query.items() if v is not None}
    return ("?" + urllib.parse.urlencode(clean)) if clean else ""


def headers(
    *, json_body: bool, origin: str | None, idempotency_key: str | None = None
) -> dict[str, str]:
    out = {"Accept": "application/json"}
    if json_body:
        out["Content-Type"] = "application/json"
    if origin:
        out["X-Gexd-Origin"] = origin
    if idempotency_key:
        out["Idempotency-Key"] = idempotency_key
    return out


class Calls:
    """Every API call, once. `_call` returns a value (Client) or an awaitable (AsyncClient)."""

    origin: str | None = None  # sent as X-Gexd-Origin with submissions (cli, tui, demo)

    def __init__(self, socket_path: str | Path, *, origin: str | None = None) -> None:
        self.socket_path = str(socket_path)
        self.origin = origin

    def _call(
        self,
        route: Route,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        origin: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        payload = raw if raw is not None else (encoder.encode(body) if body is not None else None)
        target = route.url(**(path or {})) + query_string(query)
        sent = headers(
            json_body=body is not None,
            origin=origin or self.origin,
            idempotency_key=idempotency_key,
        )
        return self._send(route, target, payload, sent)

    def _send(self, route: Route, target: str, payload: bytes | None, sent: dict[str, str]) -> Any:
        raise NotImplementedError  # each client sends it its own way

    def health(self) -> Any:
        return self._call(routes.HEALTH)

    def cluster(self) -> Any:
        return self._call(routes.CLUSTER)

    def submit(
        self,
        requests: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Any,
        *,
        origin: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """One request (a mapping) or a batch (a list): 201 means durably committed.

        `origin` says who submits (cli, tui, demo); anything else counts as the API.
        `idempotency_key` (sent as the Idempotency-Key header): a repeat within 24 hours
        answers with the first job (`replayed` true) instead of making another; in a
        batch, entry i's key is `<key>#<i>` unless it carries its own.
        """
        if isinstance(requests, Mapping) or hasattr(requests, "__struct_fields__"):
            body = requests
        else:
            body = {"requests": list(requests)}
        return self._call(routes.SUBMIT, body=body, origin=origin, idempotency_key=idempotency_key)

    def request(self, request_id: str) -> Any:
        return self._call(routes.GET_REQUEST, path={"id": request_id})

    def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        level: PriorityLevel | str | None = None,
        symbol: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Any:
        return self._call(
            routes.LIST_JOBS,
            query={
                "status": status,
                "level": level,
                "symbol": symbol,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def job(self, job_id: str) -> Any:
        return self._call(routes.GET_JOB, path={"id": job_id})

    def cancel(self, job_id: str) -> Any:
        return self._call(routes.CANCEL_JOB, path={"id": job_id})

    def retry(self, job_id: str) -> Any:
        return self._call(routes.RETRY_JOB, path={"id": job_id})

    def set_level(self, job_id: str, level: PriorityLevel | str) -> Any:
        return self._call(routes.CHANGE_JOB, path={"id": job_id}, body={"priority_level": level})

    def queues(self) -> Any:
        return self._call(routes.QUEUES)

    def sla(self) -> Any:
        return self._call(routes.SLA)

    def rules(self) -> Any:
        return self._call(routes.LIST_RULES)

    def rule(self, ref: str) -> Any:
        return self._call(routes.GET_RULE, path={"id": ref})

    def create_rule(self, rule: Mapping[str, Any]) -> Any:
        return self._call(routes.CREATE_RULE, body=rule)

    def update_rule(self, ref: str, changes: Mapping[str, Any]) -> Any:
        return self._call(routes.UPDATE_RULE, path={"id": ref}, body=changes)

    def delete_rule(self, ref: str) -> Any:
        return self._call(routes.DELETE_RULE, path={"id": ref})

    def rule_history(self, ref: str) -> Any:
        return self._call(routes.RULE_HISTORY, path={"id": ref})

    def test_rules(
        self, rules: Sequence[Mapping[str, Any]], *, mode: str = "merge", limit: int = 500
    ) -> Any:
        return self._call(
            routes.TEST_RULES, body={"rules": list(rules), "mode": mode, "limit": limit}
        )

    def sources(self) -> Any:
        return self._call(routes.LIST_SOURCES)

    def set_source_active(self, ref: str, active: bool) -> Any:
        return self._call(routes.CHANGE_SOURCE, path={"id": ref}, body={"is_active": active})

    def snapshots(
        self, *, symbol: str | None = None, date: str | None = None, limit: int = 50
    ) -> Any:
        return self._call(
            routes.LIST_SNAPSHOTS, query={"symbol": symbol, "date": date, "limit": limit}
        )

    def latest_snapshot(self, symbol: str, *, expiry_filter: str | None = None) -> Any:
        return self._call(
            routes.LATEST_SNAPSHOT, query={"symbol": symbol, "expiry_filter": expiry_filter}
        )

    def snapshot(self, snapshot_id: str) -> Any:
        return self._call(routes.GET_SNAPSHOT, path={"id": snapshot_id})

    def gex_history(self, symbol: str, *, limit: int = 200) -> Any:
        return self._call(routes.GEX_HISTORY, path={"symbol": symbol}, query={"limit": limit})

    def query(self, sql: str, *, limit: int = 1000) -> Any:
        return self._call(routes.QUERY, body={"sql": sql, "limit": limit})

    def ingest_bytes(
        self,
        data: bytes,
        *,
        filename: str,
        symbol: str | None = None,
        level: PriorityLevel | str | None = None,
    ) -> Any:
        return self._call(
            routes.INGEST,
            raw=data,
            query={"filename": filename, "symbol": symbol, "level": level},
        )

    def archive(self) -> Any:
        return self._call(routes.ARCHIVE)

    def rebuild_lake(self) -> Any:
        return self._call(routes.REBUILD_LAKE)

    def metrics(self) -> Any:
        return self._call(routes.METRICS)

    def openapi(self) -> Any:
        return self._call(routes.OPENAPI)
