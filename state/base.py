"""What every accessor of the schema shares: the client, the errors, the audit stream.

`connect` makes a client that fails fast, `guarded` turns redis-py's errors into the
state package's, `audit` queues an audit entry on a write's transaction, and
`Accessor` holds the client, the key names and who the writes are recorded as.
`StateStore` (state/store.py) and the other stores build on these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from state.errors import StateError, StateUnavailable
from state.keys import KeySpace
from state.redisurl import is_sentinel_url, parse_sentinel_url

AUDIT_MAXLEN = 10_000
T = TypeVar("T")


def connect(url: str, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """A client that fails fast: a control write must never hang on a dead Redis.

    Pooled connections go stale when Redis restarts; two quick retries make the
    first command after a restart reconnect instead of failing. A
    `redis+sentinel://` URL (state/redisurl.py) gives a client of the master the
    Sentinels name: after a failover its next connection asks them again, so a
    write fails cleanly (StateUnavailable) while there is no master and works
    once there is one.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        "health_check_interval": 10,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if not is_sentinel_url(url):
        return aioredis.Redis.from_url(url, **options)
    where = parse_sentinel_url(url)
    auth = {"username": where.username, "password": where.password}
    sentinel = Sentinel(
        list(where.sentinels),
        sentinel_kwargs={
            **auth,
            "decode_responses": True,
            "socket_connect_timeout": timeout_s,
            "socket_timeout": timeout_s,
            # redis-py would try each Sentinel 10 times; the master's own retry
            # above already asks them all again.
            "retry": Retry(NoBackoff(), 0),
        },
    )
    return sentinel.master_for(where.service, redis_class=_SentinelClient, db=where.db, **auth, **options)


class _SentinelClient(aioredis.Redis):  # type: ignore[misc]  # redis-py ships no stubs for it
    """A master's client that also closes its Sentinels' connections when closed."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            pool = self.connection_pool
            if isinstance(pool, SentinelConnectionPool):
                await pool.sentinel_manager.aclose()


async def guarded(op: Callable[[], Awaitable[T]]) -> T:
    """Run one Redis operation, turning redis-py's errors into the state package's."""
    try:
        return await op()
    except MasterNotFoundError as exc:
        # redis-py's text goes on with the repr of every Sentinel client: keep its first part.
        found = str(exc).split(" : ", 1)[0]
        raise StateUnavailable(
            f"Redis is unreachable ({found}: no Sentinel answered or none names a live master):"
            " start them or check --redis-url"
        ) from exc
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StateUnavailable(f"Redis is unreachable ({exc}): start it or check --redis-url") from exc
    except RedisError as exc:
        raise StateError(f"Redis refused the operation: {exc}") from exc


def audit(
    pipe: aioredis.client.Pipeline, keys: KeySpace, what: str, before: object, after: object, *, who: str
) -> None:
    """Queue one audit entry (what, before, after, who, at) on a pipeline."""
    pipe.xadd(
        keys.audit,
        {
            "what": what,
            "before": json.dumps(before),
            "after": json.dumps(after),
            "who": who,
            "at": repr(time.time()),
        },
        maxlen=AUDIT_MAXLEN,
        approximate=True,
    )


class Accessor:
    """What every typed accessor of the schema holds: the client, the key names
    and who its writes are recorded as (in the audit log and alert ownership)."""

    def __init__(
        self, client: aioredis.Redis, keys: KeySpace | None = None, *, actor: str = "unknown"
    ) -> None:
        self.redis = client
        self.keys = keys or KeySpace()
        self.actor = actor
