"""Who is around and what happened: the proxies' heartbeats, the audit log, change notices.

The read side that `StateStore` (state/store.py) shares with the routing state's writes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from state.base import Accessor, guarded


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    what: str
    before: object
    after: object
    who: str
    at: float


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    id: str
    info: Mapping[str, object]


def loads(raw: str | None) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Presence(Accessor):
    """Heartbeats, the audit log and the change channel of one key space."""

    async def audit_log(self, limit: int = 50) -> list[AuditEntry]:
        async def run() -> list[AuditEntry]:
            rows = await self.redis.xrevrange(self.keys.audit, count=limit)
            return [
                AuditEntry(
                    id=entry_id,
                    what=fields.get("what", ""),
                    before=loads(fields.get("before")),
                    after=loads(fields.get("after")),
                    who=fields.get("who", ""),
                    at=float(fields.get("at", "0") or 0),
                )
                for entry_id, fields in rows
            ]

        return await guarded(run)

    async def heartbeat(self, instance_id: str, info: Mapping[str, object], ttl_s: int) -> None:
        await guarded(lambda: self.redis.set(self.keys.instance(instance_id), json.dumps(info), ex=ttl_s))

    async def forget_instance(self, instance_id: str) -> None:
        await guarded(lambda: self.redis.delete(self.keys.instance(instance_id)))

    async def instances(self) -> list[InstanceInfo]:
        async def run() -> list[InstanceInfo]:
            found: list[InstanceInfo] = []
            prefix = self.keys.instance("")
            async for key in self.redis.scan_iter(match=self.keys.instance_pattern, count=100):
                raw = await self.redis.get(key)
                data = loads(raw)
                if isinstance(data, dict):
                    found.append(InstanceInfo(id=key[len(prefix) :], info=data))
            return sorted(found, key=lambda i: i.id)

        return await guarded(run)

    async def change_notices(self) -> AsyncIterator[str]:
        """Yield one item per published change, starting with "subscribed".

        Raises StateUnavailable when the connection drops; the caller resyncs
        and subscribes again.
        """
        pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        try:
            await guarded(lambda: pubsub.subscribe(self.keys.changes))
            while True:
                message = await guarded(lambda: pubsub.get_message(timeout=None))
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    yield "subscribed"
                elif message["type"] == "message":
                    yield str(message["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
