"""The board: a cluster's live work in Redis, changed only through its Lua scripts.

Every state change is one script (gexdaemon/cluster/lua/): atomic, short, no key scans.
The Python side encodes arguments and decodes answers; it decides nothing. Leases and
timestamps use Redis' clock (TIME inside the scripts), never a node's: hosts drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec

from gexdaemon.cluster.keys import Keys
from gexdaemon.core.vocab import PriorityLevel

if TYPE_CHECKING:
    from redis.asyncio import Redis

EVENTS_MAXLEN = 20_000
FINISHED_KEEP_MS = 24 * 3600 * 1000  # the finished index keeps a day (hashes: their TTL)
SCRIPTS = (
    "submit",
    "assign",
    "heartbeat",
    "finish",
    "reap",
    "cancel",
    "leader",
    "resign",
    "node",
    "rules",
    "source",
    "requeue",
    "risk",
    "expire",
    "pickup",
)


def _lua(name: str) -> str:
    return (resources.files("gexdaemon.cluster") / "lua" / f"{name}.lua").read_text()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


@dataclass(frozen=True)
class NewJob:
    """One job for SUBMIT: its id, level, queue score, hash fields and idempotency key."""

    job_id: str
    level: PriorityLevel
    score: float  # deadline (ms) for levels with one, arrival (ms) for LOW
    fields: Mapping[str, Any]
    idem_key: str = ""
    idem_value: str = ""
    idem_ttl_ms: int = 0


@dataclass(frozen=True)
class Leadership:
    epoch: int  # 0 when another node leads
    holder: str
    fresh: bool  # the caller just became leader (rebuild, then assign)

    @property
    def mine(self) -> bool:
        return self.epoch > 0


@dataclass(frozen=True, slots=True)
class Finish:
    """One attempt's end, for FINISH: completed, failed, cancelled, or back to the queue."""

    job_id: str
    token: int
    target: str
    fields: Mapping[str, Any]
    ttl_ms: int
    retry_score: float = 0.0
    not_before_ms: int = 0


