"""The servers the provisioner manages, its one-at-a-time lock, and when it last scaled.

A server is recorded *before* anything is created for it, so a worker that dies
half-way leaves a record that says what may be out there; whoever holds the
lock next cleans it up. Only recorded servers are ever scaled in: a backend
added by hand has no record.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from redis.exceptions import WatchError

from state.base import Accessor, audit, guarded
from state.errors import InvalidValue
from state.locks import ExpiringLock
from state.model import PoolName, parse_pool

ServerState = Literal["provisioning", "active", "draining", "destroying", "cleanup_failed"]
SERVER_STATES: tuple[ServerState, ...] = (
    "provisioning",
    "active",
    "draining",
    "destroying",
    "cleanup_failed",
)
Direction = Literal["up", "down"]
_SERVER_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")


def parse_server_id(value: str) -> str:
    """A server id, also its droplet name and directory name: lower-case letters, digits, '-'."""
    if not _SERVER_ID.fullmatch(value):
        raise InvalidValue(
            f"server id {value!r} is not valid: use a lower-case letter then up to 62"
            " lower-case letters, digits or '-'"
        )
    return value


def parse_server_state(value: str) -> ServerState:
    for state in SERVER_STATES:
        if value == state:
            return state
    raise InvalidValue(f"unknown server state {value!r}: use one of {', '.join(SERVER_STATES)}")


@dataclass(frozen=True, slots=True)
class ServerRecord:
    id: str
    pool: PoolName
    provider: str  # local or digitalocean
    state: ServerState
    created_at: float
    updated_at: float
    owner: str  # the worker or CLI handling it now
    step: str = ""  # the step under way (create, active, reachable, configure, health, register)
    ref: str = ""  # the provider's handle once it exists: droplet id, directory
    address: str = ""
    url: str = ""  # backend URL once known: the live release's port
    warm_url: str = ""  # the previous release, kept running on another port (a rollback's target)
    error: str = ""
    timings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def encode(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "pool": self.pool,
                "provider": self.provider,
                "state": self.state,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "owner": self.owner,
                "step": self.step,
                "ref": self.ref,
                "address": self.address,
                "url": self.url,
                "warm_url": self.warm_url,
                "error": self.error,
                "timings": dict(self.timings),
            }
        )

    @classmethod
    def decode(cls, raw: str) -> ServerRecord:
        try:
            data = json.loads(raw)
            timings = data.get("timings") or {}
            return cls(
                id=parse_server_id(str(data["id"])),
                pool=parse_pool(str(data["pool"])),
                provider=str(data["provider"]),
                state=parse_server_state(str(data["state"])),
                created_at=float(data["created_at"]),
                updated_at=float(data["updated_at"]),
                owner=str(data.get("owner", "")),
                step=str(data.get("step", "")),
                ref=str(data.get("ref", "")),
                address=str(data.get("address", "")),
                url=str(data.get("url", "")),
                warm_url=str(data.get("warm_url", "")),
                error=str(data.get("error", "")),
                timings=MappingProxyType({str(k): float(v) for k, v in timings.items()}),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidValue(f"unreadable server record {raw[:80]!r}") from exc

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.encode())
        return data

    def evolve(self, **changes: Any) -> ServerRecord:
        """A copy with `changes` applied and `updated_at` set to now."""
        return replace(self, updated_at=time.time(), **changes)


@dataclass(frozen=True, slots=True)
class ScaleMarks:
    """When a pool last grew and shrank (wall-clock seconds), for cooldowns."""

    up: float | None = None
    down: float | None = None


class ServerRegistry(Accessor):
    async def put(self, record: ServerRecord) -> None:
        """Create or replace a record; a change of state is audited."""
        key = self.keys.servers

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        raw = await pipe.hget(key, record.id)
                        before = None if raw is None else _state_of(raw)
                        pipe.multi()
                        pipe.hset(key, record.id, record.encode())
                        if before != record.state:
                            after = {"state": record.state, "step": record.step, "url": record.url}
                            audit(pipe, self.keys, f"server:{record.id}", before, after, who=self.actor)
                        await pipe.execute()
                        return
                    except WatchError:
                        continue

        await guarded(run)

    async def remove(self, server_id: str, *, outcome: Mapping[str, object]) -> bool:
        """Forget a server that no longer exists; `outcome` goes to the audit log."""
        key = self.keys.servers

        async def run() -> bool:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        raw = await pipe.hget(key, server_id)
                        if raw is None:
                            await pipe.reset()
                            return False
                        pipe.multi()
                        pipe.hdel(key, server_id)
                        audit(
                            pipe,
                            self.keys,
                            f"server:{server_id}",
                            _state_of(raw),
                            dict(outcome),
                            who=self.actor,
                        )
                        await pipe.execute()
                        return True
                    except WatchError:
                        continue

        return await guarded(run)

    async def get(self, server_id: str) -> ServerRecord | None:
        raw = await guarded(lambda: self.redis.hget(self.keys.servers, server_id))
        return None if raw is None else ServerRecord.decode(raw)

    async def all(self) -> list[ServerRecord]:
        """Every record, oldest first; unreadable ones are skipped (and left for a human)."""
        rows = await guarded(lambda: self.redis.hgetall(self.keys.servers))
        found = []
        for raw in rows.values():
            try:
                found.append(ServerRecord.decode(raw))
            except InvalidValue:
                continue
        return sorted(found, key=lambda r: (r.created_at, r.id))

    @property
    def lock(self) -> ExpiringLock:
        """The provisioning lock: one operation at a time across all workers."""
        return ExpiringLock(self.redis, self.keys.provision_lock)

    async def acquire_lock(self, holder: str, ttl_s: float) -> bool:
        """Take the provisioning lock unless someone holds it; it expires after `ttl_s`."""
        return await self.lock.acquire(holder, ttl_s)

    async def refresh_lock(self, holder: str, ttl_s: float) -> bool:
        """Extend the lock if `holder` still has it; False means it was lost."""
        return await self.lock.refresh(holder, ttl_s)

    async def release_lock(self, holder: str) -> bool:
        return await self.lock.release(holder)

    async def lock_holder(self) -> str | None:
        return await self.lock.holder()

    async def mark_scaled(self, pool: PoolName, direction: Direction, at: float | None = None) -> None:
        when = time.time() if at is None else at
        key = self.keys.scale_marks(parse_pool(pool))
        await guarded(lambda: self.redis.hset(key, direction, repr(when)))

    async def marks(self, pool: PoolName) -> ScaleMarks:
        raw = await guarded(lambda: self.redis.hgetall(self.keys.scale_marks(parse_pool(pool))))
        return ScaleMarks(up=_opt_float(raw.get("up")), down=_opt_float(raw.get("down")))


def _state_of(raw: str) -> str | None:
    try:
        return str(json.loads(raw)["state"])
    except (ValueError, KeyError, TypeError):
        return None


def _opt_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
