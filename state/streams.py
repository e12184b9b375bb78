"""A Redis stream served by a consumer group: one mechanism for every work queue the
provisioner's workers serve (scale requests, the rollouts' deploy requests).

A worker first takes over an entry another worker left unacknowledged for a while (it
died), else reads a new one, waiting a little. Callers decode and acknowledge.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from state.base import guarded

Entry = tuple[str, dict[str, str]]


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> None:
    """The group (and the stream) exist; one already there is fine."""

    async def run() -> None:
        try:
            await client.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    await guarded(run)


async def claim_one(
    client: aioredis.Redis, stream: str, group: str, consumer: str, *, block_ms: int, reclaim_idle_ms: int
) -> list[Entry]:
    """At most one entry for `consumer`: a stale one of another's first, else a new one."""

    async def run() -> list[Entry]:
        _next, stale, *_ = await client.xautoclaim(
            stream, group, consumer, min_idle_time=reclaim_idle_ms, start_id="0-0", count=1
        )
        # A trimmed entry comes back without fields: nothing left to serve.
        stale = [(entry_id, fields) for entry_id, fields in stale if fields]
        if stale:
            return stale
        rows = await client.xreadgroup(group, consumer, {stream: ">"}, count=1, block=block_ms)
        return [(entry_id, fields) for _s, entries in rows or [] for entry_id, fields in entries]

    return await guarded(run)
