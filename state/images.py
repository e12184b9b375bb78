"""Per pool, the prepared image new servers start from: the provider's image id, its
name, when it was made and from which release. Written by `provisioner image build`,
read by every scale-up, removed by `provisioner image forget`.

Not part of the routing snapshot (no proxy reads it), so no version bump and no change
notice: one HSET or HDEL with its audit entry in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.exceptions import WatchError

from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.model import PoolName, parse_pool
from state.presence import loads


@dataclass(frozen=True, slots=True)
class ImageRecord:
    pool: PoolName
    image_id: str  # the provider's id (a DigitalOcean image id is a number, kept as text)
    name: str
    created_at: float  # wall-clock seconds
    release: str = ""  # the commit or version configured into it; "" if not known
    by: str = ""

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, raw: str) -> ImageRecord:
        try:
            data = json.loads(raw)
            return cls(
                pool=parse_pool(str(data["pool"])),
                image_id=str(data["image_id"]),
                name=str(data["name"]),
                created_at=float(data["created_at"]),
                release=str(data.get("release", "")),
                by=str(data.get("by", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(f"unreadable image record {raw[:80]!r}: {exc}") from exc


class ImageStore(Accessor):
    async def get(self, pool: PoolName) -> ImageRecord | None:
        raw = await guarded(lambda: self.redis.hget(self.keys.images, pool))
        return None if raw is None else ImageRecord.decode(raw)

    async def all(self) -> list[ImageRecord]:
        found = await guarded(lambda: self.redis.hgetall(self.keys.images))
        return [ImageRecord.decode(found[pool]) for pool in sorted(found)]

    async def put(self, record: ImageRecord) -> ImageRecord | None:
        """Record `record` as its pool's image; the one it replaced, if any."""
        return await self._swap(record.pool, record)

    async def remove(self, pool: PoolName) -> ImageRecord | None:
        """Forget the pool's image; the one forgotten, if any."""
        return await self._swap(pool, None)

    async def _swap(self, pool: PoolName, record: ImageRecord | None) -> ImageRecord | None:
        key = self.keys.images

        async def op() -> str | None:
            # WATCH: a concurrent build's record is never lost from the audit's `before`.
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        before: str | None = await pipe.hget(key, pool)
                        pipe.multi()
                        if record is None:
                            pipe.hdel(key, pool)
                        else:
                            pipe.hset(key, pool, record.encode())
                        after = None if record is None else json.loads(record.encode())
                        audit(
                            pipe,
                            self.keys,
                            f"image:{pool}",
                            loads(before),
                            after,
                            who=self.actor,
                        )
                        await pipe.execute()
                        return before
                    except WatchError:
                        continue

        before = await guarded(op)
        return None if before is None else ImageRecord.decode(before)
