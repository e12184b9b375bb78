"""A warm switch: servers' pool entries moved to other ports, in one transaction.

Each server's live URL leaves the pool and its new one (a release started on another
port) joins it, and its record follows (`url`, and `warm_url`: the release kept running
for a rollback), all in the one write of the routing state. The version bump, audit
entry and change notice are the store's, so every proxy routes from the new set within
milliseconds and none ever sees half of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from state.errors import InvalidValue
from state.model import PoolName, parse_backend_url, parse_pool
from state.servers import ServerRecord, ServerRegistry
from state.store import Change, StateStore


@dataclass(frozen=True, slots=True)
class Move:
    server: str  # the server's id
    old: str  # its URL in the pool now
    new: str  # the URL it answers on after the switch
    warm: str = ""  # what its record keeps warm afterwards ("": nothing)


async def switch_backends(store: StateStore, pool: PoolName, moves: Sequence[Move]) -> Change:
    """Move every server of `moves` at once; refused (nothing written) when a server's
    record no longer names `old`: someone else changed it since the move was planned. A
    server out of the pool (left out after a failed check) stays out; its record moves."""
    pool = parse_pool(pool)
    for m in moves:
        parse_backend_url(m.new)
    pool_key, servers_key = store.keys.pool(pool), store.keys.servers
    records: dict[str, str | None] = {}  # read inside the transaction, retried with it

    async def read(p: aioredis.client.Pipeline) -> list[str]:
        records.update({m.server: await p.hget(servers_key, m.server) for m in moves})
        return sorted(await p.smembers(pool_key))

    def after_of(before: list[str]) -> list[str]:
        _still_planned(pool, moves, records)
        joining = {m.new for m in moves if m.old in before}
        return sorted((set(before) - {m.old for m in moves}) | joining)

    def apply(p: aioredis.client.Pipeline, after: list[str]) -> None:
        p.delete(pool_key)
        if after:
            p.sadd(pool_key, *after)
        for m in moves:
            p.hset(servers_key, m.server, _moved(records[m.server], m).encode())

    # Audited as the pool's edit, as any other; the records' moves ride along with it.
    change = await store._mutate(f"pool:{pool}", (pool_key, servers_key), read, apply, after_of)
    if not change.changed:
        # The pool stays as it is (every moved server was out of it): only records move,
        # and no proxy needs to hear of it.
        registry = ServerRegistry(store.redis, store.keys, actor=store.actor)
        for m in moves:
            await registry.put(_moved(records[m.server], m))
    return change


def _still_planned(pool: str, moves: Sequence[Move], records: dict[str, str | None]) -> None:
    for m in moves:
        raw = records.get(m.server)
        if raw is None or ServerRecord.decode(raw).url != m.old:
            raise InvalidValue(f"server {m.server} no longer serves {pool} at {m.old}: nothing was switched")


def _moved(raw: str | None, m: Move) -> ServerRecord:
    return ServerRecord.decode(str(raw)).evolve(url=m.new, warm_url=m.warm)
