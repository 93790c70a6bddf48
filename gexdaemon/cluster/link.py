"""A node's connection to the cluster's Redis: open it, say what that Redis is, and refuse
one that would lose acknowledged requests.

Durability, stated plainly: a node acknowledges a submission only after Redis has it, and
with `appendfsync always` Redis has fsynced it to its append-only file. With anything
less a crash of redis-server can lose acknowledged requests, so a node refuses to start
against such a Redis unless `--allow-volatile-redis` (or `[cluster] allow_volatile_redis`)
says the desk accepts that; then it warns on every start and `cluster status` says so.
Redis replication is asynchronous and no failover is automatic (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gexdaemon.core.errors import Unavailable, VolatileStore
from gexdaemon.core.settings import ClusterSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 10.0


def redacted(url: str) -> str:
    """The URL without its password, for messages and `cluster status`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class RedisFacts:
    """What a node knows about its Redis: version, durability, load."""

    url: str  # redacted
    version: str
    aof_enabled: bool
    appendfsync: str  # always | everysec | no | unknown (CONFIG not allowed)
    used_memory_human: str
    ops_per_s: int
    volatile_allowed: bool

    @property
    def durable(self) -> bool:
        return self.aof_enabled and self.appendfsync == "always"

    def volatility(self) -> str:
        """Why acknowledged requests could be lost with this Redis ('' when they cannot)."""
        if self.durable:
            return ""
        if not self.aof_enabled:
            return (
                "its append-only file is off (appendonly no): a crash of redis-server loses "
                "everything since its last snapshot"
            )
        if self.appendfsync == "unknown":
            return (
                "its fsync policy cannot be read (CONFIG is disabled), so a crash of "
                "redis-server may lose the last second of acknowledged requests"
            )
        return (
            f"it fsyncs its append-only file {self.appendfsync_words()}, not on every write "
            "(appendfsync always): a crash of redis-server can lose acknowledged requests"
        )

    def appendfsync_words(self) -> str:
        return {"everysec": "once a second", "no": "when the OS chooses"}.get(
            self.appendfsync, self.appendfsync
        )


async def connect(settings: ClusterSettings) -> Redis:
    """A client for `settings.redis_url` that has answered a PING, or `Unavailable`."""
    import redis.asyncio  # noqa: PLC0415 - cluster mode only: embedded never loads redis
    from redis.exceptions import RedisError  # noqa: PLC0415

    client = redis.asyncio.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=30,
        client_name=f"gexd:{settings.name}",
    )
    try:
        await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT_S + 1)
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        raise Unavailable(
            f"Redis at {redacted(settings.redis_url)} does not answer ({type(exc).__name__}); "
            "check [cluster] redis_url (or GEXD__CLUSTER__REDIS_URL) and that redis-server runs"
        ) from None
    return client


async def facts(client: Redis, settings: ClusterSettings) -> RedisFacts:
    from redis.exceptions import ResponseError  # noqa: PLC0415

    info: dict[str, Any] = await client.info()  # the default sections: version, AOF, memory, ops/s
    try:
        found: dict[Any, Any] = await client.config_get("appendfsync")
        policy = next((_text(v) for k, v in found.items() if _text(k) == "appendfsync"), "")
    except ResponseError:  # CONFIG renamed or refused by an ACL: say we cannot tell
        policy = "unknown"
    return RedisFacts(
        url=redacted(settings.redis_url),
        version=_text(info.get("redis_version", "?")),
        aof_enabled=int(info.get("aof_enabled", 0)) == 1,
        appendfsync=policy or "unknown",
        used_memory_human=_text(info.get("used_memory_human", "?")),
        ops_per_s=int(info.get("instantaneous_ops_per_sec", 0)),
        volatile_allowed=settings.allow_volatile_redis,
    )


def check_durable(found: RedisFacts, *, allow_volatile: bool) -> str:
    """Refuse a volatile Redis unless allowed; returns the warning to log when allowed."""
    why = found.volatility()
    if not why:
        return ""
    if not allow_volatile:
        raise VolatileStore(
            f"refusing to start: the Redis at {found.url} would lose acknowledged requests: "
            f"{why}. Set `appendonly yes` and `appendfsync always` in redis.conf (or run "
            "CONFIG SET appendonly yes / CONFIG SET appendfsync always), or start with "
            "--allow-volatile-redis ([cluster] allow_volatile_redis = true) if the desk "
            "accepts losing them"
        )
    return f"running on a volatile Redis ({found.url}): {why}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
