"""A capped Redis LIST of JSON notices waiting to be delivered, oldest first: one peek
for every outbox (the monitor's per channel, the rollouts')."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from state.base import guarded


async def oldest(client: aioredis.Redis, key: str) -> tuple[str, dict[str, Any]] | None:
    """The oldest notice and its raw form (which removes it), or None; unreadable ones are dropped."""
    while True:
        raw = await guarded(lambda: client.lindex(key, 0))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return str(raw), data
        await drop(client, key, str(raw))


async def drop(client: aioredis.Redis, key: str, raw: str) -> None:
    """Remove one delivered (or unreadable) notice by its raw form."""
    await guarded(lambda: client.lrem(key, 1, raw))
