"""The node's Redis: what it says about durability, and the refusals at start."""

from __future__ import annotations

import asyncio

import pytest

from gexdaemon.cluster.link import RedisFacts, check_durable, connect, facts, redacted
from gexdaemon.core.errors import Unavailable, VolatileStore
from gexdaemon.core.settings import ClusterSettings
from tests.cluster.redislab import RedisServer, free_port, redis_server


def facts_of(server: RedisServer, **settings: object) -> RedisFacts:
    async def ask() -> RedisFacts:
        cfg = ClusterSettings(redis_url=server.url, **settings)
        client = await connect(cfg)
        try:
            return await facts(client, cfg)
        finally:
            await client.aclose()

    return asyncio.run(ask())


def test_a_redis_that_fsyncs_every_write_is_durable(redis: RedisServer) -> None:
    found = facts_of(redis)
    assert found.durable and found.aof_enabled and found.appendfsync == "always"
    assert found.version.split(".")[0].isdigit()
    assert check_durable(found, allow_volatile=False) == ""


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"appendfsync": "everysec"}, "once a second"),
        ({"appendonly": False}, "append-only file is off"),
    ],
)
def test_a_volatile_redis_is_refused_unless_allowed(options: dict[str, object], says: str) -> None:
    with redis_server(**options) as server:
        found = facts_of(server)
        assert not found.durable
        with pytest.raises(VolatileStore) as refused:
            check_durable(found, allow_volatile=False)
        message = refused.value.message
        assert says in message and "appendfsync always" in message
        assert "--allow-volatile-redis" in message and server.url in message
        warning = check_durable(found, allow_volatile=True)
        assert says in warning and "volatile" in warning


def test_an_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    url = f"redis://desk:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(Unavailable) as failed:
        asyncio.run(connect(ClusterSettings(redis_url=url)))
    message = failed.value.message
    assert "does not answer" in message and "s3cret" not in message
    assert "redis://desk:***@127.0.0.1" in message and "redis_url" in message


def test_redacted_keeps_a_url_without_a_password() -> None:
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redacted("rediss://u:p@h:1/2") == "rediss://u:***@h:1/2"
