"""The routing state (pools, weight, alert, flags), its audit log and the proxies' heartbeats.

Every write is one optimistic transaction (WATCH, MULTI/EXEC) that changes the value,
bumps the version, appends an audit entry and publishes a change notice, so a reader
never sees half a change and a proxy hears of it at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from state.base import audit, guarded
from state.flags import Stored, decode_flags, from_stored, stored_of, with_rule
from state.generation import Generation, decode_generation, reset_writes, restore_plan, restore_writes
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
from state.presence import Presence
from state.previews import decode_previews, routes_of

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change:
    """The result of a write: what it was about and whether anything changed."""

    what: str
    before: object
    after: object
    changed: bool


@dataclass(frozen=True, slots=True)
class State:
    """The routing snapshot and the generation it belongs to (None: no state was ever written)."""

    snapshot: Snapshot
    generation: Generation | None


class StateStore(Presence):
    """The routing state's one write path (`_mutate`) and its reads."""

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        return await guarded(op)

    async def ping(self) -> None:
        await self._call(self.redis.ping)

    async def read_snapshot(self) -> Snapshot:
        return (await self.read_state()).snapshot

    async def read_state(self) -> State:
        return await self._call(self._read_state)

    async def generation(self) -> Generation | None:
        return decode_generation(await self._call(lambda: self.redis.get(self.keys.generation)))

    async def _read_state(self) -> State:
        k = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(k.generation)
            pipe.get(k.version)
            pipe.smembers(k.pool("production"))
            pipe.smembers(k.pool("staging"))
            pipe.get(k.weight)
            pipe.get(k.alert)
            pipe.hgetall(k.flags)
            pipe.hgetall(k.flag_routes)
            pipe.hgetall(k.previews)
            generation, version, prod, stag, weight, alert, flags, routes, previews = await pipe.execute()
        snapshot = Snapshot(
            version=int(version or 0),
            production=tuple(sorted(prod)),
            staging=tuple(sorted(stag)),
            weight=_stored_weight(weight),
            alert=None if alert is None else Alert.decode(alert),
            flag_rules=decode_flags(flags),
            flag_routes=decode_flag_routes(routes),
            previews=routes_of(decode_previews(previews)),
        )
        return State(snapshot, decode_generation(generation))

    async def _mutate(
        self,
        what: str,
        watch: tuple[str, ...],
        read: Callable[[aioredis.client.Pipeline], Awaitable[Any]],
        apply: Callable[[aioredis.client.Pipeline, Any], Any],
        after_of: Callable[[Any], Any],
    ) -> Change:
        # A write that does not manage the generation itself gives a state that has none
        # its first (so a proxy can tell a new state from a lost one).
        gen_key = self.keys.generation
        owns_generation = gen_key in watch

        async def run() -> Change:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(*watch, *(() if owns_generation else (gen_key,)))
                        first = not owns_generation and await pipe.get(gen_key) is None
                        before = await read(pipe)
                        after = after_of(before)
                        if after == before:
                            await pipe.reset()
                            return Change(what, before, after, changed=False)
                        pipe.multi()
                        apply(pipe, after)
                        if first:
                            # Not audited apart: the generation records who and when itself.
                            pipe.set(gen_key, Generation.new("created", self.actor).encode())
                        pipe.incr(self.keys.version)
                        audit(pipe, self.keys, what, before, after, who=self.actor)
                        pipe.publish(self.keys.changes, what)
                        await pipe.execute()
                        return Change(what, before, after, changed=True)
                    except WatchError:
                        continue

        return await self._call(run)

    async def ensure_generation(self) -> Generation:
        """The current generation, written first (as created) if the state has none."""
        key, new = self.keys.generation, Generation.new("created", self.actor).encode()

        async def read(p: aioredis.client.Pipeline) -> str | None:
            return await p.get(key)  # type: ignore[no-any-return]

        change = await self._mutate(
            "generation", (key,), read, lambda p, after: p.set(key, after), lambda b: b or new
        )
        return Generation.decode(str(change.after))

    async def restore(self, snap: Snapshot, held: str) -> Change:
        """Write `snap` back under a new generation, in one transaction, if the state that
        had generation `held` was lost; unchanged if another proxy restored it first."""
        k = self.keys

        async def read(p: aioredis.client.Pipeline) -> dict[str, Any]:
            found = decode_generation(await p.get(k.generation))
            version = int(await p.get(k.version) or 0)
            return {"generation": found and found.to_json(), "version": version}

        def after_of(before: dict[str, Any]) -> dict[str, Any]:
            found = decode_generation(before["generation"] and json.dumps(before["generation"]))
            return restore_plan(held, found, before["version"], snap, self.actor) or before

        def apply(p: aioredis.client.Pipeline, after: dict[str, Any]) -> None:
            restore_writes(p, k, snap, after["version"])
            p.set(k.generation, json.dumps(after["generation"]))

        return await self._mutate("restore", (k.generation, *k.watched()), read, apply, after_of)

    async def reset(self) -> Change:
        """A deliberate fresh start: an empty routing state under a new generation."""
        k, new = self.keys, Generation.new("reset", self.actor)

        async def read(_p: aioredis.client.Pipeline) -> dict[str, Any]:
            # Read on another connection: the WATCH still makes the reset fail on a change.
            state = await self._read_state()
            found = state.generation and state.generation.to_json()
            return {"generation": found, "snapshot": state.snapshot.to_json()}

        def apply(p: aioredis.client.Pipeline, _after: object) -> None:
            reset_writes(p, k)
            p.set(k.generation, new.encode())

        after = {"generation": new.to_json(), "snapshot": None}
        return await self._mutate("reset", (k.generation, *k.watched()), read, apply, lambda _: after)

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
        """Clear the kill switch; with `only_if_by`, only when that actor set it. Cleared
        outright (an operator), it takes the monitors' claims with it (state/claims.py): a
        dead monitor's claim would otherwise inherit the next claim's alert and hold it."""
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

        outright = alert is None and only_if_by is None

        def apply(p: aioredis.client.Pipeline, after: dict[str, object] | None) -> None:
            if after is None:
                p.delete(key, *((self.keys.alert_claims,) if outright else ()))
            else:
                p.set(key, json.dumps(after))

        return await self._mutate("alert", (key,), read, apply, after_of)


def _stored_weight(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_WEIGHT
    try:
        return parse_weight(raw)
    except ValueError:
        # A hand-written bad value must not take routing down; fail safe to
        # production only, which is what a broken canary setting should mean.
        return 0
