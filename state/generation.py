"""The state's generation: which life of the routing state this is, and how a lost one comes back.

A generation is written with the state when it is first created (`StateStore._mutate`
adds one to the first write into a Redis that has none), when a proxy writes its last
snapshot back into a Redis that lost the state (a restore), and by a deliberate reset.
A proxy that held generation A and finds none, or finds one that a write created from
nothing, knows the data was lost and restores; one a restore or a reset wrote, it adopts.
`verdict` is that decision, pure; the rest builds the restore and reset transactions.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from state.errors import InvalidValue
from state.keys import KeySpace
from state.model import DEFAULT_FLAG_ROUTES, POOLS, Snapshot
from state.previews import Preview

Cause = Literal["created", "restored", "reset"]
CAUSES: tuple[Cause, ...] = ("created", "restored", "reset")
Verdict = Literal["follow", "restore"]


@dataclass(frozen=True, slots=True)
class Generation:
    """One life of the routing state. `id` is lower-case hex, fit for a DigitalOcean tag."""

    id: str
    cause: Cause
    by: str
    at: float

    @classmethod
    def new(cls, cause: Cause, by: str) -> Generation:
        return cls(id=uuid.uuid4().hex[:12], cause=cause, by=by, at=time.time())

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "cause": self.cause, "by": self.by, "at": self.at}

    def encode(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def decode(cls, raw: str) -> Generation:
        try:
            data = json.loads(raw)
            cause = next(c for c in CAUSES if c == data["cause"])
            return cls(id=str(data["id"]), cause=cause, by=str(data["by"]), at=float(data["at"]))
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            # A hand-written value still names a generation: treat it as created by a write.
            if raw and "{" not in raw:
                return cls(id=raw, cause="created", by="unknown", at=0.0)
            raise InvalidValue(f"unreadable generation {raw[:80]!r}") from exc


def decode_generation(raw: str | None) -> Generation | None:
    if raw is None:
        return None
    try:
        return Generation.decode(raw)
    except InvalidValue:
        # Unreadable is not absent: a proxy must not restore over it, so it counts as a write's.
        return Generation(id=raw[:64], cause="created", by="unknown", at=0.0)


def verdict(held: str | None, found: Generation | None) -> Verdict:
    """What a proxy that routes with generation `held` does on finding `found` in Redis.

    No clock, no I/O. A proxy that never held one follows whatever is there (a first
    start, or a state from before generations). Otherwise a missing generation, or
    a different one that a write created from nothing, means the data was lost: the
    proxy restores. A different one that a restore or a reset wrote is adopted.
    """
    if held is None:
        return "follow"
    if found is None:
        return "restore"
    if found.id == held or found.cause != "created":
        return "follow"
    return "restore"


def restore_writes(pipe: aioredis.client.Pipeline, keys: KeySpace, snap: Snapshot, version: int) -> None:
    """Queue the writes that put `snap` back: what a write made since the loss is kept
    (pools are joined, the rest is written only where absent), and the version moves
    past both, so a drain that waits for proxies to reach a version is never fooled."""
    for name in POOLS:
        if members := snap.pool(name):
            pipe.sadd(keys.pool(name), *members)
    pipe.set(keys.weight, str(snap.weight), nx=True)
    if snap.alert is not None:
        pipe.set(keys.alert, snap.alert.encode(), nx=True)
    # The rules, not the boolean view: a restore keeps a 10% flag at 10%.
    for flag, rule in snap.flag_rules.items():
        pipe.hsetnx(keys.flags, flag, rule.encode())
    for flag, routes in snap.flag_routes.items():
        if DEFAULT_FLAG_ROUTES.get(flag) != routes:
            pipe.hsetnx(keys.flag_routes, flag, json.dumps(list(routes)))
    # Only what routes is in a snapshot: a restored preview keeps its backends alone.
    for preview, backends in snap.previews.items():
        pipe.hsetnx(keys.previews, preview, Preview(backends).encode())
    pipe.set(keys.version, str(version))


def reset_writes(pipe: aioredis.client.Pipeline, keys: KeySpace) -> None:
    """Queue the deletes of a deliberate fresh start (the version keeps counting)."""
    pipe.delete(keys.pool("production"), keys.pool("staging"), keys.weight, keys.alert)
    pipe.delete(keys.flags, keys.flag_routes, keys.previews)


def restore_plan(
    held: str, found: Generation | None, version: int, snap: Snapshot, by: str
) -> dict[str, Any]:
    """The restore's audit "after": the new generation, the version it starts from and
    what is written back; empty when `verdict` says follow (someone else restored)."""
    if verdict(held, found) != "restore":
        return {}
    return {
        "generation": Generation.new("restored", by).to_json(),
        "version": max(version, snap.version),
        "from": held,
        "snapshot": snap.to_json(),
    }
