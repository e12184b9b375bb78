"""The server registry, the provisioning lock and the scale marks on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from state import InvalidValue, KeySpace, ServerRecord, ServerRegistry, StateStore, connect, parse_server_id
from tests.support.wait import eventually


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[tuple[ServerRegistry, StateStore]]:
    client = connect(redis_url)
    yield ServerRegistry(client, KeySpace(), actor="provisioner:w1"), StateStore(client, KeySpace())
    await client.aclose()


def record(server_id: str = "sy-prod-0001", **changes: object) -> ServerRecord:
    now = time.time()
    base = ServerRecord(server_id, "production", "local", "provisioning", now, now, "w1", step="create")
    return base.evolve(**changes) if changes else base


async def test_records_round_trip_and_state_changes_are_audited(
    registry: tuple[ServerRegistry, StateStore],
) -> None:
    reg, store = registry
    first = record()
    await reg.put(first)
    assert await reg.get(first.id) == first
    # A step change without a state change writes the record but adds no audit entry.
    await reg.put(first.evolve(step="configure"))
    active = first.evolve(state="active", step="", url="http://127.0.0.1:9100", timings={"create": 0.5})
    await reg.put(active)
    got = await reg.get(first.id)
    assert got is not None and got.state == "active" and got.timings == {"create": 0.5}
    assert await reg.remove(first.id, outcome={"removed": "test"})
    assert await reg.remove(first.id, outcome={"removed": "again"}) is False
    assert await reg.get(first.id) is None
    trail = [(e.what, e.before, e.after, e.who) for e in reversed(await store.audit_log(10))]
    assert trail == [
        (
            "server:sy-prod-0001",
            None,
            {"state": "provisioning", "step": "create", "url": ""},
            "provisioner:w1",
        ),
        (
            "server:sy-prod-0001",
            "provisioning",
            {"state": "active", "step": "", "url": "http://127.0.0.1:9100"},
            "provisioner:w1",
        ),
        ("server:sy-prod-0001", "active", {"removed": "test"}, "provisioner:w1"),
    ]


async def test_all_is_sorted_oldest_first_and_skips_unreadable_entries(
    registry: tuple[ServerRegistry, StateStore],
) -> None:
    reg, _ = registry
    newer = record("sy-prod-b", created_at=200.0)
    older = record("sy-prod-a", created_at=100.0)
    await reg.put(newer)
    await reg.put(older)
    await reg.redis.hset(KeySpace().servers, "junk", "{not json")
    assert [r.id for r in await reg.all()] == ["sy-prod-a", "sy-prod-b"]


async def test_the_lock_has_one_holder_and_expires(registry: tuple[ServerRegistry, StateStore]) -> None:
    reg, _ = registry
    assert await reg.acquire_lock("w1", ttl_s=30)
    assert not await reg.acquire_lock("w2", ttl_s=30)
    assert await reg.lock_holder() == "w1"
    assert not await reg.refresh_lock("w2", ttl_s=30)
    assert not await reg.release_lock("w2")
    assert await reg.refresh_lock("w1", ttl_s=30)
    assert await reg.release_lock("w1")
    assert await reg.lock_holder() is None
    # A holder that dies stops refreshing: the lock expires and someone else gets it.
    assert await reg.acquire_lock("dead", ttl_s=0.05)
    await eventually(lambda: reg.acquire_lock("w2", ttl_s=30), 5, "the lock to expire", interval_s=0.01)
    assert await reg.lock_holder() == "w2"
    assert not await reg.refresh_lock("dead", ttl_s=30)


async def test_scale_marks_per_pool(registry: tuple[ServerRegistry, StateStore]) -> None:
    reg, _ = registry
    assert (await reg.marks("production")).up is None
    await reg.mark_scaled("production", "up", at=1000.0)
    await reg.mark_scaled("production", "down", at=2000.0)
    marks = await reg.marks("production")
    assert (marks.up, marks.down) == (1000.0, 2000.0)
    assert (await reg.marks("staging")).up is None


def test_server_ids_and_records_are_validated() -> None:
    assert parse_server_id("sy-prod-1a2b") == "sy-prod-1a2b"
    for bad in ("", "Sy-prod", "-x", "a" * 64, "sy prod", "sy:prod"):
        with pytest.raises(InvalidValue):
            parse_server_id(bad)
    for raw in ("{", "[]", '{"id": "x"}', record().encode().replace('"provisioning"', '"gone"')):
        with pytest.raises(InvalidValue):
            ServerRecord.decode(raw)
