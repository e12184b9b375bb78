"""An expiring lock in one Redis key: taken with SET NX PX, extended and released
only by its holder (checked and changed in one WATCH/MULTI transaction), so a
holder that dies leaves nothing held for longer than the lock lives."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from state.base import guarded


class ExpiringLock:
    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.redis = client
        self.key = key

    async def acquire(self, holder: str, ttl_s: float) -> bool:
        """Take the lock unless someone holds it; it expires after `ttl_s`."""
        ms = max(1, int(ttl_s * 1000))
        return bool(await guarded(lambda: self.redis.set(self.key, holder, nx=True, px=ms)))

    async def refresh(self, holder: str, ttl_s: float) -> bool:
        """Extend the lock if `holder` still has it; False means it was lost."""
        ms = max(1, int(ttl_s * 1000))
        return await self._if_holder(holder, lambda p: p.pexpire(self.key, ms))

    async def release(self, holder: str) -> bool:
        return await self._if_holder(holder, lambda p: p.delete(self.key))

    async def holder(self) -> str | None:
        raw = await guarded(lambda: self.redis.get(self.key))
        return None if raw is None else str(raw)

    async def _if_holder(self, holder: str, queue: Callable[[aioredis.client.Pipeline], object]) -> bool:
        key = self.key

        async def run() -> bool:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        if await pipe.get(key) != holder:
                            await pipe.reset()
                            return False
                        pipe.multi()
                        queue(pipe)
                        await pipe.execute()
                        return True
                    except WatchError:
                        continue

        return await guarded(run)
