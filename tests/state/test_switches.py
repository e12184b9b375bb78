"""A warm switch in Redis: the pool and the servers' records move in one transaction,
the proxies hear of it once, and a move planned on stale records writes nothing."""

from __future__ import annotations

import pytest

from state import InvalidValue, ServerRecord, ServerRegistry, StateStore
from state.switches import Move, switch_backends


def record(id_: str, url: str) -> ServerRecord:
    return ServerRecord(id_, "production", "local", "active", 1.0, 1.0, "t", url=url)


async def two_servers(store: StateStore) -> ServerRegistry:
    registry = ServerRegistry(store.redis, store.keys, actor="test")
    for r in (record("a", "http://h:8000"), record("b", "http://g:8000")):
        await registry.put(r)
        await store.add_backend("production", r.url)
    await store.add_backend("production", "http://hand:9000")  # added by hand: stays
    return registry


async def test_the_pool_and_the_records_move_together(store: StateStore) -> None:
    registry = await two_servers(store)
    version = (await store.read_snapshot()).version
    change = await switch_backends(
        store,
        "production",
        [
            Move("a", "http://h:8000", "http://h:8001", "http://h:8000"),
            Move("b", "http://g:8000", "http://g:8001", "http://g:8000"),
        ],
    )
    assert change.changed
    snap = await store.read_snapshot()
    assert snap.production == ("http://g:8001", "http://h:8001", "http://hand:9000")
    assert snap.version == version + 1  # one write: no proxy ever routes from half of it
    a, b = await registry.get("a"), await registry.get("b")
    assert a is not None and (a.url, a.warm_url) == ("http://h:8001", "http://h:8000")
    assert b is not None and (b.url, b.warm_url) == ("http://g:8001", "http://g:8000")
    (entry, *_) = await store.audit_log(1)
    assert entry.what == "pool:production" and entry.after == list(snap.production)


async def test_a_move_planned_on_a_stale_record_writes_nothing(store: StateStore) -> None:
    registry = await two_servers(store)
    before = await store.read_snapshot()
    with pytest.raises(InvalidValue, match="server b no longer serves production at http://g:7000"):
        await switch_backends(
            store,
            "production",
            [
                Move("a", "http://h:8000", "http://h:8001", "http://h:8000"),
                Move("b", "http://g:7000", "http://g:8001", "http://g:7000"),
            ],
        )
    assert await store.read_snapshot() == before
    a = await registry.get("a")
    assert a is not None and (a.url, a.warm_url) == ("http://h:8000", "")


async def test_a_server_out_of_its_pool_stays_out_and_its_record_moves(store: StateStore) -> None:
    registry = await two_servers(store)
    await store.remove_backend("production", "http://g:8000")  # left out after a failed check
    await switch_backends(store, "production", [Move("b", "http://g:8000", "http://g:8001")])
    assert (await store.read_snapshot()).production == ("http://h:8000", "http://hand:9000")
    b = await registry.get("b")
    assert b is not None and b.url == "http://g:8001"