class Board:
    def __init__(self, client: Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        prelude = _lua("prelude")
        self._scripts = {name: client.register_script(prelude + _lua(name)) for name in SCRIPTS}

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=list(keys), args=list(args))

    # -- intake ---------------------------------------------------------------------------

    async def submit(self, jobs: Sequence[NewJob]) -> list[str]:
        """Queue jobs; for each, '' (new) or the value an earlier use of its key stored."""
        k = self.keys
        args: list[Any] = [k.prefix, EVENTS_MAXLEN, len(jobs)]
        for job in jobs:
            args += [
                job.job_id,
                job.level.value,
                repr(float(job.score)),
                job.idem_key,
                job.idem_value,
                job.idem_ttl_ms,
                msgspec.json.encode(dict(job.fields)).decode(),
            ]
        found = await self._run("submit", [k.events], args)
        return [_text(x) for x in found]

    # -- the leader -------------------------------------------------------------------------

    async def lead(self, node_id: str, ttl_ms: int) -> Leadership:
        epoch, holder = await self._run(
            "leader", [self.keys.leader, self.keys.epoch], [node_id, ttl_ms]
        )
        epoch = int(epoch)
        return Leadership(abs(epoch), _text(holder), fresh=epoch < 0)

    async def resign(self, node_id: str) -> bool:
        return bool(await self._run("resign", [self.keys.leader], [node_id]))

    async def assign(
        self, epoch: int, lease_ms: int, pairs: Sequence[tuple[str, str]]
    ) -> list[str] | None:
        """Assign (job, node) pairs; None when `epoch` is no longer the leader's (fenced).

        Each answer is the new fencing token, or why not: SKIP:<status>, FULL, NODE_GONE.
        """
        k = self.keys
        args: list[Any] = [k.prefix, str(epoch), lease_ms, EVENTS_MAXLEN, len(pairs)]
        for job_id, node in pairs:
            args += [job_id, node]
        found = [
            _text(x)
            for x in await self._run("assign", [k.epoch, k.processing, k.events, k.tokens], args)
        ]
        return None if found == ["STALE_EPOCH"] else found

    # -- workers ----------------------------------------------------------------------------

    async def heartbeat(self, job_id: str, token: int, lease_ms: int) -> str:
        """OK, CANCEL (a trader asked; finish it as cancelled) or STALE (abandon it)."""
        return _text(
            await self._run(
                "heartbeat",
                [self.keys.processing],
                [self.keys.prefix, job_id, str(token), lease_ms],
            )
        )

    async def finish(
        self,
        job_id: str,
        token: int,
        target: str,
        fields: Mapping[str, Any],
        *,
        ttl_ms: int,
        retry_score: float = 0.0,
        not_before_ms: int = 0,
    ) -> bool:
        """End an attempt; False when the token is stale (the job moved on without it)."""
        ended = Finish(job_id, token, target, fields, ttl_ms, retry_score, not_before_ms)
        return (await self.finish_many([ended]))[0]

    async def finish_many(self, ended: Sequence[Finish]) -> list[bool]:
        """End several attempts in one round trip (Redis fsyncs the batch once): for each,
        False when its token is stale. Each is its own FINISH script: one refused leaves
        the others as they are."""
        k = self.keys
        script = self._scripts["finish"]
        pipe = self.client.pipeline(transaction=False)
        for f in ended:
            await script(
                keys=[k.processing, k.events, k.finished],
                args=[
                    k.prefix,
                    f.job_id,
                    str(f.token),
                    f.target,
                    msgspec.json.encode(dict(f.fields)).decode(),
                    f.ttl_ms,
                    EVENTS_MAXLEN,
                    repr(float(f.retry_score)),
                    f.not_before_ms,
                ],
                client=pipe,
            )
        return [_text(found) == "OK" for found in await pipe.execute()]

    async def reap(
        self, *, max_retries: int, ttl_ms: int, limit: int = 200
    ) -> list[tuple[str, str]]:
        """Expired leases: back to the queue, or failed past their retries."""
        k = self.keys
        found = await self._run(
            "reap",
            [k.processing, k.events, k.finished],
            [k.prefix, max_retries, ttl_ms, EVENTS_MAXLEN, limit, FINISHED_KEEP_MS],
        )
        out = []
        for item in found:
            job_id, _, what = _text(item).partition(":")
            out.append((job_id, what))
        return out

    async def cancel(self, job_id: str, reason: str, *, ttl_ms: int) -> str:
        """CANCELLED, RUNNING (asked to stop), MISSING, or the final status it already has."""
        k = self.keys
        return _text(
            await self._run(
                "cancel", [k.events, k.finished], [k.prefix, job_id, reason, ttl_ms, EVENTS_MAXLEN]
            )
        )

    async def pop_assignment(self, node_id: str, timeout_s: float) -> tuple[str, int] | None:
        found = await self.pop_assignments(node_id, timeout_s, 1)
        return found[0] if found else None

    async def pop_assignments(
        self, node_id: str, timeout_s: float, most: int
    ) -> list[tuple[str, int]]:
        """Up to `most` of the node's assignments, waiting up to `timeout_s` for the first."""
        found: Any = await self.client.blmpop(
            timeout_s, 1, self.keys.assign(node_id), direction="LEFT", count=max(1, most)
        )
        if not found:
            return []
        out = []
        for item in found[1]:
            job_id, _, token = _text(item).partition(":")
            out.append((job_id, int(token)))
        return out

    async def pickup(
        self, pairs: Sequence[tuple[str, int]], lease_ms: int
    ) -> list[dict[str, str] | None]:
        """Take popped assignments: each job's hash with its full lease, or None if stale."""
        args: list[Any] = [self.keys.prefix, lease_ms, len(pairs)]
        for job_id, token in pairs:
            args += [job_id, str(token)]
        found = await self._run("pickup", [self.keys.processing], args)
        out: list[dict[str, str] | None] = []
        for flat in found:
            if not flat:
                out.append(None)
                continue
            it = iter(flat)
            out.append({_text(k): _text(v) for k, v in zip(it, it, strict=True)})
        return out

    async def node_heartbeat(self, node_id: str, ttl_ms: int, **fields: Any) -> None:
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, str(value)]
        await self._run("node", [self.keys.nodes], [self.keys.prefix, node_id, ttl_ms, *flat])

    # -- rules ------------------------------------------------------------------------------

    async def publish_rules(self, rules_json: str, node_id: str) -> int:
        """Replace the cluster's rule set and announce it; returns its new version."""
        k = self.keys
        return int(
            await self._run("rules", [k.rules, k.events], [rules_json, EVENTS_MAXLEN, node_id])
        )

    async def rules(self) -> tuple[int, str]:
        """The cluster's rule set: (version, JSON); (0, '') before any node published one."""
        version, text = await self.client.hmget(self.keys.rules, ["version", "rules"])
        return int(_text(version) or 0), _text(text)

    async def requeue(
        self,
        job_id: str,
        *,
        wanted: str,
        level: PriorityLevel,
        deadline_ms: int | None,
        enqueued_ms: int,
        reason: str,
        new_cycle: bool = False,
    ) -> str:
        """A trader's retry (`wanted="failed"`) or change of level (`wanted="queued"`):
        'OK', 'MISSING', or the status that does not allow it."""
        k = self.keys
        return _text(
            await self._run(
                "requeue",
                [k.events, k.finished],
                [
                    k.prefix,
                    job_id,
                    wanted,
                    PriorityLevel(level).value,
                    "" if deadline_ms is None else deadline_ms,
                    enqueued_ms,
                    reason,
                    EVENTS_MAXLEN,
                    "1" if new_cycle else "0",
                ],
            )
        )

    async def expire(self, job_id: str, reason: str, *, ttl_ms: int) -> str:
        """Fail a QUEUED job whose deadline passed while its source was down; 'FAILED', or
        the status that kept it (it started or ended meanwhile), or 'MISSING'."""
        k = self.keys
        return _text(
            await self._run(
                "expire",
                [k.events, k.finished],
                [k.prefix, job_id, reason, ttl_ms, EVENTS_MAXLEN],
            )
        )

    async def flag_risk(self, verdicts: Sequence[tuple[str, bool, str]]) -> int:
        """The leader's forecast: (job_id, at risk, reason) written and announced."""
        if not verdicts:
            return 0
        args: list[Any] = [self.keys.prefix, EVENTS_MAXLEN]
        for job_id, at_risk, reason in verdicts:
            args += [job_id, "1" if at_risk else "0", reason]
        return int(await self._run("risk", [self.keys.events], args))

    # -- sources ----------------------------------------------------------------------------

    async def publish_source(self, source_key: str, state_json: str, node_id: str) -> int:
        """Share what a source may do now (disabled, its breaker) and announce it; its version."""
        k = self.keys
        return int(
            await self._run(
                "source",
                [k.source(source_key), k.sources, k.events],
                [state_json, EVENTS_MAXLEN, node_id, source_key],
            )
        )

    async def source_states(self, keys: Sequence[str] | None = None) -> dict[str, tuple[int, str]]:
        """Each shared source's (version, state JSON), by source key (all when `keys` is None)."""
        wanted = (
            [_text(x) for x in await self.client.smembers(self.keys.sources)]
            if keys is None
            else list(keys)
        )
        pipe = self.client.pipeline(transaction=False)
        for key in wanted:
            pipe.hmget(self.keys.source(key), ["version", "state"])
        found: dict[str, tuple[int, str]] = {}
        for key, (version, state) in zip(wanted, await pipe.execute(), strict=True):
            if state is not None:
                found[key] = (int(_text(version) or 0), _text(state))
        return found

    # -- reads ------------------------------------------------------------------------------

    async def job(self, job_id: str) -> dict[str, str] | None:
        found = await self.client.hgetall(self.keys.job(job_id))
        return {_text(k): _text(v) for k, v in found.items()} or None

    async def queued(self, level: PriorityLevel, limit: int = -1) -> list[str]:
        return [_text(x) for x in await self.client.zrange(self.keys.queue(level), 0, limit)]

    async def depths(self) -> dict[PriorityLevel, int]:
        pipe = self.client.pipeline(transaction=False)
        for level in PriorityLevel:
            pipe.zcard(self.keys.queue(level))
        return dict(zip(PriorityLevel, [int(x) for x in await pipe.execute()], strict=True))

    async def running(self) -> list[str]:
        return [_text(x) for x in await self.client.zrange(self.keys.processing, 0, -1)]

    async def nodes(self) -> list[dict[str, str]]:
        ids = sorted(_text(x) for x in await self.client.smembers(self.keys.nodes))
        pipe = self.client.pipeline(transaction=False)
        for node in ids:
            pipe.hgetall(self.keys.node(node))
        out = []
        gone = []
        for node, found in zip(ids, await pipe.execute(), strict=True):
            if found:
                out.append({"node_id": node, **{_text(k): _text(v) for k, v in found.items()}})
            else:
                gone.append(node)
        if gone:  # heartbeats expired: no longer a node of the cluster
            await self.client.srem(self.keys.nodes, *gone)
        return out

    async def leader(self) -> tuple[str, int]:
        holder, epoch = await self.client.mget([self.keys.leader, self.keys.epoch])
        return _text(holder), int(_text(epoch) or 0)

    async def jobs(self, job_ids: Sequence[str]) -> list[dict[str, str] | None]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        found = await pipe.execute() if job_ids else []
        return [{_text(k): _text(v) for k, v in h.items()} or None for h in found]

    async def live_work(self) -> tuple[str, list[dict[str, str]], list[dict[str, str]]]:
        """Every queued and running job (their hashes, `job_id` included), and the id of the
        last event before they were read: a new leader replays events after it, and an event
        seen twice changes nothing."""
        k = self.keys
        last = await self.client.xrevrange(k.events, count=1)
        after = _text(last[0][0]) if last else "0-0"
        pipe = self.client.pipeline(transaction=False)
        for level in PriorityLevel:
            pipe.zrange(k.queue(level), 0, -1)
        pipe.zrange(k.processing, 0, -1)
        *queues, running = await pipe.execute()
        queued_ids = [_text(x) for q in queues for x in q]
        running_ids = [_text(x) for x in running]
        found = await self.jobs(queued_ids + running_ids)
        queued = [{"job_id": j, **h} for j, h in zip(queued_ids, found, strict=False) if h]
        run = [
            {"job_id": j, **h}
            for j, h in zip(running_ids, found[len(queued_ids) :], strict=True)
            if h
        ]
        return after, queued, run

    async def events_after(
        self, after: str, *, count: int = 1000, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        found: Any = await self.client.xread({self.keys.events: after}, count=count, block=block_ms)
        out = []
        for _stream, entries in found or []:
            for entry_id, fields in entries:
                out.append((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
        return out

    async def time_ms(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000
