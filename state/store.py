"""The routing state (pools, weight, alert, flags), its audit log and the proxies' heartbeats.

Every write is one optimistic transaction (WATCH, MULTI/EXEC) that changes the value,
bumps the version, appends an audit entry and publishes a change notice, so a reader
never sees half a change and a proxy hears of it at once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from state.base import Accessor, audit, guarded
from state.flags import Stored, decode_flags, from_stored, stored_of, with_rule
from state.model import (
    DEFAULT_WEIGHT,
    Alert,
    PoolName,
    Snapshot,
    decode_flag_routes,
    parse_backend_url,
    parse_flag_name,
    parse_route_prefix,
    parse_weight,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change:
    """The result of a write: what it was about and whether anything changed."""

    what: str
    before: object
    after: object
    changed: bool


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


def _loads(raw: str | None) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class StateStore(Accessor):
    """The routing state's one write path (`_mutate`) and its reads."""

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        return await guarded(op)

    async def ping(self) -> None:
        await self._call(self.redis.ping)

    async def read_snapshot(self) -> Snapshot:
        return await self._call(self._read_snapshot)

    async def _read_snapshot(self) -> Snapshot:
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(k.version)
            pipe.smembers(k.pool("production"))
            pipe.smembers(k.pool("staging"))
            pipe.get(k.weight)
            pipe.get(k.alert)
            pipe.hgetall(k.flags)
            pipe.hgetall(k.flag_routes)
            version, prod, stag, weight, alert, flags, routes = await pipe.execute()
        return Snapshot(
            version=int(version or 0),
            production=tuple(sorted(prod)),
            staging=tuple(sorted(stag)),
            weight=_stored_weight(weight),
            alert=None if alert is None else Alert.decode(alert),
            flag_rules=decode_flags(flags),
            flag_routes=decode_flag_routes(routes),
        )

    async def _mutate(
        self,
        what: str,
        watch: tuple[str, ...],
        read: Callable[[aioredis.client.Pipeline], Awaitable[Any]],
        apply: Callable[[aioredis.client.Pipeline, Any], Any],
        after_of: Callable[[Any], Any],
    ) -> Change:
        async def run() -> Change:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(*watch)
                        before = await read(pipe)
                        after = after_of(before)
                        if after == before:
                            await pipe.reset()
                            return Change(what, before, after, changed=False)
                        pipe.multi()
                        apply(pipe, after)
                        pipe.incr(self.keys.version)
                        audit(pipe, self.keys, what, before, after, who=self.actor)
                        pipe.publish(self.keys.changes, what)
                        await pipe.execute()
                        return Change(what, before, after, changed=True)
                    except WatchError:
                        continue

        return await self._call(run)

    async def set_weight(self, percent: object) -> Change:
        value = parse_weight(percent)
        key = self.keys.weight

        async def read(p: aioredis.client.Pipeline) -> int:
            return _stored_weight(await p.get(key))

        return await self._mutate(
            "weight", (key,), read, lambda p, after: p.set(key, str(after)), lambda _: value
        )

    async def add_backend(self, pool: PoolName, url: str) -> Change:
        return await self._edit_pool(pool, parse_backend_url(url), add=True)

    async def remove_backend(self, pool: PoolName, url: str) -> Change:
        return await self._edit_pool(pool, parse_backend_url(url), add=False)

    async def _edit_pool(self, pool: PoolName, url: str, *, add: bool) -> Change:
        key = self.keys.pool(pool)

        async def read(p: aioredis.client.Pipeline) -> list[str]:
            return sorted(await p.smembers(key))

        def after_of(before: list[str]) -> list[str]:
            return sorted(set(before) | {url}) if add else sorted(set(before) - {url})

        def apply(p: aioredis.client.Pipeline, _after: list[str]) -> None:
            (p.sadd if add else p.srem)(key, url)

        return await self._mutate(f"pool:{pool}", (key,), read, apply, after_of)

    async def set_flag(self, name: str, on: bool) -> Change:
        name = parse_flag_name(name)
        key = self.keys.flags

        async def read(p: aioredis.client.Pipeline) -> Stored | None:
            return stored_of(await p.hget(key, name))

        return await self._mutate(
            f"flag:{name}",
            (key,),
            read,
            lambda p, after: p.hset(key, name, with_rule(from_stored(after)).encode()),
            lambda before: with_rule(from_stored(before), on=on).stored(),
        )

    async def set_flag_routes(self, name: str, prefixes: list[str]) -> Change:
        name = parse_flag_name(name)
        value = sorted({parse_route_prefix(p) for p in prefixes})
        key = self.keys.flag_routes

        async def read(p: aioredis.client.Pipeline) -> list[str]:
            return list(decode_flag_routes(await p.hgetall(key)).get(name, ()))

        return await self._mutate(
            f"flag_routes:{name}",
            (key,),
            read,
            lambda p, after: p.hset(key, name, json.dumps(after)),
            lambda _: value,
        )

    async def set_alert(self, reason: str = "", *, by: str | None = None) -> Change:
        alert = Alert(by=by or self.actor, reason=reason, at=time.time())
        return await self._write_alert(alert)

    async def clear_alert(self, *, only_if_by: str | None = None) -> Change:
        """Clear the kill switch; with `only_if_by`, only when that actor set it."""
        return await self._write_alert(None, only_if_by=only_if_by)

    async def _write_alert(self, alert: Alert | None, *, only_if_by: str | None = None) -> Change:
        key = self.keys.alert

        async def read(p: aioredis.client.Pipeline) -> dict[str, object] | None:
            raw = await p.get(key)
            if raw is None:
                return None
            current = Alert.decode(raw)
            return {"by": current.by, "reason": current.reason, "at": current.at}

        def after_of(before: dict[str, object] | None) -> dict[str, object] | None:
            if alert is not None:
                # Re-setting an alert keeps who set it first: a monitor must not
                # take ownership of a human's alert (and clear it later).
                if before is not None:
                    return before
                return {"by": alert.by, "reason": alert.reason, "at": alert.at}
            if before is not None and only_if_by is not None and before["by"] != only_if_by:
                return before
            return None

        def apply(p: aioredis.client.Pipeline, after: dict[str, object] | None) -> None:
            if after is None:
                p.delete(key)
            else:
                p.set(key, json.dumps(after))

        return await self._mutate("alert", (key,), read, apply, after_of)

    async def audit_log(self, limit: int = 50) -> list[AuditEntry]:
        async def run() -> list[AuditEntry]:
            rows = await self.redis.xrevrange(self.keys.audit, count=limit)
            return [
                AuditEntry(
                    id=entry_id,
                    what=fields.get("what", ""),
                    before=_loads(fields.get("before")),
                    after=_loads(fields.get("after")),
                    who=fields.get("who", ""),
                    at=float(fields.get("at", "0") or 0),
                )
                for entry_id, fields in rows
            ]

        return await self._call(run)

    async def heartbeat(self, instance_id: str, info: Mapping[str, object], ttl_s: int) -> None:
        await self._call(lambda: self.redis.set(self.keys.instance(instance_id), json.dumps(info), ex=ttl_s))

    async def forget_instance(self, instance_id: str) -> None:
        await self._call(lambda: self.redis.delete(self.keys.instance(instance_id)))

    async def instances(self) -> list[InstanceInfo]:
        async def run() -> list[InstanceInfo]:
            found: list[InstanceInfo] = []
            prefix = self.keys.instance("")
            async for key in self.redis.scan_iter(match=self.keys.instance_pattern, count=100):
                raw = await self.redis.get(key)
                data = _loads(raw)
                if isinstance(data, dict):
                    found.append(InstanceInfo(id=key[len(prefix) :], info=data))
            return sorted(found, key=lambda i: i.id)

        return await self._call(run)

    async def change_notices(self) -> AsyncIterator[str]:
        """Yield one item per published change, starting with "subscribed".

        Raises StateUnavailable when the connection drops; the caller resyncs
        and subscribes again.
        """
        pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        try:
            await self._call(lambda: pubsub.subscribe(self.keys.changes))
            while True:
                message = await self._call(lambda: pubsub.get_message(timeout=None))
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    yield "subscribed"
                elif message["type"] == "message":
                    yield str(message["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()


def _stored_weight(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_WEIGHT
    try:
        return parse_weight(raw)
    except ValueError:
        # A hand-written bad value must not take routing down; fail safe to
        # production only, which is what a broken canary setting should mean.
        return 0
