"""A recorded daemon: plays a state snapshot and events through the same link as a live one.

For snapshot tests and the benchmark, where the screen must not depend on a
running daemon or the clock. A recording is a JSON object:

    {"messages": [{"type": "snapshot", ...}, {"seq": 1, "type": "job.queued", ...}, ...],
     "responses": {"queues": {...}, "job:<id>": {...}, "latest_snapshot:SPX:": {...}, ...}}

`messages` are what `GET /v1/events` sent, in order; `responses` answer the read
calls, keyed by `response_key(call, *arguments)`. Both are decoded the way
`gexdaemon.client.AsyncClient` decodes the socket's bytes (the route's shape,
an event's data in the shape `EVENT_DATA` names), so the views read exactly
what a live daemon gives them and a recording that drifts from the wire shapes
fails loudly. A read with no recorded answer
fails the way the daemon does for an unknown id (404). Calls that would change
something are refused: a recording cannot be edited from the dashboard. More
messages can be pushed while the app runs (`push`), as if the daemon sent them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gexdaemon.client import ApiError
from gexdaemon.client.aio import decode_message
from gexdaemon.client.calls import decode_answer
from gexdaemon.protocol import routes
from gexdaemon.protocol import shapes as s

_encoder = msgspec.json.Encoder()


def response_key(call: str, *arguments: object) -> str:
    return ":".join([call, *("" if a is None else str(a) for a in arguments)])


class ReplayDaemon:
    """Implements `gextui.link.DaemonCalls` from recorded messages and answers."""

    def __init__(
        self,
        messages: Iterable[Mapping[str, Any]],
        responses: Mapping[str, Any] | None = None,
        *,
        label: str = "recording",
    ) -> None:
        self.socket_path = label
        self._messages = [dict(m) for m in messages]
        self._responses = dict(responses or {})
        self._pushed: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.calls: list[str] = []
        self.delivered = 0

    @classmethod
    def load(cls, path: str | Path) -> ReplayDaemon:
        recording = json.loads(Path(path).read_text())
        return cls(recording["messages"], recording.get("responses"), label=str(path))

    def push(self, message: Mapping[str, Any]) -> None:
        """Deliver one more message to the attached dashboard."""
        self._pushed.put_nowait(dict(message))

    def end_stream(self) -> None:
        """Close the event stream, as a daemon that stops does."""
        self._pushed.put_nowait(None)

    async def events(self) -> AsyncIterator[s.StateMessage | s.EventMessage]:
        for message in self._messages:
            self.delivered += 1
            yield decode_message(_encoder.encode(message))
        while True:
            pushed = await self._pushed.get()
            if pushed is None:
                return
            self.delivered += 1
            yield decode_message(_encoder.encode(pushed))

    async def close(self) -> None:
        self.end_stream()

    def _answer(self, route: routes.Route, key: str) -> Any:
        self.calls.append(key)
        if key not in self._responses:
            raise ApiError(404, "not_found", f"the recording has no answer for {key}")
        return decode_answer(route, _encoder.encode(self._responses[key]))

    def _refuse(self, what: str) -> Any:
        self.calls.append(what)
        raise ApiError(
            403, "read_only_recording", f"{what}: a recording cannot be changed from the dashboard"
        )

    async def queues(self) -> Any:
        return self._answer(routes.QUEUES, "queues")

    async def sla(self) -> Any:
        return self._answer(routes.SLA, "sla")

    async def cluster(self) -> Any:
        return self._answer(routes.CLUSTER, "cluster")

    async def job(self, job_id: str) -> Any:
        return self._answer(routes.GET_JOB, response_key("job", job_id))

    async def jobs(self, **query: Any) -> Any:
        keys = ("status", "level", "symbol", "cursor")
        return self._answer(routes.LIST_JOBS, response_key("jobs", *(query.get(k) for k in keys)))

    async def latest_snapshot(self, symbol: str, *, expiry_filter: str | None = None) -> Any:
        return self._answer(
            routes.LATEST_SNAPSHOT, response_key("latest_snapshot", symbol, expiry_filter)
        )

    async def snapshot(self, snapshot_id: str) -> Any:
        return self._answer(routes.GET_SNAPSHOT, response_key("snapshot", snapshot_id))

    async def gex_history(self, symbol: str, *, limit: int = 200) -> Any:
        return self._answer(routes.GEX_HISTORY, response_key("gex_history", symbol))

    async def submit(
        self, requests: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, origin: str = "api"
    ) -> Any:
        return self._refuse("submit")

    async def cancel(self, job_id: str) -> Any:
        return self._refuse("cancel")

    async def retry(self, job_id: str) -> Any:
        return self._refuse("retry")

    async def set_level(self, job_id: str, level: str) -> Any:
        return self._refuse("set_level")

    async def create_rule(self, rule: Mapping[str, Any]) -> Any:
        return self._refuse("create_rule")

    async def update_rule(self, ref: str, changes: Mapping[str, Any]) -> Any:
        return self._refuse("update_rule")

    async def delete_rule(self, ref: str) -> Any:
        return self._refuse("delete_rule")

    async def test_rules(
        self, rules: Sequence[Mapping[str, Any]], *, mode: str = "merge", limit: int = 500
    ) -> Any:
        return self._answer(routes.TEST_RULES, "test_rules")

    async def set_source_active(self, ref: str, active: bool) -> Any:
        return self._refuse("set_source_active")
